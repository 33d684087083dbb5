// One endpoint in detail, from a tile of the IT dashboard: its state and reasons,
// the agent's devices and version, the last test call (GET /api/v1/health/{code}),
// the last 24 hours as charts and the state changes
// (GET /api/v1/health/{code}/history?hours=24).

import { api, el, fill, formatTime, siteName } from './common.js';
import { t } from './i18n.js';
import { renderCharts } from './health_charts.js';
import {
  healthChip, healthFacts, reasonText, reasonsList, shortDate, sinceText, stateLabel,
} from './health_view.js';

export class HealthDetail {
  constructor() {
    this.code = null;
    this.charts = null;
    this.refreshTimer = null;
    this.title = el('h2', { id: 'detail-title', class: 'detail-title' });
    this.codeLine = el('div', { class: 'detail-code muted' });
    this.chip = el('span');
    this.since = el('span', { class: 'detail-since muted' });
    this.reasons = el('div', { class: 'detail-reasons' });
    this.facts = el('div', { class: 'detail-facts' });
    this.chartsTitle = el('h3', { class: 'detail-h3' });
    this.chartsBox = el('div', { id: 'detail-charts', class: 'charts' });
    this.transitionsTitle = el('h3', { class: 'detail-h3' });
    this.transitions = el('div', { id: 'detail-transitions', class: 'transitions' });
    this.closeButton = el('button', { type: 'button', class: 'button button-quiet button-small detail-close', on: { click: () => this.close() } });
    this.dialog = el('dialog', { id: 'detail', class: 'dialog detail-dialog', 'aria-labelledby': 'detail-title' },
      el('div', { class: 'detail-head' },
        el('div', { class: 'detail-head-text' }, this.title, this.codeLine),
        el('div', { class: 'detail-state' }, this.chip, this.since),
        this.closeButton),
      el('div', { class: 'detail-body' },
        el('section', { class: 'detail-side' }, this.reasons, this.facts),
        el('section', { class: 'detail-main' }, this.chartsTitle, this.chartsBox, this.transitionsTitle, this.transitions)));
    this.dialog.addEventListener('close', () => this.closed());
    document.body.append(this.dialog);
    this.onResize = () => this.charts && this.charts.resize();
  }

  isOpen(code) {
    return this.dialog.open && this.code === code;
  }

  async open(code) {
    this.code = code;
    this.history = null;
    this.health = null;
    this.texts();
    fill(this.reasons);
    fill(this.facts);
    fill(this.chartsBox, el('p', { class: 'muted', text: t('dash_loading_charts') }));
    fill(this.transitions);
    if (!this.dialog.open) this.dialog.showModal();
    window.addEventListener('resize', this.onResize);
    await Promise.all([this.loadHealth(), this.loadHistory()]);
  }

  close() {
    this.dialog.close();
  }

  closed() {
    window.removeEventListener('resize', this.onResize);
    clearTimeout(this.refreshTimer);
    if (this.charts) this.charts.destroy();
    this.charts = null;
    this.code = null;
  }

  texts() {
    this.title.textContent = siteName(this.code);
    this.codeLine.textContent = this.code;
    this.closeButton.textContent = t('dash_close');
    this.chartsTitle.textContent = t('dash_charts');
    this.transitionsTitle.textContent = t('dash_transitions');
  }

  /** The language changed: redraw what is shown. */
  relabel() {
    if (!this.dialog.open) return;
    this.texts();
    if (this.health) this.showHealth(this.health);
    if (this.history) this.showHistory(this.history);
  }

  /** An `endpoint.health` event for the endpoint shown: refresh its facts soon. */
  changed() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.loadHealth(), 1000);
  }

  async loadHealth() {
    const code = this.code;
    try {
      const health = await api('GET', `/api/v1/health/${encodeURIComponent(code)}?hours=1`);
      if (code !== this.code) return;
      this.health = health;
      this.showHealth(health);
    } catch (error) {
      if (code === this.code) fill(this.facts, el('p', { class: 'form-error', text: error.message }));
    }
  }

  showHealth(health) {
    fill(this.chip, healthChip(health.state));
    this.since.textContent = health.since ? sinceText(health.since) : '';
    fill(this.reasons, reasonsList(health.reasons));
    fill(this.facts, healthFacts(health));
  }

  async loadHistory() {
    const code = this.code;
    try {
      const history = await api('GET', `/api/v1/health/${encodeURIComponent(code)}/history?hours=24`);
      if (code !== this.code) return;
      this.history = history;
      this.showHistory(history);
    } catch (error) {
      if (code === this.code) {
        fill(this.chartsBox, el('p', { class: 'form-error', text: t('dash_charts_failed', { message: error.message }) }));
      }
    }
  }

  showHistory(history) {
    if (this.charts) this.charts.destroy();
    this.charts = renderCharts(this.chartsBox, history);
    this.chartsBox.dataset.ready = 'true';
    this.showTransitions(history);
  }

  showTransitions(history) {
    const items = [...history.transitions].reverse(); // newest first
    const parts = [];
    if (!items.length) parts.push(el('p', { class: 'muted', text: t('dash_transitions_none') }));
    if (history.transitions_total > history.transitions.length) {
      parts.push(el('p', { class: 'muted small', text: t('dash_transitions_more', {
        shown: history.transitions.length, total: history.transitions_total }) }));
    }
    if (items.length) {
      parts.push(el('ol', { class: 'transition-list' }, ...items.map((item) => el('li', { class: 'transition', data: { state: item.state } },
        el('span', { class: 'transition-when', text: `${formatTime(item.at)} ${shortDate(item.at)}` }),
        el('span', { class: 'transition-change' },
          item.previous ? `${stateLabel(item.previous)} → ` : `${t('dash_transition_first')} → `,
          healthChip(item.state)),
        item.reasons.length ? el('span', { class: 'transition-reasons', text: item.reasons.map(reasonText).join('; ') }) : null))));
    }
    if (history.state_at_start) {
      parts.push(el('p', { class: 'muted small', text: t('dash_state_at_start', { state: stateLabel(history.state_at_start) }) }));
    }
    fill(this.transitions, ...parts);
  }
}
