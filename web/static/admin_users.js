// The admin page's accounts: the list (search, filters), creating an account,
// changing its role, endpoint or name, resetting its password (given, or made by
// the server and shown once), deactivating and reactivating it. Every change
// goes through the users API, which checks and audits it.

import { api, el, fill, rosterEndpoints, siteName, toast } from './common.js';
import { t } from './i18n.js';
import {
  clearErrors, collator, field, fold, notice, openDialog, confirmAction, secretBox, select,
  showApiErrors, table,
} from './admin_ui.js';

const ROLES = ['admin', 'booker', 'operator', 'it'];
const USERNAME = /^[a-z0-9][a-z0-9._-]{1,62}[a-z0-9]$/;
// Texts for the API's refusals by field (and status: 409 is a taken user name).
const FIELD_TEXTS = {
  username: 'adm_err_username', 'username:409': 'adm_err_username_taken',
  password: 'adm_err_password', endpoint: 'adm_err_endpoint', full_name: 'adm_err_full_name',
  role: 'adm_err_self', active: 'adm_err_self',
};

/** A random password of the same shape the server makes ("k7mq-x2vd-p9ht-3nwa"). */
function randomPassword() {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const bytes = crypto.getRandomValues(new Uint8Array(64));
  const chars = [...bytes].filter((b) => b < 248).map((b) => alphabet[b % alphabet.length]);
  return [0, 4, 8, 12].map((i) => chars.slice(i, i + 4).join('')).join('-');
}

function endpointOptions(withNone) {
  const endpoints = rosterEndpoints().filter((e) => e.active);
  const byKind = new Map();
  for (const endpoint of endpoints) {
    if (!byKind.has(endpoint.kind)) byKind.set(endpoint.kind, []);
    byKind.get(endpoint.kind).push({ value: endpoint.code, text: `${siteName(endpoint.code)} (${endpoint.code})` });
  }
  const groups = [...byKind.entries()].map(([kind, options]) => ({
    label: t(`adm_kind_${kind}`) === `adm_kind_${kind}` ? t('adm_kind_other') : t(`adm_kind_${kind}`),
    options,
  }));
  return [{ value: '', text: t(withNone ? 'adm_no_endpoint' : 'adm_choose_endpoint') }, ...groups];
}

export class UsersSection {
  constructor(panel, me) {
    this.panel = panel;
    this.me = me;
    this.users = [];
    this.filters = { text: '', role: '', state: '' };
    this.loaded = false;
  }

  async start() {
    this.render();
    await this.load();
  }

  shown() {
    this.load();
  }

  async load() {
    try {
      this.users = (await api('GET', '/api/v1/users')).users;
      this.loaded = true;
      this.error = null;
    } catch (error) {
      this.error = error;
    }
    this.render();
  }

  render() {
    const search = el('input', { type: 'search', id: 'user-search', autocomplete: 'off' });
    search.value = this.filters.text;
    search.addEventListener('input', () => {
      this.filters.text = search.value;
      this.renderTable();
    });
    const role = select([{ value: '', text: t('adm_all_roles') },
      ...ROLES.map((r) => ({ value: r, text: t(`role_${r}`) }))], this.filters.role);
    role.id = 'user-role-filter';
    role.addEventListener('change', () => {
      this.filters.role = role.value;
      this.renderTable();
    });
    const state = select([{ value: '', text: t('adm_all_states') },
      { value: 'active', text: t('adm_state_active') },
      { value: 'inactive', text: t('adm_state_inactive') }], this.filters.state);
    state.id = 'user-state-filter';
    state.addEventListener('change', () => {
      this.filters.state = state.value;
      this.renderTable();
    });
    this.count = el('p', { class: 'section-count', id: 'user-count', role: 'status' });
    this.tableBox = el('div', { class: 'section-table' });
    fill(this.panel,
      el('div', { class: 'section-head' },
        el('h2', { text: t('adm_users_title') }),
        el('button', {
          type: 'button', id: 'new-user', class: 'button button-primary', text: `+ ${t('adm_new_user')}`,
          on: { click: () => this.create() },
        })),
      el('div', { class: 'filter-bar' },
        field('adm_users_search', search).node,
        field('adm_users_role_filter', role).node,
        field('adm_users_state_filter', state).node,
        this.count),
      this.tableBox);
    this.renderTable();
  }

  visible() {
    const words = fold(this.filters.text).split(/\s+/).filter(Boolean);
    const order = collator();
    return this.users.filter((user) => {
      if (this.filters.role && user.role !== this.filters.role) return false;
      if (this.filters.state === 'active' && !user.active) return false;
      if (this.filters.state === 'inactive' && user.active) return false;
      const haystack = fold([user.username, user.full_name, user.endpoint || '',
        user.endpoint ? siteName(user.endpoint) : ''].join(' '));
      return words.every((word) => haystack.includes(word));
    }).sort((a, b) => order.compare(a.username, b.username));
  }

  renderTable() {
    if (!this.tableBox) return;
    if (this.error) {
      fill(this.tableBox, notice(t('adm_load_failed', { message: this.error.message }), 'error'));
      return;
    }
    if (!this.loaded) {
      fill(this.tableBox, notice(t('loading')));
      return;
    }
    const users = this.visible();
    this.count.textContent = t('adm_users_count', { shown: users.length, total: this.users.length });
    if (users.length === 0) {
      fill(this.tableBox, notice(t('adm_no_users')));
      return;
    }
    const rows = users.map((user) => {
      const self = user.id === this.myId();
      return el('tr', { data: { username: user.username }, class: user.active ? '' : 'is-inactive' },
        el('td', { class: 'cell-strong' }, user.username, self ? el('span', { class: 'muted you', text: ` ${t('adm_you')}` }) : null),
        el('td', { text: user.full_name || '—' }),
        el('td', {}, el('span', { class: `role-chip role-${user.role}`, text: t(`role_${user.role}`) })),
        el('td', { text: user.endpoint ? siteName(user.endpoint) : '—', title: user.endpoint || '' }),
        el('td', {}, el('span', {
          class: `chip ${user.active ? 'chip-live' : 'chip-cancelled'}`, data: { state: user.active ? 'active' : 'inactive' },
          text: t(user.active ? 'adm_state_active' : 'adm_state_inactive'),
        })),
        el('td', { class: 'cell-actions' },
          el('button', { type: 'button', class: 'button button-small button-quiet', data: { action: 'edit' }, text: t('adm_edit'), on: { click: () => this.edit(user) } }),
          el('button', { type: 'button', class: 'button button-small button-quiet', data: { action: 'reset' }, text: t('adm_reset_password'), on: { click: () => this.resetPassword(user) } }),
          user.active
            ? el('button', { type: 'button', class: 'button button-small button-danger-quiet', data: { action: 'deactivate' }, disabled: self, text: t('adm_deactivate'), on: { click: () => this.setActive(user, false) } })
            : el('button', { type: 'button', class: 'button button-small button-secondary', data: { action: 'activate' }, text: t('adm_activate'), on: { click: () => this.setActive(user, true) } })));
    });
    fill(this.tableBox, table(
      ['adm_col_username', 'adm_col_full_name', 'adm_col_role', 'adm_col_endpoint', 'adm_col_state', 'adm_col_actions'],
      rows, { id: 'users-table' }));
  }

  myId() {
    const mine = this.users.find((u) => u.username === this.me.name);
    return mine ? mine.id : null;
  }

  /** The create and edit form (`user` null: a new account). */
  form(user, close) {
    const creating = !user;
    const fields = {};
    const formError = el('p', { class: 'form-error', role: 'alert', hidden: true });
    if (creating) {
      fields.username = field('adm_col_username', el('input', { id: 'new-username', autocomplete: 'off', spellcheck: 'false', required: true }), { hintKey: 'adm_username_hint', name: 'username' });
    }
    fields.full_name = field('adm_col_full_name', el('input', { id: 'user-full-name', autocomplete: 'off', maxlength: 200 }), { name: 'full_name' });
    fields.role = field('adm_col_role', select(ROLES.map((r) => ({ value: r, text: t(`role_${r}`) })), user ? user.role : 'operator'), { name: 'role' });
    fields.role.control.id = 'user-role';
    fields.endpoint = field('adm_col_endpoint', select(endpointOptions(false), user && user.endpoint ? user.endpoint : ''), { hintKey: 'adm_endpoint_hint', name: 'endpoint' });
    fields.endpoint.control.id = 'user-endpoint';
    if (creating) {
      const password = el('input', { id: 'new-password', type: 'password', autocomplete: 'new-password', required: true });
      fields.password = field('adm_password', password, { hintKey: 'adm_password_hint', name: 'password' });
      fields.password.node.append(el('button', {
        type: 'button', class: 'button button-small button-quiet generate-button', id: 'generate-password',
        text: t('adm_generate'),
        on: { click: () => { password.type = 'text'; password.value = randomPassword(); password.focus(); password.select(); } },
      }));
    }
    if (user) fields.full_name.control.value = user.full_name;
    const syncEndpoint = () => {
      const operator = fields.role.control.value === 'operator';
      fields.endpoint.node.hidden = !operator;
    };
    fields.role.control.addEventListener('change', syncEndpoint);
    syncEndpoint();
    const submit = el('button', { type: 'submit', class: 'button button-primary', id: 'save-user', text: creating ? t('adm_new_user') : t('adm_save') });
    const form = el('form', { class: 'dialog-stack admin-form', novalidate: true, id: 'user-form' },
      creating ? fields.username.node : null,
      fields.full_name.node,
      el('div', { class: 'field-row' }, fields.role.node, fields.endpoint.node),
      creating ? fields.password.node : null,
      formError,
      el('div', { class: 'dialog-actions' },
        el('button', { type: 'button', class: 'button button-quiet', text: t('adm_cancel'), on: { click: () => close(null) } }),
        submit));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(fields, formError);
      const role = fields.role.control.value;
      const endpoint = role === 'operator' ? fields.endpoint.control.value : null;
      const body = { role, endpoint, full_name: fields.full_name.control.value.trim() };
      let bad = false;
      if (creating) {
        body.username = fields.username.control.value.trim();
        body.password = fields.password.control.value;
        if (!USERNAME.test(body.username)) { fields.username.setError(t('adm_err_username')); bad = true; }
        if (body.password.length < 10 || body.password.length > 256) { fields.password.setError(t('adm_err_password')); bad = true; }
      }
      if (role === 'operator' && !endpoint) { fields.endpoint.setError(t('adm_err_endpoint')); bad = true; }
      if (bad) {
        const first = form.querySelector('[aria-invalid]');
        if (first) first.focus();
        return;
      }
      submit.disabled = true;
      try {
        let saved;
        if (creating) {
          if (!endpoint) delete body.endpoint;
          saved = await api('POST', '/api/v1/users', body);
        } else {
          const changes = {};
          for (const key of ['role', 'endpoint', 'full_name']) if (body[key] !== (user[key] ?? null)) changes[key] = body[key];
          if (Object.keys(changes).length === 0) {
            close(user);
            return;
          }
          saved = await api('PATCH', `/api/v1/users/${user.id}`, changes);
        }
        close(saved);
      } catch (error) {
        showApiErrors(error, fields, formError, FIELD_TEXTS);
        const first = form.querySelector('[aria-invalid]');
        if (first) first.focus();
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  async create() {
    const saved = await openDialog(t('adm_create_title'), (close) => this.form(null, close));
    if (!saved) return;
    toast(t('adm_created', { username: saved.username }));
    this.filters.text = saved.username;
    await this.load();
  }

  async edit(user) {
    const saved = await openDialog(t('adm_edit_title', { username: user.username }), (close) => this.form(user, close));
    if (!saved || saved === user) return;
    toast(t('adm_updated', { username: saved.username }));
    await this.load();
  }

  async setActive(user, active) {
    if (!active) {
      const ok = await confirmAction(t('adm_deactivate'), t('adm_deactivate_confirm', { username: user.username }), t('adm_deactivate'));
      if (!ok) return;
    }
    try {
      await api('PATCH', `/api/v1/users/${user.id}`, { active });
      toast(t(active ? 'adm_activated' : 'adm_deactivated', { username: user.username }));
    } catch (error) {
      toast(error.status === 422 ? t('adm_err_self') : t('adm_server_refused', { message: error.message }));
    }
    await this.load();
  }

  async resetPassword(user) {
    await openDialog(t('adm_reset_title', { username: user.username }), (close) => {
      const generate = el('input', { type: 'radio', name: 'reset-mode', id: 'reset-generate', value: 'generate', checked: true });
      const choose = el('input', { type: 'radio', name: 'reset-mode', id: 'reset-choose', value: 'choose' });
      const password = el('input', { id: 'reset-password', type: 'password', autocomplete: 'new-password' });
      const fields = { password: field('adm_reset_new', password, { hintKey: 'adm_password_hint', name: 'password' }) };
      const formError = el('p', { class: 'form-error', role: 'alert', hidden: true });
      const sync = () => {
        fields.password.node.hidden = !choose.checked;
        if (choose.checked) password.focus();
      };
      generate.addEventListener('change', sync);
      choose.addEventListener('change', sync);
      const submit = el('button', { type: 'submit', id: 'reset-submit', class: 'button button-primary', text: t('adm_reset_button') });
      const body = el('div', { class: 'dialog-stack' });
      const form = el('form', { class: 'dialog-stack', novalidate: true, id: 'reset-form' },
        el('fieldset', { class: 'choice-group' },
          el('legend', { class: 'visually-hidden', text: t('adm_reset_password') }),
          el('label', { class: 'choice', for: 'reset-generate' }, generate, t('adm_reset_generate')),
          el('label', { class: 'choice', for: 'reset-choose' }, choose, t('adm_reset_choose'))),
        fields.password.node,
        el('p', { class: 'muted small', text: t('adm_reset_note') }),
        formError,
        el('div', { class: 'dialog-actions' },
          el('button', { type: 'button', class: 'button button-quiet', text: t('adm_cancel'), on: { click: () => close(null) } }),
          submit));
      sync();
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        clearErrors(fields, formError);
        const request = {};
        if (choose.checked) {
          if (password.value.length < 10 || password.value.length > 256) {
            fields.password.setError(t('adm_err_password'));
            password.focus();
            return;
          }
          request.password = password.value;
        }
        submit.disabled = true;
        try {
          const done = await api('POST', `/api/v1/users/${user.id}/password-reset`, request);
          const result = [el('p', { class: 'notice notice-ok', role: 'status', text: t('adm_reset_done', { username: user.username }) })];
          if (done.generated_password) {
            result.push(secretBox(t('adm_reset_generated', { username: user.username }), done.generated_password, { id: 'generated-password' }),
              el('p', { class: 'muted small', text: t('adm_reset_handover') }));
          }
          result.push(el('div', { class: 'dialog-actions' },
            el('button', { type: 'button', id: 'reset-close', class: 'button button-primary', text: t('adm_close'), on: { click: () => close(true) } })));
          fill(body, result);
          const focusable = body.querySelector('.copy-button') || body.querySelector('#reset-close');
          focusable.focus();
        } catch (error) {
          submit.disabled = false;
          showApiErrors(error, fields, formError, FIELD_TEXTS);
        }
      });
      fill(body, form);
      return body;
    });
  }
}
