// The calendar subscription card of the operator home: the endpoint's iCalendar feed
// (GET /api/v1/endpoints/{code}/calendar.ics?token=...) with a calendar token the
// operator creates and revokes itself (POST/GET/DELETE /api/v1/endpoints/{code}/tokens,
// scope calendar; the server lets an operator touch only its own endpoint's calendar
// tokens). A new link is shown once: the service keeps only the token's hash.

import { api, el, fill, toast } from './common.js';
import { t } from './i18n.js';
import { dateTime } from './health_view.js';

export class CalendarCard {
  constructor(container, code) {
    this.container = container;
    this.code = code;
    this.tokens = [];
    this.created = null; // {url} of the link made in this visit, shown once
    this.error = el('p', { class: 'form-error', role: 'alert', hidden: true });
    this.label = el('input', { id: 'calendar-label', maxlength: '200', autocomplete: 'off' });
    this.labelText = el('label', { for: 'calendar-label' });
    this.create = el('button', { id: 'calendar-create', type: 'submit', class: 'button button-primary' });
    this.form = el('form', { class: 'calendar-form', on: { submit: (event) => { event.preventDefault(); this.add(); } } },
      el('div', { class: 'field' }, this.labelText, this.label), this.create);
    this.fresh = el('div', { id: 'calendar-new', class: 'calendar-new', hidden: true });
    this.list = el('ul', { id: 'calendar-tokens', class: 'calendar-tokens' });
    this.confirm = el('dialog', { class: 'dialog' });
    document.body.append(this.confirm);
  }

  base() {
    return `/api/v1/endpoints/${encodeURIComponent(this.code)}/tokens`;
  }

  async load() {
    try {
      const body = await api('GET', this.base());
      this.tokens = body.tokens.filter((token) => token.scope === 'calendar' && !token.revoked_at);
      this.error.hidden = true;
    } catch (error) {
      this.fail(error);
    }
    this.render();
  }

  fail(error) {
    this.error.textContent = t('op_calendar_failed', { message: error.message });
    this.error.hidden = false;
  }

  render() {
    this.labelText.textContent = t('op_calendar_label');
    this.create.textContent = t('op_calendar_create');
    this.renderFresh();
    fill(this.list, ...(this.tokens.length ? this.tokens.map((token) => el('li', { class: 'calendar-token', data: { token: token.id } },
      el('div', { class: 'calendar-token-text' },
        el('strong', { text: token.label || t('op_calendar_unnamed') }),
        el('span', { class: 'muted small', text: t('op_calendar_made', { time: token.created_at ? dateTime(token.created_at) : '', who: token.created_by }) })),
      el('button', { type: 'button', class: 'button button-small button-danger-quiet', text: t('op_calendar_revoke'), on: { click: () => this.revoke(token) } })))
      : [el('li', { class: 'muted', text: t('op_calendar_none') })]));
    fill(this.container,
      el('h2', { class: 'panel-title', text: t('op_calendar') }),
      el('p', { class: 'small', text: t('op_calendar_intro') }),
      this.form, this.fresh, this.error,
      el('h3', { class: 'subhead', text: t('op_calendar_list') }), this.list);
  }

  renderFresh() {
    if (!this.created) {
      this.fresh.hidden = true;
      return;
    }
    const url = el('input', { id: 'calendar-url', class: 'calendar-url', readonly: true, value: this.created.url, 'aria-label': t('op_calendar_created') });
    const copy = el('button', { type: 'button', class: 'button button-secondary button-small', text: t('op_calendar_copy'), on: { click: () => this.copy(url) } });
    fill(this.fresh, el('p', { class: 'small strong', text: t('op_calendar_created') }), el('div', { class: 'calendar-url-row' }, url, copy));
    this.fresh.hidden = false;
  }

  async add() {
    this.create.disabled = true;
    try {
      const created = await api('POST', this.base(), { scope: 'calendar', label: this.label.value.trim() });
      const query = new URLSearchParams({ token: created.token });
      this.created = { url: `${location.origin}/api/v1/endpoints/${encodeURIComponent(this.code)}/calendar.ics?${query}` };
      this.label.value = '';
      this.error.hidden = true;
      await this.load();
    } catch (error) {
      this.fail(error);
    } finally {
      this.create.disabled = false;
    }
  }

  async copy(input) {
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      toast(t('op_calendar_copied'));
    } catch {
      toast(t('op_calendar_copy_failed'));
    }
  }

  revoke(token) {
    const label = token.label || t('op_calendar_unnamed');
    const yes = el('button', { type: 'button', class: 'button button-danger', id: 'revoke-yes', text: t('op_confirm_revoke') });
    const no = el('button', { type: 'button', class: 'button button-quiet', text: t('op_cancel'), on: { click: () => this.confirm.close() } });
    yes.addEventListener('click', async () => {
      this.confirm.close();
      try {
        await api('DELETE', `${this.base()}/${token.id}`);
        this.created = null; // a link shown once is gone with its token or not: never again
        toast(t('op_calendar_revoked'));
        await this.load();
      } catch (error) {
        this.fail(error);
      }
    });
    fill(this.confirm, el('div', { class: 'dialog-body' },
      el('p', { text: t('op_calendar_revoke_confirm', { label }) }),
      el('div', { class: 'dialog-actions' }, no, yes)));
    this.confirm.showModal();
    no.focus();
  }
}
