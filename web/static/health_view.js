// Showing an endpoint's health (GET /api/v1/health[/{code}]), shared by the IT
// dashboard and the operator home: state names, durations, numbers with a decimal
// comma, short endpoint names, and the facts card (devices, agent version, the last
// pre-flight test call). Everything from the server is inserted as text.

import { el, formatNumber as formatDecimal, formatTime, siteName } from './common.js';
import { lang, t } from './i18n.js';
import './texts/health.js';

export const STATES = ['offline', 'degraded', 'ok'];
// Sorting: the worst first.
export const SEVERITY = { offline: 0, degraded: 1, ok: 2 };

export function stateLabel(state) {
  return STATES.includes(state) ? t(`health_${state}`) : t('health_unknown');
}

/** A reason's text in the page's language (the API sends both). */
export function reasonText(reason) {
  return (lang() === 'en' ? reason.en : reason.vi) || reason.code;
}

/** "47 giây", "12 phút", "3 giờ 5 phút", "2 ngày 4 giờ". */
export function durationText(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t('health_dur_seconds', { n: s });
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return t('health_dur_minutes', { n: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return t('health_dur_hours', { h: hours, m: minutes % 60 });
  return t('health_dur_days', { d: Math.floor(hours / 24), h: hours % 24 });
}

/** A number in the page's language: a decimal comma in Vietnamese ("2,5"). */
export function formatNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return t('health_no_data');
  return formatDecimal(value, digits);
}

/** "10:02 (12 phút)": when the state began and how long ago. */
export function sinceText(iso, now = Date.now()) {
  if (!iso) return '';
  const seconds = (now - Date.parse(iso)) / 1000;
  const day = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Ho_Chi_Minh', dateStyle: 'short' });
  const sameDay = day.format(new Date(iso)) === day.format(new Date(now));
  const at = sameDay ? formatTime(iso) : `${formatTime(iso)} ${shortDate(iso)}`;
  return `${at} · ${durationText(seconds)}`;
}

function dateParts(iso) {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Asia/Ho_Chi_Minh', day: '2-digit', month: '2-digit', year: 'numeric',
  }).formatToParts(new Date(iso));
  return Object.fromEntries(parts.map((p) => [p.type, p.value]));
}

/** "27/11" in Asia/Ho_Chi_Minh (built from parts: some locales' data says "27-11"). */
export function shortDate(iso) {
  const { day, month } = dateParts(iso);
  return `${day}/${month}`;
}

/** "27/11/2026 08:05" in Asia/Ho_Chi_Minh. */
export function dateTime(iso) {
  const { day, month, year } = dateParts(iso);
  return `${day}/${month}/${year} ${formatTime(iso)}`;
}

// Prefixes that every district's name repeats: a tile shows what tells them apart.
const NAME_PREFIXES = [
  [/^UBND huyện\s+/i, ''],
  [/^UBND Thành phố\s+/i, 'TP '],
  [/^UBND Thị xã\s+/i, 'TX '],
  [/^UBND (xã|phường)\s+/i, ''],
];

/** The endpoint's name without the words every district shares ("Nga Sơn", "TP Sầm Sơn"). */
export function shortName(code) {
  const name = siteName(code);
  if (lang() === 'en') return name.replace(/\s+People's Committee$/i, '');
  for (const [pattern, replacement] of NAME_PREFIXES) {
    if (pattern.test(name)) return name.replace(pattern, replacement);
  }
  return name;
}

/** Lower case without diacritics: "nga son" finds "Nga Sơn". */
export function folded(text) {
  return String(text || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '')
    .replace(/đ/g, 'd').replace(/Đ/g, 'D').toLowerCase();
}

/** A state chip ("Mất kết nối"). */
export function healthChip(state) {
  return el('span', { class: `hchip hchip-${STATES.includes(state) ? state : 'unknown'}`, data: { state }, text: stateLabel(state) });
}

function fact(label, ...value) {
  return [el('dt', { text: label }), el('dd', {}, ...value)];
}

function percent(ratio, digits = 1) {
  return ratio === null || ratio === undefined ? t('health_no_data') : `${formatNumber(ratio * 100, digits)} %`;
}

function ms(value) {
  return value === null || value === undefined ? t('health_no_data') : `${formatNumber(value, 0)} ms`;
}

/** The last pre-flight test call, in words: "Đạt · 07:40 — 250 gói âm thanh, …". */
export function testCallView(testCall) {
  if (!testCall) return el('span', { class: 'muted', text: t('health_test_none') });
  return el('span', { class: `test-call test-call-${testCall.ok ? 'ok' : 'failed'}`, data: { ok: testCall.ok } },
    el('strong', { text: testCall.ok ? t('health_test_ok') : t('health_test_failed') }),
    ` · ${formatTime(testCall.at)} ${shortDate(testCall.at)} — `,
    t('health_test_detail', {
      audio: testCall.audio_packets, video: testCall.video_frames,
      loss: percent(testCall.loss), rtt: ms(testCall.rtt_ms),
    }));
}

function devicesView(devices) {
  if (!devices) return el('span', { class: 'muted', text: t('health_no_data') });
  return el('span', { class: 'devices' }, ...['camera', 'microphone', 'speaker'].map((name) => el('span', {
    class: `device device-${devices[name] ? 'ok' : 'missing'}`, data: { device: name, present: devices[name] },
    text: `${t(`health_${name}`)}: ${devices[name] ? t('health_device_ok') : t('health_device_missing')}`,
  })));
}

/** The facts of one endpoint's health (`health`: an entry of GET /api/v1/health). */
export function healthFacts(health, { withTestCall = true } = {}) {
  const last = health.last_heartbeat
    ? `${formatTime(health.last_heartbeat)} ${shortDate(health.last_heartbeat)} (${t('health_ago', {
      duration: durationText(health.seconds_since_heartbeat ?? (Date.now() - Date.parse(health.last_heartbeat)) / 1000),
    })})`
    : t('health_never');
  const network = health.network
    ? `${health.network.interface || ''}${health.network.interface ? ' · ' : ''}${ms(health.network.rtt_ms)}` : t('health_no_data');
  const call = health.call;
  const rows = [
    ...fact(t('health_last_heartbeat'), last),
    ...fact(t('health_event_stream'), health.event_stream ? t('health_connected') : t('health_disconnected')),
    ...fact(t('health_devices'), devicesView(health.devices)),
    ...fact(t('health_agent_version'), health.agent_version || t('health_no_data')),
    ...fact(t('health_cpu'), health.cpu_percent === null || health.cpu_percent === undefined
      ? t('health_no_data') : `${formatNumber(health.cpu_percent, 0)} %`),
    ...fact(t('health_network'), network),
  ];
  if (health.clock_offset_seconds !== null && health.clock_offset_seconds !== undefined) {
    rows.push(...fact(t('health_clock'), `${formatNumber(health.clock_offset_seconds, 1)} s`));
  }
  if (call) {
    rows.push(...fact(t('health_in_call'), `${ms(call.rtt_ms)} · ${percent(call.packet_loss_ratio)} · ${
      formatNumber(call.fps, 0)} fps`));
  }
  if (withTestCall) rows.push(...fact(t('health_test_call'), testCallView(health.test_call)));
  return el('dl', { class: 'facts' }, ...rows);
}

/** The reasons as a list (or "working normally"). */
export function reasonsList(reasons) {
  if (!reasons || !reasons.length) return el('p', { class: 'muted reasons-none', text: t('health_no_reason') });
  return el('ul', { class: 'reasons' }, ...reasons.map((r) => el('li', { data: { code: r.code }, text: reasonText(r) })));
}
