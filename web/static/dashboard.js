// The IT dashboard (/dashboard, roles it and admin): every endpoint as a tile
// coloured by its health, live from the event stream (`endpoint.health`); filter,
// sort and group; a tile opens the endpoint's details and 24-hour charts. Beside
// the board: today's conferences with their readiness, and the monitoring tools
// (Prometheus metrics, the Grafana dashboard). A second tab: the monthly
// availability report with its CSV download.

import {
  api, el, EventStream, fill, formatTime, runPage, signIn,
} from './common.js';
import { onLangChange, t } from './i18n.js';
import './texts/dashboard.js';
import { HealthBoard } from './health_board.js';
import { HealthDetail } from './health_detail.js';
import { STATES, stateLabel } from './health_view.js';
import { TodayPanel } from './dashboard_today.js';
import { ReportPanel } from './dashboard_report.js';

const app = document.getElementById('app');
const ROLES = new Set(['it', 'admin']);
// The stream says what changes; this catches what it cannot (texts such as
// "no heartbeat for 47 s" grow older, and a missed reconnect).
const RELOAD_MS = 60000;
const TICK_MS = 30000;

const page = { board: null, detail: null, today: null, report: null, kinds: new Map(), ui: {} };

async function main() {
  const me = await signIn(app, 'dash_title', 'dash_login_intro');
  if (!ROLES.has(me.role)) {
    fill(app, el('div', { class: 'center-stage' }, el('div', { class: 'card notice-card' },
      el('p', { text: t('dash_not_for_you') }),
      el('a', { class: 'button button-primary', href: '/', text: t('dash_go_home') }))));
    return;
  }
  const roster = await api('GET', '/api/v1/endpoints');
  for (const endpoint of roster.endpoints) page.kinds.set(endpoint.code, endpoint.kind);
  build();
  const stream = new EventStream(onEvent);
  watchStream(stream);
  stream.start();
  await Promise.all([loadBoard(), page.today.load().catch(() => {})]);
  setInterval(() => loadBoard().catch(() => {}), RELOAD_MS);
  setInterval(() => page.today.load().catch(() => {}), RELOAD_MS);
  setInterval(() => page.board.tick(), TICK_MS);
  onLangChange(relabel);
  window.addEventListener('hashchange', showTab);
  showTab();
}

// -- layout ------------------------------------------------------------------------------

function build() {
  const ui = page.ui;
  ui.tabBoard = el('a', { id: 'tab-board', class: 'tab', href: '#board', role: 'tab' });
  ui.tabReport = el('a', { id: 'tab-report', class: 'tab', href: '#report', role: 'tab' });
  ui.live = el('span', { id: 'live', class: 'live', data: { live: 'false' } });
  ui.updated = el('span', { id: 'updated', class: 'muted small' });

  ui.filters = new Map();
  for (const key of ['all', ...STATES]) {
    const count = el('span', { class: 'filter-count', text: '0' });
    const label = el('span', { class: 'filter-label' });
    const button = el('button', {
      type: 'button', class: 'filter', data: { filter: key }, 'aria-pressed': String(key === 'all'),
      on: { click: () => setFilter(key) },
    }, label, count);
    ui.filters.set(key, { button, label, count });
  }
  ui.searchLabel = el('label', { for: 'board-search', class: 'sr-only' });
  ui.search = el('input', { id: 'board-search', type: 'search', autocomplete: 'off', on: { input: () => page.board.setView({ query: ui.search.value }) } });
  ui.sortLabel = el('label', { for: 'board-sort', class: 'sr-only' });
  ui.sort = el('select', { id: 'board-sort', on: { change: () => page.board.setView({ sort: ui.sort.value }) } });
  ui.groupLabel = el('label', { for: 'board-group', class: 'sr-only' });
  ui.group = el('select', { id: 'board-group', on: { change: () => page.board.setView({ group: ui.group.value }) } });

  ui.boardNode = el('div', { id: 'board', class: 'board' });
  ui.todayNode = el('section', { id: 'today', class: 'side-panel' });
  ui.linksNode = el('section', { id: 'tools', class: 'side-panel' });
  ui.reportNode = el('section', { id: 'report', class: 'report card' });

  // The board's search, sort and grouping sit in the tab bar (shown with the board),
  // so the filters and all 31 tiles fit one 1366x768 screen below it.
  ui.controls = el('div', { class: 'board-controls' },
    el('div', { class: 'search-box' }, ui.searchLabel, ui.search),
    el('div', { class: 'field-inline' }, ui.sortLabel, ui.sort),
    el('div', { class: 'field-inline' }, ui.groupLabel, ui.group));
  ui.boardView = el('div', { id: 'view-board', class: 'dash-board-view', role: 'tabpanel' },
    el('div', { class: 'dash-main' },
      el('div', { class: 'filters', role: 'group' }, ...[...ui.filters.values()].map((f) => f.button)),
      ui.boardNode),
    el('aside', { class: 'dash-side' }, ui.todayNode, ui.linksNode));
  ui.reportView = el('div', { id: 'view-report', class: 'dash-report-view', role: 'tabpanel', hidden: true }, ui.reportNode);

  fill(app, el('div', { class: 'dash' },
    el('nav', { class: 'dash-tabs' },
      el('div', { class: 'tabs', role: 'tablist' }, ui.tabBoard, ui.tabReport),
      ui.controls,
      el('div', { class: 'dash-status' }, ui.updated, ui.live)),
    ui.boardView, ui.reportView));

  page.board = new HealthBoard(ui.boardNode, { onOpen: openDetail, onCounts: showCounts });
  page.detail = new HealthDetail();
  page.today = new TodayPanel(ui.todayNode);
  page.report = new ReportPanel(ui.reportNode);
  labels();
}

function labels() {
  const ui = page.ui;
  ui.tabBoard.textContent = t('dash_tab_board');
  ui.tabReport.textContent = t('dash_tab_report');
  for (const [key, filter] of ui.filters) filter.label.textContent = key === 'all' ? t('dash_all') : stateLabel(key);
  ui.searchLabel.textContent = t('dash_search');
  ui.search.placeholder = t('dash_search_placeholder');
  ui.search.title = t('dash_search');
  ui.sortLabel.textContent = t('dash_sort');
  ui.groupLabel.textContent = t('dash_group');
  const options = (select, keys, current) => fill(select, ...keys.map(([value, key]) => el('option', { value, text: t(key), selected: value === current })));
  options(ui.sort, [['severity', 'dash_sort_severity'], ['name', 'dash_sort_name'], ['recent', 'dash_sort_recent']], page.board.view.sort);
  options(ui.group, [['state', 'dash_group_state'], ['kind', 'dash_group_kind'], ['none', 'dash_group_none']], page.board.view.group);
  liveText();
  fill(ui.linksNode,
    el('h2', { class: 'panel-title', text: t('dash_links') }),
    el('ul', { class: 'tool-links' },
      el('li', {}, el('a', { id: 'link-metrics', href: '/metrics', target: '_blank', rel: 'noopener', text: t('dash_metrics') }),
        el('span', { class: 'muted small', text: t('dash_metrics_hint') })),
      el('li', {}, el('a', { id: 'link-grafana', href: '/api/v1/monitoring/grafana-dashboard.json', download: 'vcbridge-grafana-dashboard.json', text: t('dash_grafana') }),
        el('span', { class: 'muted small', text: t('dash_grafana_hint') })),
      el('li', {}, el('a', { id: 'link-openapi', href: '/api/v1/openapi.json', target: '_blank', rel: 'noopener', text: t('dash_openapi') }))));
}

function relabel() {
  labels();
  page.board.repaintAll();
  page.today.render();
  page.report.texts();
  page.detail.relabel();
}

function showTab() {
  const report = location.hash === '#report';
  const ui = page.ui;
  ui.boardView.hidden = report;
  ui.controls.hidden = report;
  ui.reportView.hidden = !report;
  ui.tabBoard.setAttribute('aria-selected', String(!report));
  ui.tabReport.setAttribute('aria-selected', String(report));
  if (report && !page.report.report) page.report.load();
}

function setFilter(key) {
  for (const [name, filter] of page.ui.filters) filter.button.setAttribute('aria-pressed', String(name === key));
  page.board.setView({ filter: key });
}

function showCounts(counts) {
  for (const [key, filter] of page.ui.filters) {
    const text = String(counts[key] ?? 0);
    if (filter.count.textContent !== text) filter.count.textContent = text;
  }
}

// -- data --------------------------------------------------------------------------------------

async function loadBoard() {
  const body = await api('GET', '/api/v1/health');
  page.board.setAll(body.endpoints, page.kinds);
  page.loadedAt = body.time;
  liveText();
}

function liveText() {
  const ui = page.ui;
  ui.updated.textContent = page.loadedAt ? t('dash_updated', { time: formatTime(page.loadedAt) }) : '';
  ui.live.textContent = ui.live.dataset.live === 'true' ? t('dash_live') : t('dash_live_off');
}

function watchStream(stream) {
  // The stream's socket: mark the page live while it is open.
  const connect = stream.connect.bind(stream);
  stream.connect = () => {
    connect();
    const ws = stream.ws;
    if (!ws) return;
    ws.addEventListener('open', () => setLive(true));
    ws.addEventListener('close', () => setLive(false));
  };
}

function setLive(live) {
  const node = page.ui.live;
  if (node.dataset.live === String(live)) return;
  node.dataset.live = String(live);
  liveText();
  // Back after a cut: what changed while the stream was down.
  if (live && page.everLive) loadBoard().catch(() => {});
  page.everLive = page.everLive || live;
}

function onEvent(event) {
  if (event.type === 'endpoint.health' && event.endpoint) {
    page.board.applyEvent(event.endpoint, event.data);
    if (page.detail.isOpen(event.endpoint)) page.detail.changed();
  } else if (event.type === 'conference.readiness') {
    page.today.readinessEvent(event.conference);
  } else if (event.type.startsWith('conference.')) {
    page.today.soon();
  }
}

function openDetail(code) {
  page.detail.open(code).catch(() => {});
}

runPage(main);
