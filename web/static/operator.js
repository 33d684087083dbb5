// The operator home (/operator): one endpoint's page. Today's and this week's
// conferences (GET /api/v1/conferences?endpoint=..., which the server limits to the
// operator's own endpoint) with their documents and a link to each conference page;
// the endpoint's health and its last pre-flight test call; the join button; the
// calendar subscription link. An admin picks the endpoint (?endpoint=CODE).
// Live: conference and health events of the endpoint refresh what they change.

import {
  api, el, EventStream, fill, formatTime, formatWhen, opensAt, RUNNING, runPage, signIn, siteName,
  statusChip, ZONE,
} from './common.js';
import { onLangChange, t } from './i18n.js';
import './texts/operator.js';
import { healthChip, healthFacts, reasonsList, sinceText, testCallView } from './health_view.js';
import { CalendarCard } from './operator_calendar.js';

const app = document.getElementById('app');
const page = { me: null, code: null, conferences: [], health: null, ui: {}, documents: null };

async function main() {
  const me = await signIn(app, 'op_title', 'op_login_intro');
  page.me = me;
  if (me.role === 'operator' && me.endpoint) {
    page.code = me.endpoint;
  } else if (me.role === 'admin') {
    const wanted = new URLSearchParams(location.search).get('endpoint');
    const roster = await api('GET', '/api/v1/endpoints');
    page.roster = roster.endpoints;
    page.code = roster.endpoints.some((e) => e.code === wanted) ? wanted : null;
  } else {
    fill(app, el('div', { class: 'center-stage' }, el('div', { class: 'card notice-card' },
      el('p', { text: t('op_not_for_you') }),
      el('a', { class: 'button button-primary', href: '/', text: t('op_go_home') }))));
    return;
  }
  build();
  onLangChange(renderAll);
  renderAll();
  if (!page.code) return;
  new EventStream(onEvent).start();
  await Promise.all([loadConferences(), loadHealth(), page.calendar.load()]);
  setInterval(() => loadHealth().catch(() => {}), 60000);
  setInterval(() => loadConferences().catch(() => {}), 5 * 60000);
}

// -- layout ------------------------------------------------------------------------------------

function build() {
  const ui = page.ui;
  ui.picker = page.me.role === 'admin' ? buildPicker() : null;
  ui.title = el('h1', { id: 'op-endpoint', class: 'op-title' });
  ui.today = el('section', { id: 'op-today', class: 'card op-list' });
  ui.week = el('section', { id: 'op-week', class: 'card op-list' });
  ui.join = el('section', { id: 'op-join', class: 'card op-join' });
  ui.health = el('section', { id: 'op-health', class: 'card op-health' });
  ui.calendar = el('section', { id: 'op-calendar', class: 'card op-calendar' });
  page.calendar = page.code ? new CalendarCard(ui.calendar, page.code) : null;
  const columns = page.code ? el('div', { class: 'op-columns' },
    el('div', { class: 'op-main' }, ui.today, ui.week),
    el('div', { class: 'op-side' }, ui.join, ui.health, ui.calendar)) : null;
  fill(app, el('div', { class: 'op' }, ui.picker, page.code ? ui.title : null, columns));
}

function buildPicker() {
  const select = el('select', { id: 'op-pick', on: { change: () => {
    const url = new URL(location.href);
    url.searchParams.set('endpoint', select.value);
    location.assign(url.toString());
  } } });
  const label = el('label', { for: 'op-pick' });
  const hint = el('p', { class: 'muted small' });
  page.ui.pickerParts = { select, label, hint };
  return el('div', { class: 'op-picker card' }, el('div', { class: 'field-inline' }, label, select), hint);
}

function renderPicker() {
  const parts = page.ui.pickerParts;
  if (!parts) return;
  parts.label.textContent = t('op_pick_endpoint');
  parts.hint.textContent = t('op_pick_hint');
  fill(parts.select, el('option', { value: '', text: '—', disabled: true, selected: !page.code }),
    ...page.roster.map((e) => el('option', { value: e.code, text: siteName(e.code), selected: e.code === page.code })));
}

function renderAll() {
  renderPicker();
  if (!page.code) return;
  page.ui.title.textContent = siteName(page.code);
  renderConferences();
  renderJoin();
  renderHealth();
  page.calendar.render();
}

// -- conferences -----------------------------------------------------------------------------------

/** Today 00:00, tomorrow 00:00 and 00:00 seven days on, in Asia/Ho_Chi_Minh ("this
 * week" is the coming seven days: on a Sunday the operator wants Monday's briefing). */
function weekBounds(now = new Date()) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', {
    timeZone: ZONE, year: 'numeric', month: '2-digit', day: '2-digit',
  }).formatToParts(now).map((p) => [p.type, p.value]));
  // Asia/Ho_Chi_Minh keeps +07:00 all year (no daylight saving time).
  const today = new Date(`${parts.year}-${parts.month}-${parts.day}T00:00:00+07:00`);
  const day = 86400000;
  return { today, tomorrow: new Date(today.getTime() + day), weekEnd: new Date(today.getTime() + 7 * day) };
}

function rfc3339(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

async function loadConferences() {
  const { today, weekEnd } = weekBounds();
  const query = new URLSearchParams({
    endpoint: page.code, from: rfc3339(today), to: rfc3339(weekEnd), limit: '200',
  });
  const body = await api('GET', `/api/v1/conferences?${query}`);
  page.conferences = body.conferences.filter((c) => c.status !== 'cancelled');
  renderConferences();
  renderJoin();
}

function renderConferences() {
  const { tomorrow } = weekBounds();
  const today = page.conferences.filter((c) => Date.parse(c.start) < tomorrow.getTime());
  const later = page.conferences.filter((c) => Date.parse(c.start) >= tomorrow.getTime());
  fill(page.ui.today, el('h2', { class: 'panel-title', text: t('op_today') }),
    today.length ? el('ol', { class: 'op-conferences' }, ...today.map(conferenceItem))
      : el('p', { class: 'muted', text: t('op_today_none') }));
  fill(page.ui.week, el('h2', { class: 'panel-title', text: t('op_week') }),
    later.length ? el('ol', { class: 'op-conferences' }, ...later.map(conferenceItem))
      : el('p', { class: 'muted', text: t('op_week_none') }));
}

function conferenceItem(conference) {
  const chairing = conference.chair === page.code;
  const docs = el('div', { class: 'op-docs', data: { conference: conference.id } });
  const item = el('li', { class: 'op-conference', data: { conference: conference.id, status: conference.status } },
    el('div', { class: 'op-conf-head' },
      el('span', { class: 'op-when', text: formatWhen(conference.start, conference.end) }),
      statusChip(conference.status)),
    el('a', { class: 'op-conf-title', href: `/conferences/${conference.id}`, text: conference.title }),
    el('div', { class: 'op-conf-meta muted small' },
      chairing ? el('strong', { class: 'op-chairing', text: t('op_you_chair') }) : t('op_chair', { name: siteName(conference.chair) }),
      ' · ', t('op_sites', { count: conference.participants.length }),
      ' · ', el('a', { href: `/conferences/${conference.id}`, text: t('op_open') })),
    docs);
  showDocuments(docs, conference.id);
  return item;
}

// The documents panel is another page's work (web/static/documents_panel.js, the
// API GET /api/v1/conferences/{id}/documents). Until both exist this page says so
// instead of failing.
async function documentsModule() {
  if (page.documents === null) {
    page.documents = import('./documents_panel.js').then((module) => module, () => false);
  }
  return page.documents;
}

async function showDocuments(container, conferenceId) {
  const module = await documentsModule();
  if (module && typeof module.documentsPanel === 'function') {
    try {
      const panel = await module.documentsPanel(conferenceId);
      if (panel instanceof Node) {
        fill(container, panel);
        return;
      }
    } catch {
      // fall back to the plain list below
    }
  }
  try {
    const body = await api('GET', `/api/v1/conferences/${conferenceId}/documents`);
    const documents = body.documents || [];
    fill(container, el('div', { class: 'op-docs-title', text: t('op_documents') }),
      documents.length ? el('ul', { class: 'op-doc-list' }, ...documents.map((d) => el('li', {},
        el('a', { href: `/api/v1/documents/${d.id}/content`, download: d.filename || '', text: d.title || d.filename }))))
        : el('span', { class: 'muted small', text: t('op_documents_none') }));
  } catch {
    fill(container, el('span', { class: 'muted small', text: t('op_documents_unavailable') }));
  }
}

// -- join ------------------------------------------------------------------------------------------

function renderJoin() {
  const ui = page.ui;
  const running = page.conferences.find((c) => RUNNING.has(c.status));
  const next = page.conferences.find((c) => c.status === 'scheduled' && Date.parse(c.end) > Date.now());
  let text;
  if (running) text = t('op_join_now', { title: running.title });
  else if (next) text = t('op_join_next', { title: next.title, time: `${formatTime(opensAt(next))}` });
  else text = t('op_join_none');
  const operator = page.me.role === 'operator';
  fill(ui.join, el('h2', { class: 'panel-title', text: t('op_join_title') }),
    el('p', { class: 'op-join-text', text }),
    operator ? el('a', { id: 'op-join-button', class: `button button-join${running ? ' is-running' : ''}`, href: '/join', text: t('op_join') }) : null);
}

// -- health ------------------------------------------------------------------------------------------

async function loadHealth() {
  try {
    page.health = await api('GET', `/api/v1/health/${encodeURIComponent(page.code)}?hours=1`);
    page.healthError = null;
  } catch (error) {
    page.healthError = error;
  }
  renderHealth();
}

function renderHealth() {
  const ui = page.ui;
  const health = page.health;
  if (!health) {
    fill(ui.health, el('h2', { class: 'panel-title', text: t('op_health') }),
      page.healthError ? el('p', { class: 'form-error', text: t('op_health_failed', { message: page.healthError.message }) }) : null);
    return;
  }
  fill(ui.health,
    el('h2', { class: 'panel-title', text: t('op_health') }),
    el('div', { class: 'op-health-state', data: { state: health.state } }, healthChip(health.state),
      health.since ? el('span', { class: 'muted small', text: sinceText(health.since) }) : null),
    reasonsList(health.reasons),
    el('div', { id: 'op-preflight', class: 'op-preflight' },
      el('h3', { class: 'subhead', text: t('op_preflight') }), testCallView(health.test_call)),
    healthFacts(health, { withTestCall: false }));
}

// -- live -------------------------------------------------------------------------------------------

let reloadTimer = null;

function onEvent(event) {
  if (event.type === 'endpoint.health' && event.endpoint === page.code) {
    loadHealth();
  } else if (event.type.startsWith('conference.') || (event.type.startsWith('endpoint.') && event.endpoint === page.code)) {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => loadConferences().catch(() => {}), 1000);
  }
}

runPage(main);
