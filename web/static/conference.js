// The conference page (/conferences/{id}): for everyone entitled to the conference.
// Before and during the meeting: its status, time, chair, agenda, participants and
// documents, the roll call and readiness live from the event stream, the chair
// console for those who may moderate and the join button for a participant's
// operator. After it: the record (GET .../record) and its PDF, the "biên bản".
//
// Everything the server sends is inserted as text (`el`/`fill`), never as HTML.

import './texts/conference.js';
import {
  api, ApiFailure, banner, el, EventStream, fill, formatSize, formatTime, formatWhen, icon,
  opensAt, RUNNING, runPage, signIn, siteName, statusChip, ZONE,
} from './common.js';
import { lang, onLangChange, rollWord, t } from './i18n.js';

const app = document.getElementById('app');
const conferenceId = Number(location.pathname.split('/')[2]);
// Roles that may moderate any conference (the bridge checks it again).
const MODERATORS = new Set(['booker', 'admin']);
const FINAL = new Set(['ended', 'cancelled']);

const page = {
  me: null,
  conference: null,
  rollcall: null,
  readiness: null,
  record: null,
  documents: null, // null: not loaded; {panel: Node} or {list: [...]} or {error}
  timers: new Map(),
};

const ui = {};

// -- start ---------------------------------------------------------------------------------

async function main() {
  const me = await signIn(app, 'conf_brand', 'conf_login_intro');
  page.me = me;
  try {
    page.conference = await api('GET', `/api/v1/conferences/${conferenceId}`);
  } catch (error) {
    if (error instanceof ApiFailure && (error.status === 404 || error.status === 422)) {
      fill(app, el('div', { class: 'center-stage' }, el('div', { class: 'card notice-card', role: 'alert', id: 'conf-missing' },
        el('p', { text: t('conf_not_found', { id: conferenceId }) }))));
      return;
    }
    throw error;
  }
  build();
  onLangChange(renderAll);
  new EventStream(onEvent).start();
  // Operators see only their own endpoint's roll call events: poll the rest.
  setInterval(() => { if (running()) refresh('rollcall'); }, 10000);
  setInterval(() => { if (!final()) refresh('readiness'); }, 60000);
  renderAll();
  await Promise.all([loadDocuments(), ...(final() ? [loadRecord()] : [loadRollcall(), loadReadiness()])]);
}

function final() {
  return FINAL.has(page.conference.status);
}

function running() {
  return RUNNING.has(page.conference.status);
}

// -- data --------------------------------------------------------------------------------------

async function quietly(load) {
  try {
    await load();
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 401) location.reload();
    banner(t('conf_refresh_failed'), 'warn', { autoHideMs: 6000 });
  }
}

function loadConference() {
  return quietly(async () => {
    const before = page.conference.status;
    page.conference = await api('GET', `/api/v1/conferences/${conferenceId}`);
    renderHead();
    if (FINAL.has(page.conference.status) && !FINAL.has(before)) await loadRecord();
    renderRoll();
  });
}

function loadRollcall() {
  return quietly(async () => {
    page.rollcall = await api('GET', `/api/v1/conferences/${conferenceId}/rollcall`);
    renderRoll();
  });
}

function loadReadiness() {
  return quietly(async () => {
    page.readiness = await api('GET', `/api/v1/conferences/${conferenceId}/readiness`);
    renderRoll();
  });
}

function loadRecord() {
  return quietly(async () => {
    page.record = await api('GET', `/api/v1/conferences/${conferenceId}/record`);
    renderRecord();
  });
}

const LOADERS = { conference: loadConference, rollcall: loadRollcall, readiness: loadReadiness, record: loadRecord };

/** Reload one kind of data soon, once for a burst of events. */
function refresh(kind, delay = 250) {
  if (page.timers.has(kind)) return;
  page.timers.set(kind, setTimeout(() => {
    page.timers.delete(kind);
    LOADERS[kind]();
  }, delay));
}

function onEvent(event) {
  const ours = event.conference === conferenceId;
  if (ours && event.type.startsWith('conference.')) {
    refresh('conference', 0);
    refresh('rollcall');
    if (event.type === 'conference.opened' || event.type === 'conference.readiness') refresh('readiness');
  } else if (ours && event.type.startsWith('endpoint.')) {
    refresh('rollcall');
  } else if (event.type === 'endpoint.health' && page.conference.participants.includes(event.endpoint) && !final()) {
    refresh('readiness', 1000);
  }
}

/** The documents: the documents page's panel when it is there, else a plain list. */
async function loadDocuments() {
  try {
    const module = await import('./documents_panel.js');
    const panel = await module.documentsPanel(conferenceId, { title: false }); // the card has its own
    if (panel instanceof Node) {
      page.documents = { panel };
      renderDocuments();
      return;
    }
  } catch {
    // Not there (yet): list them here.
  }
  try {
    const body = await api('GET', `/api/v1/conferences/${conferenceId}/documents`);
    page.documents = { list: body.documents || [] };
  } catch (error) {
    page.documents = { error: error instanceof ApiFailure && error.status === 404 ? 'none' : 'failed' };
  }
  renderDocuments();
}

// -- layout ----------------------------------------------------------------------------------

function build() {
  ui.eyebrow = el('div', { class: 'eyebrow' });
  ui.status = el('span', { id: 'conf-status' });
  ui.title = el('h1', { id: 'conf-title', class: 'conf-page-title' });
  ui.facts = el('dl', { class: 'conf-facts', id: 'conf-facts' });
  ui.notice = el('div', { id: 'cancel-notice', class: 'conf-cancelled', role: 'status', hidden: true });
  ui.actions = el('div', { class: 'conf-actions', id: 'conf-actions' });
  const head = el('section', { class: 'card conf-head' },
    el('div', { class: 'conf-head-main' },
      el('div', { class: 'conf-head-top' }, ui.eyebrow, ui.status),
      ui.title, ui.facts, ui.notice),
    ui.actions);

  ui.rollTitle = el('h2');
  ui.rollLive = el('span', { class: 'chip chip-live conf-live-chip', hidden: true });
  ui.rollSummary = el('p', { id: 'rollcall-summary', class: 'conf-roll-summary' });
  ui.readySummary = el('p', { id: 'readiness-summary', class: 'muted small' });
  ui.rollBody = el('tbody');
  ui.rollHead = el('thead');
  ui.rollTable = el('table', { class: 'conf-table', id: 'rollcall-table' }, ui.rollHead, ui.rollBody);
  ui.roll = el('section', { class: 'card conf-panel', id: 'rollcall' },
    el('div', { class: 'conf-panel-head' }, ui.rollTitle, ui.rollLive),
    ui.rollSummary, ui.readySummary,
    el('div', { class: 'table-wrap' }, ui.rollTable));

  ui.agendaTitle = el('h2');
  ui.agenda = el('div', { id: 'conf-agenda', class: 'conf-agenda' });
  ui.docsTitle = el('h2');
  ui.documents = el('div', { id: 'conf-documents', class: 'conf-documents' });
  const side = el('div', { class: 'conf-side' },
    el('section', { class: 'card conf-panel' }, ui.agendaTitle, ui.agenda),
    el('section', { class: 'card conf-panel', id: 'documents' }, ui.docsTitle, ui.documents));

  ui.record = el('section', { class: 'card conf-record', id: 'record', hidden: true });
  ui.body = el('div', { class: 'conf-body' }, ui.roll, side);
  fill(app, el('div', { class: 'conf-page' }, head, ui.record, ui.body));
}

function renderAll() {
  renderHead();
  renderRoll();
  renderDocuments();
  renderRecord();
}

// -- the conference ------------------------------------------------------------------------------

function fact(label, ...value) {
  return [el('dt', { text: label }), el('dd', {}, ...value)];
}

function renderHead() {
  const c = page.conference;
  const me = page.me;
  document.title = `${c.title} · ${t('conf_brand')}`;
  ui.eyebrow.textContent = t('conf_eyebrow');
  fill(ui.status, statusChip(c.status));
  ui.title.textContent = c.title;
  const facts = [
    fact(t('conf_when'), formatWhen(c.start, c.end)),
    !final() ? fact(t('conf_opens'), formatTime(opensAt(c))) : null,
    fact(t('conf_chair'), siteName(c.chair)),
    fact(t('conf_sites'), t('conf_sites_count', { count: c.participants.length }),
      c.rrule ? el('span', { class: 'chip conf-series-chip', text: t('conf_series') }) : null),
  ];
  fill(ui.facts, facts.flat().filter(Boolean));

  const cancelled = c.status === 'cancelled';
  ui.notice.hidden = !cancelled;
  if (cancelled) {
    fill(ui.notice, el('strong', { text: t('conf_cancelled') }),
      c.cancel_reason ? el('span', { id: 'cancel-reason', text: ` ${t('conf_cancel_reason', { reason: c.cancel_reason })}` }) : null);
  }

  const actions = [];
  const participant = me.endpoint && c.participants.includes(me.endpoint);
  if (participant && !final()) {
    actions.push(el('a', {
      id: 'join-link', class: 'button button-join conf-join', href: '/join',
      title: t('conf_join_hint', { name: siteName(me.endpoint) }),
    }, icon('camera'), el('span', { text: t('conf_join') })));
  }
  const mayModerate = MODERATORS.has(me.role) || (me.role === 'operator' && me.endpoint === c.chair);
  if (mayModerate && !final()) {
    actions.push(el('a', { id: 'chair-link', class: 'button button-secondary', href: `/chair/${c.id}` },
      icon('floor'), el('span', { text: t('conf_console') })));
  }
  if (final()) {
    actions.push(el('a', {
      id: 'pdf-link', class: 'button button-primary', href: `/api/v1/conferences/${c.id}/record.pdf`,
      download: `bien-ban-hoi-nghi-${c.id}.pdf`,
    }, icon('check'), el('span', { text: t('conf_pdf') })));
  }
  fill(ui.actions, actions);
  ui.actions.hidden = actions.length === 0;

  ui.agendaTitle.textContent = t('conf_agenda');
  if (c.agenda && c.agenda.trim()) fill(ui.agenda, el('p', { class: 'conf-agenda-text', text: c.agenda }));
  else fill(ui.agenda, el('p', { class: 'muted', text: t('conf_no_agenda') }));
}

// -- roll call and readiness --------------------------------------------------------------------

function readinessOf(code) {
  const endpoints = (page.readiness && page.readiness.endpoints) || [];
  return endpoints.find((e) => e.code === code) || null;
}

function renderRoll() {
  ui.roll.hidden = final();
  ui.body.classList.toggle('conf-body-final', final());
  if (final()) return;
  const c = page.conference;
  ui.rollTitle.textContent = t('conf_roll_title');
  ui.rollLive.textContent = t('conf_roll_live');
  ui.rollLive.hidden = !running();
  const call = page.rollcall;
  if (running() && call) {
    ui.rollSummary.textContent = t('conf_roll_summary', { connected: call.connected, expected: call.expected });
  } else {
    ui.rollSummary.textContent = t('conf_roll_not_open', { time: formatTime(opensAt(c)) });
  }
  const ready = page.readiness;
  ui.readySummary.textContent = ready ? t('conf_ready_summary', { ready: ready.ready, total: ready.total }) : '';
  fill(ui.rollHead, el('tr', {},
    el('th', { scope: 'col', text: t('conf_col_site') }),
    el('th', { scope: 'col', text: t('conf_col_roll') }),
    el('th', { scope: 'col', text: t('conf_col_ready') }),
    el('th', { scope: 'col', text: t('conf_col_since') })));
  const states = new Map(((call && call.endpoints) || []).map((e) => [e.code, e]));
  fill(ui.rollBody, c.participants.map((code) => {
    const entry = states.get(code);
    const state = running() && entry ? entry.state : 'pending';
    const label = state === 'joined' ? t('conf_roll_joined')
      : t(`roll_${running() && entry ? rollWord(entry) : state}`);
    const readiness = readinessOf(code);
    return el('tr', { data: { code, state } },
      el('td', {},
        el('span', { class: 'conf-site-name', text: siteName(code) }),
        code === c.chair ? el('span', { class: 'chip conf-chair-chip', text: t('conf_chair_mark') }) : null,
        code === page.me.endpoint ? el('span', { class: 'chip conf-you-chip', text: t('conf_you_mark') }) : null),
      el('td', {},
        el('span', { class: `roll-chip roll-chip-${state}`, text: label }),
        entry && entry.redialling ? el('span', { class: 'muted small', text: ` (${t('roll_redialling')})` }) : null),
      el('td', {}, readinessCell(readiness)),
      el('td', { class: 'muted', text: running() && entry && entry.since ? formatTime(entry.since) : '—' }));
  }));
  labelCells(ui.rollTable);
}

function readinessCell(readiness) {
  if (!readiness) return el('span', { class: 'muted', text: t('conf_ready_unknown') });
  if (readiness.ready) return el('span', { class: 'ready-yes' }, icon('check'), t('conf_ready_yes'));
  const problems = (readiness.problems || []).map((p) => (lang() === 'en' ? p.en : p.vi)).filter(Boolean);
  return el('span', { class: 'ready-no', title: problems.join('; ') }, icon('info'),
    problems.length ? problems.join('; ') : t('conf_ready_no'));
}

// -- documents ------------------------------------------------------------------------------------

function renderDocuments() {
  ui.docsTitle.textContent = t('conf_docs_title');
  const docs = page.documents;
  if (!docs) {
    fill(ui.documents, el('p', { class: 'muted', text: t('loading') }));
  } else if (docs.panel) {
    fill(ui.documents, docs.panel);
  } else if (docs.error) {
    fill(ui.documents, el('p', { class: 'muted', text: t(docs.error === 'none' ? 'conf_docs_none' : 'conf_docs_unavailable') }));
  } else if (!docs.list.length) {
    fill(ui.documents, el('p', { class: 'muted', text: t('conf_docs_none') }));
  } else {
    fill(ui.documents, el('ul', { class: 'conf-doc-list' }, docs.list.map((d) => el('li', {},
      el('a', { href: `/api/v1/documents/${d.id}/content`, download: d.filename, text: d.title || d.filename }),
      el('span', { class: 'muted small', text: ` · ${formatSize(d.size)}${d.series_id ? ` · ${t('conf_docs_series')}` : ''}` })))));
  }
}

// -- the record ----------------------------------------------------------------------------------

const DATE_TIME = () => new Intl.DateTimeFormat(lang() === 'en' ? 'en-GB' : 'vi-VN', {
  timeZone: ZONE, day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false,
});

/** "14:05 27/11/2026" (24 h, Asia/Ho_Chi_Minh). */
function moment(iso) {
  if (!iso) return '';
  const parts = Object.fromEntries(DATE_TIME().formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return `${parts.hour}:${parts.minute} ${parts.day}/${parts.month}/${parts.year}`;
}

function sameDay(a, b) {
  return moment(a).slice(6) === moment(b).slice(6);
}

/** "08:00 – 09:30" (with the days when they differ; "– now" while open). */
function span(start, end) {
  if (!end) return `${formatTime(start)} – ${t('conf_still_in')}`;
  if (!sameDay(start, end)) return `${moment(start)} – ${moment(end)}`;
  return `${formatTime(start)} – ${formatTime(end)}`;
}

function duration(seconds) {
  const total = Math.round(seconds);
  if (total < 60) return t('conf_seconds', { seconds: total });
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return t('conf_minutes', { minutes });
  return t('conf_hours_minutes', { hours: Math.floor(minutes / 60), minutes: String(minutes % 60).padStart(2, '0') });
}

function person(user, role) {
  if (!user) return '';
  const roleText = role && ['admin', 'booker', 'it', 'operator'].includes(role) ? t(`role_${role}`) : role;
  return roleText ? `${user} (${roleText})` : user;
}

function table(id, head, rows) {
  const node = el('table', { class: 'conf-table', id },
    el('thead', {}, el('tr', {}, head.map((text) => el('th', { scope: 'col', text })))),
    el('tbody', {}, rows));
  labelCells(node);
  return el('div', { class: 'table-wrap' }, node);
}

/** Each cell carries its column's heading (`data-label`): on a phone a row is shown as
 * a card, every value under its heading (conference.css). */
function labelCells(node) {
  const heads = [...node.querySelectorAll('thead th')].map((th) => th.textContent);
  for (const row of node.querySelectorAll('tbody tr')) {
    [...row.children].forEach((cell, index) => { cell.dataset.label = heads[index] || ''; });
  }
}

function block(titleKey, ...content) {
  return el('div', { class: 'conf-record-block' }, el('h3', { text: t(titleKey) }), ...content);
}

function renderRecord() {
  const record = page.record;
  ui.record.hidden = !record;
  if (!record) return;
  const c = record.conference;
  const summary = record.summary;
  const actual = c.live_at || c.opened_at ? span(c.live_at || c.opened_at, c.ended_at) : '—';
  fill(ui.record,
    el('div', { class: 'conf-panel-head' }, el('h2', { text: t('conf_record_title') }),
      record.final ? null : el('span', { class: 'chip chip-warn', text: t('conf_record_provisional') })),
    el('p', { class: 'muted small', text: t('conf_record_intro') }),
    el('div', { class: 'conf-stats' },
      stat(t('conf_record_attended'), t('conf_record_attended_value', summary), 'stat-attended'),
      stat(t('conf_record_turns'), String(record.floor.length), 'stat-turns'),
      stat(t('conf_record_actual'), actual, 'stat-actual')),
    block('conf_record_attendance', attendanceTable(record)),
    block('conf_record_floor', record.floor.length ? floorTable(record)
      : el('p', { class: 'muted', text: t('conf_record_no_floor') })),
    block('conf_record_recordings', recordingsView(record)),
    record.documents && record.documents.length ? block('conf_record_documents', documentsTable(record)) : null,
    block('conf_record_changes', changesTable(record)));
}

function stat(label, value, id) {
  return el('div', { class: 'conf-stat', id }, el('div', { class: 'conf-stat-value', text: value }),
    el('div', { class: 'conf-stat-label', text: label }));
}

function attendanceTable(record) {
  const rows = record.attendance.map((a, index) => {
    const times = a.intervals.map((i) => el('div', { class: 'interval' }, span(i.start, i.end),
      i.ended_by && i.ended_by !== 'end' ? el('span', { class: `muted small ended-${i.ended_by}`, text: ` (${t(`conf_ended_${i.ended_by}`)})` }) : null));
    const notes = [];
    if (a.chair) notes.push(t('conf_chair_mark'));
    if (a.absence) notes.push(t(`conf_absence_${a.absence}`));
    if (!a.attended && a.invitations) notes.push(t('conf_invitations', { count: a.invitations }));
    if (a.intervals.length > 1) notes.push(t('conf_times_in', { count: a.intervals.length }));
    return el('tr', { data: { code: a.code, attended: a.attended, absence: a.absence || '' } },
      el('td', { class: 'num', text: String(index + 1) }),
      el('td', { text: siteName(a.code) }),
      el('td', {}, times.length ? times : '—'),
      el('td', { text: a.attended ? duration(a.present_seconds) : '' }),
      el('td', { class: a.attended ? '' : 'absence', text: notes.join('; ') }));
  });
  return table('record-attendance', [t('conf_col_no'), t('conf_col_site'), t('conf_col_present'), t('conf_col_duration'), t('conf_col_note')], rows);
}

function floorTable(record) {
  const rows = record.floor.map((turn, index) => el('tr', { data: { code: turn.endpoint } },
    el('td', { class: 'num', text: String(index + 1) }),
    el('td', { text: siteName(turn.endpoint) }),
    el('td', { text: turn.requested_at ? formatTime(turn.requested_at) : '—' }),
    el('td', {}, span(turn.granted_at, turn.until),
      el('span', { class: 'muted small', text: ` (${t(turn.ended_by ? `conf_floor_${turn.ended_by}` : 'conf_floor_open')})` })),
    el('td', { text: duration(turn.seconds) }),
    el('td', { class: 'granted-by', text: person(turn.granted_by.user, turn.granted_by.role) || t('conf_granted_by_chair') })));
  return table('record-floor', [t('conf_col_no'), t('conf_col_site'), t('conf_col_asked'), t('conf_col_spoke'), t('conf_col_duration'), t('conf_col_granted_by')], rows);
}

function recordingsView(record) {
  if (record.recordings === null) return el('p', { class: 'muted', text: t('conf_record_recordings_hidden') });
  if (!record.recordings.length) return el('p', { class: 'muted', text: t('conf_record_no_recordings') });
  const rows = record.recordings.map((r, index) => el('tr', {},
    el('td', { class: 'num', text: String(index + 1) }),
    el('td', {}, r.recording ? r.id : el('a', {
      href: `/api/v1/conferences/${record.conference.id}/recordings/${encodeURIComponent(r.id)}`, download: r.id, text: r.id,
    })),
    el('td', { text: moment(r.started) }),
    el('td', { text: r.recording ? t('conf_recording_now') : (r.duration ? duration(r.duration) : '—') }),
    el('td', { text: formatSize(r.size) })));
  return table('record-recordings', [t('conf_col_no'), t('conf_col_file'), t('conf_col_started'), t('conf_col_duration'), t('conf_col_size')], rows);
}

function documentsTable(record) {
  const rows = record.documents.map((d, index) => el('tr', {},
    el('td', { class: 'num', text: String(index + 1) }),
    el('td', { text: d.title || d.filename }),
    el('td', { text: d.filename }),
    el('td', { text: formatSize(d.size) }),
    el('td', { text: `${d.uploaded_by} · ${moment(d.uploaded_at)}` })));
  return table('record-documents', [t('conf_col_no'), t('conf_docs_title'), t('conf_col_file'), t('conf_col_size'), t('conf_col_who')], rows);
}

function changeText(change) {
  if (change.action === 'created') {
    return change.occurrences ? t('conf_change_series', { count: change.occurrences }) : t('conf_change_booked');
  }
  if (change.action === 'cancelled') {
    return change.reason ? t('conf_cancel_reason', { reason: change.reason }) : t('conf_change_no_reason');
  }
  return change.fields.map((f) => `${t(`conf_field_${f.field}`)}: ${fieldValue(f.field, f.before)} → ${fieldValue(f.field, f.after)}`);
}

function fieldValue(name, value) {
  if (value === null || value === undefined || value === '') return '—';
  if (name === 'start' || name === 'end') return moment(value);
  if (name === 'chair') return siteName(value);
  if (Array.isArray(value)) return value.map(siteName).join(', ');
  return String(value);
}

function changesTable(record) {
  const rows = record.changes.map((change, index) => {
    const text = changeText(change);
    return el('tr', { data: { action: change.action } },
      el('td', { class: 'num', text: String(index + 1) }),
      el('td', { text: moment(change.at) }),
      el('td', { text: person(change.user, change.role) }),
      el('td', { text: t(`conf_change_${change.action}`) }),
      el('td', { class: 'change-detail' }, Array.isArray(text) ? text.map((line) => el('div', { text: line })) : text));
  });
  return table('record-changes', [t('conf_col_no'), t('conf_col_time'), t('conf_col_who'), t('conf_col_action'), t('conf_col_detail')], rows);
}

runPage(main);
