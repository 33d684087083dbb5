// The admin page's endpoint tokens: find an endpoint (by name, with or without
// diacritics), see its agent and calendar tokens, issue one (its secret is shown
// once, with a copy button, and for a calendar token the subscription link too),
// revoke one. The chosen endpoint is in the address (#tokens/CODE).

import { api, el, fill, rosterEndpoints, siteName, toast } from './common.js';
import { t } from './i18n.js';
import {
  collator, confirmAction, field, fold, formatStamp, notice, secretBox, select, table,
} from './admin_ui.js';

export class TokensSection {
  constructor(panel) {
    this.panel = panel;
    this.query = '';
    this.code = null;
    this.tokens = null;
    this.secret = null; // {code, token, scope}: the one just issued, shown until left
    this.error = null;
  }

  start() {
    this.code = this.hashCode();
    this.render();
    if (this.code) this.load();
  }

  shown() {
    const code = this.hashCode();
    if (code && code !== this.code) this.choose(code);
  }

  hashCode() {
    const [tab, code] = location.hash.slice(1).split('/');
    if (tab !== 'tokens' || !code) return null;
    const decoded = decodeURIComponent(code);
    return rosterEndpoints().some((e) => e.code === decoded) ? decoded : null;
  }

  render() {
    // A whole render (the language changed, the roster arrived) builds the form anew,
    // keeping what the admin already chose and typed.
    const typed = this.form && this.form.code === this.code
      ? { scope: this.form.node.querySelector('#token-scope').value, label: this.form.node.querySelector('#token-label').value }
      : null;
    this.form = null;
    const search = el('input', { type: 'search', id: 'endpoint-search', autocomplete: 'off', placeholder: t('adm_endpoint_search_hint') });
    search.value = this.query;
    search.addEventListener('input', () => {
      this.query = search.value;
      this.renderList();
    });
    // Enter in the search box picks the first match.
    search.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter') return;
      event.preventDefault();
      const first = this.list.querySelector('button');
      if (first) first.click();
    });
    this.list = el('ul', { class: 'endpoint-list', id: 'endpoint-list' });
    this.detail = el('div', { class: 'token-detail', id: 'token-detail' });
    fill(this.panel,
      el('div', { class: 'section-head' },
        el('div', {}, el('h2', { text: t('adm_tokens_title') }), el('p', { class: 'muted small', text: t('adm_tokens_intro') }))),
      el('div', { class: 'token-layout' },
        el('div', { class: 'endpoint-picker card' }, field('adm_endpoint_search', search).node, this.list),
        this.detail));
    this.renderList();
    this.renderDetail();
    if (typed && this.form) {
      this.form.node.querySelector('#token-scope').value = typed.scope;
      this.form.node.querySelector('#token-label').value = typed.label;
    }
  }

  renderList() {
    const words = fold(this.query).split(/\s+/).filter(Boolean);
    const order = collator();
    const endpoints = rosterEndpoints().filter((e) => e.active).filter((e) => {
      const haystack = fold(`${e.name} ${e.name_en} ${e.code}`);
      return words.every((word) => haystack.includes(word));
    });
    if (endpoints.length === 0) {
      fill(this.list, el('li', { class: 'muted small', text: t('adm_no_match') }));
      return;
    }
    const groups = new Map();
    for (const endpoint of endpoints) {
      if (!groups.has(endpoint.kind)) groups.set(endpoint.kind, []);
      groups.get(endpoint.kind).push(endpoint);
    }
    const items = [];
    for (const [kind, members] of groups) {
      const label = t(`adm_kind_${kind}`);
      items.push(el('li', { class: 'endpoint-group', 'aria-hidden': 'true', text: label === `adm_kind_${kind}` ? t('adm_kind_other') : label }));
      members.sort((a, b) => order.compare(siteName(a.code), siteName(b.code)));
      for (const endpoint of members) {
        const current = endpoint.code === this.code;
        items.push(el('li', {}, el('button', {
          type: 'button', class: `endpoint-item${current ? ' is-current' : ''}`, data: { code: endpoint.code },
          'aria-current': current ? 'true' : null,
          on: { click: () => this.choose(endpoint.code) },
        }, el('span', { class: 'endpoint-name', text: siteName(endpoint.code) }),
        el('span', { class: 'endpoint-code', text: endpoint.code }))));
      }
    }
    fill(this.list, items);
  }

  choose(code) {
    if (code !== this.code) this.secret = null; // a secret is never shown for another endpoint
    this.code = code;
    this.tokens = null;
    const hash = `#tokens/${encodeURIComponent(code)}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
    this.renderList();
    this.renderDetail();
    this.load();
  }

  async load() {
    const code = this.code;
    try {
      const body = await api('GET', `/api/v1/endpoints/${encodeURIComponent(code)}/tokens`);
      if (code !== this.code) return;
      this.tokens = body.tokens;
      this.error = null;
    } catch (error) {
      this.error = error;
    }
    this.renderDetail();
  }

  renderDetail() {
    if (!this.code) {
      fill(this.detail, el('div', { class: 'card empty-card' }, notice(t('adm_pick_endpoint'))));
      return;
    }
    const code = this.code;
    // The form is built once per endpoint: a re-render (the list arriving) must not
    // wipe what the admin is typing.
    if (!this.form || this.form.code !== code) this.form = { code, node: this.tokenForm(code) };
    const form = this.form.node;

    const parts = [
      el('div', { class: 'token-head' },
        el('h3', { id: 'token-endpoint', text: siteName(code) }), el('span', { class: 'endpoint-code', text: code })),
      form,
    ];
    if (this.secret && this.secret.code === code) {
      const feed = this.secret.scope === 'calendar'
        ? `${location.origin}/api/v1/endpoints/${encodeURIComponent(code)}/calendar.ics?token=${encodeURIComponent(this.secret.token)}`
        : null;
      parts.push(el('div', { class: 'secret-panel', id: 'new-token', role: 'region', 'aria-label': t('adm_token_secret') },
        secretBox(t('adm_token_secret'), this.secret.token, { id: 'token-secret', warn: !feed }),
        feed ? secretBox(t('adm_feed_link'), feed, { id: 'token-feed' }) : null,
        el('button', { type: 'button', class: 'button button-quiet button-small', id: 'hide-secret', text: t('adm_close'), on: { click: () => { this.secret = null; this.renderDetail(); } } })));
    }
    if (this.error) parts.push(notice(t('adm_load_failed', { message: this.error.message }), 'error'));
    else if (this.tokens === null) parts.push(notice(t('loading')));
    else if (this.tokens.length === 0) parts.push(notice(t('adm_no_tokens')));
    else parts.push(this.tokenTable(code));
    fill(this.detail, el('div', { class: 'card token-card' }, parts));
  }

  /** The form that issues a token for `code` (its scope and note). */
  tokenForm(code) {
    const scope = select([{ value: 'agent', text: t('adm_scope_agent') }, { value: 'calendar', text: t('adm_scope_calendar') }], 'agent');
    scope.id = 'token-scope';
    const label = el('input', { id: 'token-label', maxlength: 200, autocomplete: 'off', placeholder: t('adm_token_label_hint') });
    const issue = el('button', { type: 'submit', id: 'issue-token', class: 'button button-primary', text: t('adm_create_token') });
    const form = el('form', { class: 'token-form', novalidate: true },
      field('adm_token_scope', scope).node, field('adm_token_label', label).node, issue);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      issue.disabled = true;
      try {
        const created = await api('POST', `/api/v1/endpoints/${encodeURIComponent(code)}/tokens`,
          { scope: scope.value, label: label.value.trim() });
        this.secret = { code, token: created.token, scope: created.scope, id: created.id };
        label.value = '';
        toast(t('adm_token_created', { endpoint: siteName(code) }));
        await this.load();
        const copy = this.detail.querySelector('.copy-button');
        if (copy) copy.focus();
      } catch (error) {
        toast(t('adm_server_refused', { message: error.message }));
      } finally {
        issue.disabled = false;
      }
    });
    return form;
  }

  tokenTable(code) {
    // In use first (newest first), then the revoked and expired.
    const now = Date.now();
    const live = (token) => !token.revoked_at && !(token.expires_at && Date.parse(token.expires_at) <= now);
    const tokens = [...this.tokens].sort((a, b) => (live(b) - live(a)) || (b.id - a.id));
    const rows = tokens.map((token) => {
      const active = live(token);
      let state;
      let when = null;
      if (token.revoked_at) {
        state = t('adm_token_revoked_short');
        when = formatStamp(token.revoked_at);
      } else if (!active) state = t('adm_token_expired');
      else state = t('adm_token_active');
      return el('tr', { data: { tokenId: token.id, scope: token.scope, state: active ? 'active' : 'revoked' }, class: active ? '' : 'is-inactive' },
        el('td', {}, el('span', { class: `scope-chip scope-${token.scope}`, text: t(`adm_scope_${token.scope}`) })),
        el('td', { class: 'cell-strong', text: token.label || t('adm_no_label') }),
        el('td', { class: 'cell-time', text: formatStamp(token.created_at) }),
        el('td', { text: token.created_by || '—' }),
        el('td', { class: 'cell-time', text: token.expires_at ? formatStamp(token.expires_at) : t('adm_never') }),
        el('td', {}, el('span', { class: `chip ${active ? 'chip-live' : 'chip-cancelled'}`, text: state }),
          when ? el('span', { class: 'cell-sub', text: when }) : null),
        el('td', { class: 'cell-actions' }, active
          ? el('button', {
            type: 'button', class: 'button button-small button-danger-quiet', data: { action: 'revoke' }, text: t('adm_revoke'),
            on: { click: () => this.revoke(code, token) },
          })
          : null));
    });
    return table(['adm_col_scope', 'adm_col_label', 'adm_col_created', 'adm_col_created_by', 'adm_col_expires', 'adm_col_state', ''],
      rows, { id: 'tokens-table' });
  }

  async revoke(code, token) {
    const ok = await confirmAction(t('adm_revoke'),
      t('adm_revoke_confirm', { label: token.label || t('adm_no_label'), endpoint: siteName(code) }), t('adm_revoke'));
    if (!ok) return;
    try {
      await api('DELETE', `/api/v1/endpoints/${encodeURIComponent(code)}/tokens/${token.id}`);
      if (this.secret && this.secret.id === token.id) this.secret = null;
      toast(t('adm_revoked'));
    } catch (error) {
      toast(t('adm_server_refused', { message: error.message }));
    }
    await this.load();
  }
}
