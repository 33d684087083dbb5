// The admin page (/admin): accounts, the endpoints' agent and calendar tokens,
// and the audit log, in three tabs (the tab is in the address: #users, #tokens,
// #audit). Only an administrator gets the page; anyone else is told plainly, and
// the server refuses their calls to these APIs anyway.

import './texts/admin.js';
import {
  el, fill, runPage, signIn,
} from './common.js';
import { onLangChange, t } from './i18n.js';
import { homeFor } from './site_nav.js';
import { UsersSection } from './admin_users.js';
import { TokensSection } from './admin_tokens.js';
import { AuditSection } from './admin_audit.js';

const app = document.getElementById('app');
const TABS = [
  { name: 'users', key: 'adm_tab_users', Section: UsersSection },
  { name: 'tokens', key: 'adm_tab_tokens', Section: TokensSection },
  { name: 'audit', key: 'adm_tab_audit', Section: AuditSection },
];

async function main() {
  const me = await signIn(app, 'adm_sub', 'home_login_intro');
  if (me.role !== 'admin') {
    notAllowed(me);
    return;
  }
  build(me);
}

function notAllowed(me) {
  const home = homeFor(me);
  const render = () => fill(app, el('div', { class: 'center-stage' },
    el('div', { class: 'card notice-card refusal-card', role: 'alert', id: 'not-allowed' },
      el('h1', { text: t('adm_not_allowed_title') }),
      el('p', { text: t('adm_not_allowed', { name: me.name, role: me.role ? t(`role_${me.role}`) : '—' }) }),
      home ? el('a', { class: 'button button-primary', href: home.path, text: t('nav_home_link') }) : null)));
  render();
  onLangChange(render);
}

function build(me) {
  const tabs = TABS.map((tab) => {
    const button = el('button', {
      type: 'button', role: 'tab', id: `tab-${tab.name}`, class: 'tab',
      'aria-controls': `panel-${tab.name}`, data: { tab: tab.name },
    });
    const panel = el('section', {
      role: 'tabpanel', id: `panel-${tab.name}`, class: 'tab-panel', 'aria-labelledby': `tab-${tab.name}`, hidden: true,
    });
    return { ...tab, button, panel, section: null };
  });
  const list = el('div', { role: 'tablist', class: 'tabs', data: { i18nLabel: 'adm_tabs' } },
    tabs.map((tab) => tab.button));
  const title = el('h1', { class: 'admin-title' });
  fill(app, el('div', { class: 'admin' },
    el('div', { class: 'admin-head' }, title, list),
    tabs.map((tab) => tab.panel)));

  const show = (name, { focus = false } = {}) => {
    const current = tabs.find((tab) => tab.name === name) || tabs[0];
    for (const tab of tabs) {
      const selected = tab === current;
      tab.button.setAttribute('aria-selected', String(selected));
      tab.button.tabIndex = selected ? 0 : -1;
      tab.panel.hidden = !selected;
    }
    if (!current.section) {
      current.section = new current.Section(current.panel, me);
      current.section.start();
    } else current.section.shown();
    if (focus) current.button.focus();
    return current;
  };
  const fromHash = () => show(location.hash.slice(1).split('/')[0] || 'users');

  for (const [index, tab] of tabs.entries()) {
    tab.button.addEventListener('click', () => {
      if (location.hash.slice(1).split('/')[0] !== tab.name) location.hash = tab.name;
    });
    // Arrow keys, Home and End move between the tabs (the WAI-ARIA tab pattern).
    tab.button.addEventListener('keydown', (event) => {
      const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
      location.hash = next.name;
      show(next.name, { focus: true });
    });
  }
  const texts = () => {
    title.textContent = t('adm_title');
    for (const tab of tabs) tab.button.textContent = t(tab.key);
    for (const tab of tabs) if (tab.section) tab.section.render();
  };
  texts();
  onLangChange(texts);
  window.addEventListener('hashchange', fromHash);
  fromHash();
}

runPage(main);
