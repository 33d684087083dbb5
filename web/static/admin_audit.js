// The admin page's audit log: who did what, when, to what, before and after.
// Filters by action (the actions the log holds, by name), actor, target and a
// range of days in Asia/Ho_Chi_Minh; pages of 50, newest first, through the
// API's `before_id` (so a page stays the same while new entries arrive).

import { api, el, fill, siteName } from './common.js';
import { t } from './i18n.js';
import { actionKey } from './texts/admin.js';
import {
  clearErrors, field, formatStamp, notice, select, table,
} from './admin_ui.js';

const PAGE_SIZE = 50;
const TARGET_TYPES = ['user', 'endpoint', 'conference', 'address'];

/** The action's name in the current language, or the action itself when unknown. */
function actionName(action) {
  const key = actionKey(action);
  const text = t(key);
  return text === key ? action : text;
}

/** "dd/mm/yyyy" (as typed: one-digit day and month too) → "YYYY-MM-DD"; '' for
 * empty, null when it is no date. A text field, not <input type=date>: that one
 * shows the browser's own format (mm/dd/yyyy in an English browser). */
function parseDay(text) {
  if (!text) return '';
  const match = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/.exec(text);
  if (!match) return null;
  const [day, month, year] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  return date.toISOString().slice(0, 10);
}

/** "YYYY-MM-DD" → "dd/mm/yyyy". */
function showDay(day) {
  return day ? day.split('-').reverse().join('/') : '';
}

/** 'YYYY-MM-DD' + `days`, as 'YYYY-MM-DD'. */
function addDays(day, days) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

export class AuditSection {
  constructor(panel) {
    this.panel = panel;
    this.filters = { action: '', actor: '', target_type: '', target_id: '', from: '', to: '' };
    this.actions = [];
    this.users = [];
    this.cursors = [null]; // the before_id of each page seen (null: the newest)
    this.page = 0;
    this.events = null;
    this.more = false;
    this.error = null;
  }

  async start() {
    this.render();
    await Promise.all([this.loadChoices(), this.load()]);
  }

  shown() {
    this.loadChoices();
  }

  async loadChoices() {
    try {
      const [actions, users] = await Promise.all([
        api('GET', '/api/v1/audit/actions'), api('GET', '/api/v1/users')]);
      this.actions = actions.actions;
      this.users = users.users;
    } catch {
      return; // the filters still work by typing; the list shows the failure
    }
    this.render();
  }

  query() {
    const params = new URLSearchParams();
    for (const name of ['action', 'actor', 'target_type', 'target_id']) {
      if (this.filters[name]) params.set(name, this.filters[name]);
    }
    if (this.filters.from) params.set('from', `${this.filters.from}T00:00:00+07:00`);
    if (this.filters.to) params.set('to', `${addDays(this.filters.to, 1)}T00:00:00+07:00`);
    const before = this.cursors[this.page];
    if (before !== null) params.set('before_id', String(before));
    params.set('limit', String(PAGE_SIZE + 1)); // one more: is there an older page?
    return params;
  }

  async load() {
    this.events = null;
    this.renderTable();
    try {
      const events = (await api('GET', `/api/v1/audit?${this.query()}`)).events;
      this.more = events.length > PAGE_SIZE;
      this.events = events.slice(0, PAGE_SIZE);
      this.error = null;
    } catch (error) {
      this.error = error;
      this.events = [];
    }
    this.renderTable();
  }

  render() {
    const f = this.filters;
    const fields = {
      action: field('adm_filter_action', select([{ value: '', text: t('adm_all_actions') },
        ...this.actionOptions()], f.action), { name: 'action' }),
      actor: field('adm_filter_actor', el('input', { list: 'audit-actors', autocomplete: 'off', placeholder: t('adm_filter_actor_hint') }), { name: 'actor' }),
      target_type: field('adm_filter_target_type', select([{ value: '', text: t('adm_all_targets') },
        ...TARGET_TYPES.map((type) => ({ value: type, text: t(`adm_target_${type}`) }))], f.target_type), { name: 'target_type' }),
      target_id: field('adm_filter_target_id', el('input', { autocomplete: 'off', maxlength: 64 }), { name: 'target_id' }),
      from: field('adm_filter_from', el('input', { inputmode: 'numeric', autocomplete: 'off', placeholder: 'dd/mm/yyyy', maxlength: 10 }), { name: 'from' }),
      to: field('adm_filter_to', el('input', { inputmode: 'numeric', autocomplete: 'off', placeholder: 'dd/mm/yyyy', maxlength: 10 }), { name: 'to' }),
    };
    fields.action.control.id = 'audit-action';
    fields.actor.control.id = 'audit-actor';
    fields.target_type.control.id = 'audit-target-type';
    fields.target_id.control.id = 'audit-target-id';
    fields.from.control.id = 'audit-from';
    fields.to.control.id = 'audit-to';
    for (const name of ['actor', 'target_id']) fields[name].control.value = f[name];
    for (const name of ['from', 'to']) fields[name].control.value = showDay(f[name]);
    const actors = el('datalist', { id: 'audit-actors' },
      [...this.users.map((u) => u.username), 'system'].map((name) => el('option', { value: name })));
    const formError = el('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = el('form', { class: 'filter-bar audit-filters', id: 'audit-filters', novalidate: true },
      fields.action.node, fields.actor.node, fields.target_type.node, fields.target_id.node,
      fields.from.node, fields.to.node, actors,
      el('div', { class: 'filter-buttons' },
        el('button', { type: 'submit', id: 'audit-apply', class: 'button button-primary', text: t('adm_filter_apply') }),
        el('button', {
          type: 'button', id: 'audit-clear', class: 'button button-quiet', text: t('adm_filter_clear'),
          on: { click: () => { this.filters = { action: '', actor: '', target_type: '', target_id: '', from: '', to: '' }; this.restart(); this.render(); } },
        })),
      formError);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      clearErrors(fields, formError);
      const next = {};
      for (const [name, entry] of Object.entries(fields)) next[name] = entry.control.value.trim();
      let bad = null;
      for (const name of ['from', 'to']) {
        next[name] = parseDay(next[name]);
        if (next[name] === null) {
          fields[name].setError(t('adm_err_day'));
          bad = bad || fields[name].control;
        }
      }
      if (bad) {
        bad.focus();
        return;
      }
      if (next.from && next.to && next.to < next.from) {
        fields.to.setError(t('adm_err_dates'));
        fields.to.control.focus();
        return;
      }
      this.filters = next;
      this.restart();
    });
    this.pager = el('div', { class: 'pager', id: 'audit-pager' });
    this.tableBox = el('div', { class: 'section-table', id: 'audit-results' });
    fill(this.panel,
      el('div', { class: 'section-head' }, el('h2', { text: t('adm_audit_title') })),
      form, this.tableBox, this.pager);
    this.renderTable();
  }

  actionOptions() {
    const known = new Map(this.actions.map((a) => [a.action, a.count]));
    if (this.filters.action && !known.has(this.filters.action)) known.set(this.filters.action, 0);
    return [...known.entries()].map(([action, count]) => ({
      value: action, text: count ? `${actionName(action)} (${count})` : actionName(action),
    }));
  }

  restart() {
    this.cursors = [null];
    this.page = 0;
    this.load();
  }

  renderTable() {
    if (!this.tableBox) return;
    // Whether the list shows the current filters' answer (for assistive technology).
    this.tableBox.setAttribute('aria-busy', String(this.events === null));
    this.tableBox.dataset.state = this.events === null ? 'loading' : 'ready';
    if (this.error) {
      fill(this.tableBox, notice(t('adm_load_failed', { message: this.error.message }), 'error'));
      fill(this.pager);
      return;
    }
    if (this.events === null) {
      fill(this.tableBox, notice(t('loading')));
      fill(this.pager);
      return;
    }
    if (this.events.length === 0) {
      fill(this.tableBox, notice(t('adm_no_events')));
    } else {
      fill(this.tableBox, table(
        ['adm_col_time', 'adm_col_actor', 'adm_col_action', 'adm_col_target', 'adm_col_details', 'adm_col_remote'],
        this.events.map((event) => this.row(event)), { id: 'audit-table', className: 'audit-table' }));
    }
    this.renderPager();
  }

  row(event) {
    const roleText = { system: t('adm_role_system'), endpoint: t('adm_role_endpoint'), anonymous: t('adm_role_anonymous') }[event.role]
      || (event.role ? t(`role_${event.role}`) : '');
    const details = (event.before !== null || event.after !== null)
      ? el('details', { class: 'audit-details' },
        el('summary', { text: t('adm_details_show') }),
        el('div', { class: 'audit-diff' },
          event.before !== null ? el('div', {}, el('div', { class: 'diff-label', text: t('adm_before') }), el('pre', { text: JSON.stringify(event.before, null, 2) })) : null,
          event.after !== null ? el('div', {}, el('div', { class: 'diff-label', text: t('adm_after') }), el('pre', { text: JSON.stringify(event.after, null, 2) })) : null))
      : el('span', { class: 'muted', text: '—' });
    return el('tr', { data: { id: event.id, action: event.action } },
      el('td', { class: 'cell-time', text: formatStamp(event.at) }),
      el('td', {}, el('div', { class: 'cell-strong', text: event.actor }), roleText ? el('div', { class: 'muted small', text: roleText }) : null),
      el('td', {}, el('div', { text: actionName(event.action) }), el('code', { class: 'action-code', text: event.action })),
      el('td', {}, this.target(event)),
      el('td', {}, details),
      el('td', { class: 'cell-remote', text: event.remote || '—' }));
  }

  target(event) {
    const type = t(`adm_target_${event.target_type}`);
    const typeText = type === `adm_target_${event.target_type}` ? event.target_type : type;
    let name = event.target_id;
    if (event.target_type === 'endpoint') name = `${siteName(event.target_id)} (${event.target_id})`;
    else if (event.target_type === 'user') {
      const user = this.users.find((u) => String(u.id) === event.target_id);
      if (user) name = `${user.username} (#${event.target_id})`;
    }
    const value = event.target_type === 'conference' && /^\d+$/.test(event.target_id)
      ? el('a', { href: `/conferences/${event.target_id}`, text: `#${event.target_id}` })
      : el('span', { text: name });
    return [el('div', { class: 'muted small', text: typeText }), el('div', { class: 'target-name' }, value)];
  }

  renderPager() {
    const first = this.page * PAGE_SIZE + 1;
    const last = this.page * PAGE_SIZE + this.events.length;
    const newer = el('button', {
      type: 'button', id: 'audit-newer', class: 'button button-small button-quiet', disabled: this.page === 0,
      text: `← ${t('adm_newer')}`,
      on: { click: () => { this.page -= 1; this.load(); } },
    });
    const older = el('button', {
      type: 'button', id: 'audit-older', class: 'button button-small button-quiet', disabled: !this.more,
      text: `${t('adm_older')} →`,
      on: {
        click: () => {
          this.cursors[this.page + 1] = this.events[this.events.length - 1].id;
          this.page += 1;
          this.load();
        },
      },
    });
    fill(this.pager, newer,
      el('span', { class: 'pager-text', id: 'audit-page' }, t('adm_page', { page: this.page + 1 }),
        this.events.length ? ` · ${t('adm_page_rows', { first, last })}` : ''),
      older);
  }
}
