// The monthly availability report on the IT dashboard
// (GET /api/v1/reports/availability?month=YYYY-MM) as a table, with its CSV download:
// in Vietnamese for spreadsheets in Vietnam (decimal comma, `;`) when the page is in
// Vietnamese, the English form otherwise.

import { ZONE, api, el, fill } from './common.js';
import { lang, t } from './i18n.js';
import { dateTime, formatNumber, shortName } from './health_view.js';

/** The last `count` months, newest first, as YYYY-MM in Asia/Ho_Chi_Minh. */
export function recentMonths(count = 12, now = new Date()) {
  const [year, month] = new Intl.DateTimeFormat('en-CA', { timeZone: ZONE, year: 'numeric', month: '2-digit' })
    .format(now).split('-').map(Number);
  return Array.from({ length: count }, (_, i) => {
    const index = year * 12 + (month - 1) - i;
    return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, '0')}`;
  });
}

function monthLabel(month) {
  const [year, number] = month.split('-');
  return lang() === 'en'
    ? new Intl.DateTimeFormat('en-GB', { month: 'long', year: 'numeric', timeZone: 'UTC' }).format(new Date(`${month}-15T00:00:00Z`))
    : `Tháng ${Number(number)}/${year}`;
}

export class ReportPanel {
  constructor(container) {
    this.container = container;
    this.month = recentMonths(1)[0];
    this.report = null;
    this.select = el('select', { id: 'report-month', on: { change: () => this.choose(this.select.value) } });
    this.monthLabel = el('label', { for: 'report-month' });
    this.csv = el('a', { id: 'report-csv', class: 'button button-secondary', download: '' });
    this.csvHint = el('p', { class: 'muted small csv-hint' });
    this.title = el('h2', { class: 'panel-title' });
    this.period = el('p', { class: 'muted small' });
    this.status = el('p', { class: 'muted', role: 'status' });
    this.table = el('div', { class: 'report-table-wrap' });
    fill(container,
      el('div', { class: 'report-head' },
        el('div', {}, this.title, this.period),
        el('div', { class: 'report-tools' },
          el('div', { class: 'field-inline' }, this.monthLabel, this.select),
          this.csv)),
      this.csvHint, this.status, this.table);
    this.texts();
  }

  texts() {
    this.title.textContent = t('dash_report_title');
    this.monthLabel.textContent = t('dash_month');
    this.csv.textContent = t('dash_csv');
    this.csvHint.textContent = t('dash_csv_hint');
    fill(this.select, ...recentMonths().map((m) => el('option', { value: m, text: monthLabel(m), selected: m === this.month })));
    this.csv.href = this.csvUrl();
    if (this.report) this.render();
  }

  csvUrl() {
    const query = new URLSearchParams({ month: this.month, format: 'csv', lang: lang() === 'en' ? 'en' : 'vi' });
    return `/api/v1/reports/availability?${query}`;
  }

  async choose(month) {
    this.month = month;
    this.csv.href = this.csvUrl();
    await this.load();
  }

  async load() {
    this.status.textContent = t('dash_report_loading');
    this.status.hidden = false;
    try {
      this.report = await api('GET', `/api/v1/reports/availability?month=${encodeURIComponent(this.month)}`);
      this.status.hidden = true;
      this.render();
    } catch (error) {
      this.report = null;
      fill(this.table);
      this.status.textContent = t('dash_report_failed', { message: error.message });
    }
  }

  render() {
    const report = this.report;
    this.period.textContent = t('dash_report_period', {
      from: dateTime(report.from),
      to: dateTime(report.to),
    });
    const pct = (v) => (v === null ? '—' : `${formatNumber(v, 1)} %`);
    const num = (v, unit = '') => (v === null ? '—' : `${formatNumber(v, 1)}${unit}`);
    const head = ['dash_col_endpoint', 'dash_col_online', 'dash_col_offline', 'dash_col_degraded',
      'dash_col_monitored', 'dash_col_attended', 'dash_col_rtt', 'dash_col_jitter', 'dash_col_loss', 'dash_col_fps'];
    const rows = report.endpoints.map((r) => el('tr', { data: { code: r.code } },
      el('th', { scope: 'row', title: r.name, text: shortName(r.code) }),
      el('td', { class: `num ${r.online_percent !== null && r.online_percent < 95 ? 'num-bad' : ''}`, text: pct(r.online_percent) }),
      el('td', { class: 'num', text: t('dash_minutes', { n: formatNumber(r.offline_minutes, 0) }) }),
      el('td', { class: 'num', text: t('dash_minutes', { n: formatNumber(r.degraded_minutes, 0) }) }),
      el('td', { class: 'num', text: pct(r.monitored_percent) }),
      el('td', { class: 'num', text: r.conferences_invited ? t('dash_of', { a: r.conferences_attended, b: r.conferences_invited }) : '—' }),
      el('td', { class: 'num', text: num(r.mean_rtt_ms, ' ms') }),
      el('td', { class: 'num', text: num(r.mean_jitter_ms, ' ms') }),
      el('td', { class: 'num', text: r.mean_packet_loss_percent === null ? '—' : `${formatNumber(r.mean_packet_loss_percent, 2)} %` }),
      el('td', { class: 'num', text: num(r.mean_fps) })));
    fill(this.table, el('table', { id: 'report-table', class: 'report-table' },
      el('thead', {}, el('tr', {}, ...head.map((key, i) => el('th', { scope: 'col', class: i ? 'num' : '', text: t(key) })))),
      el('tbody', {}, ...rows)));
  }
}
