// The site's navigation: which pages each role may use, each role's home (where
// `/` takes it), and the menu in the header (a row of links on a desk screen, a
// collapsible panel on a phone). The server checks every action again: hiding a
// link is for clarity, not security.

import './texts/nav.js';
import { t } from './i18n.js';

/** Every page in the navigation: its path and the key of its name. */
const PAGES = {
  calendar: { path: '/calendar', key: 'nav_calendar' },
  operator: { path: '/operator', key: 'nav_operator' },
  join: { path: '/join', key: 'nav_join' },
  dashboard: { path: '/dashboard', key: 'nav_dashboard' },
  documents: { path: '/documents', key: 'nav_documents' },
  admin: { path: '/admin', key: 'nav_admin' },
};

/** What each role sees, its home first: a booker the calendar; an operator its
 * endpoint's home and the join page; IT the dashboard (the calendar read-only);
 * an admin everything plus the administration. */
const BY_ROLE = {
  admin: ['calendar', 'dashboard', 'operator', 'documents', 'admin'],
  booker: ['calendar', 'documents'],
  operator: ['operator', 'join', 'documents'],
  it: ['dashboard', 'calendar', 'documents'],
};

/** The pages `me` may use, in menu order ([] for none). */
export function pagesFor(me) {
  return ((me && BY_ROLE[me.role]) || []).map((name) => ({ name, ...PAGES[name] }));
}

/** Where `/` takes `me` (its role's home), or null when no page is for it. */
export function homeFor(me) {
  const pages = pagesFor(me);
  return pages.length ? pages[0] : null;
}

/** Whether `path` is the page of the menu item `itemPath` (or one below it). */
function isCurrent(itemPath, path) {
  return path === itemPath || path.startsWith(`${itemPath}/`);
}

/** Fill the header's menu `list` (a <ul>) with `me`'s pages, the current one marked. */
export function renderNav(list, me) {
  const here = location.pathname;
  const items = pagesFor(me).map((page) => {
    const current = isCurrent(page.path, here);
    const link = document.createElement('a');
    link.href = page.path;
    link.className = `nav-link${current ? ' is-current' : ''}`;
    link.dataset.page = page.name;
    link.textContent = t(page.key);
    if (current) link.setAttribute('aria-current', 'page');
    const item = document.createElement('li');
    item.append(link);
    return item;
  });
  list.replaceChildren(...items);
  list.hidden = items.length === 0;
}

/**
 * The phone menu: `toggle` opens and closes `panel` (aria-expanded says which);
 * Escape or a click outside closes it and gives the focus back to the button.
 */
export function wireMenu(toggle, panel, header) {
  const label = () => {
    const open = toggle.getAttribute('aria-expanded') === 'true';
    toggle.setAttribute('aria-label', t(open ? 'nav_menu_close' : 'nav_menu_open'));
  };
  const set = (open, { focus = false } = {}) => {
    toggle.setAttribute('aria-expanded', String(open));
    header.classList.toggle('menu-open', open);
    label();
    if (open && focus) {
      const first = panel.querySelector('a, button');
      if (first) first.focus();
    }
  };
  toggle.addEventListener('click', () => set(toggle.getAttribute('aria-expanded') !== 'true', { focus: true }));
  header.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && toggle.getAttribute('aria-expanded') === 'true') {
      set(false);
      toggle.focus();
    }
  });
  document.addEventListener('click', (event) => {
    if (!header.contains(event.target)) set(false);
  });
  set(false);
  return label;
}
