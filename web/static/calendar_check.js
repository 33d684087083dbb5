// What the booking form tells the booker about its request: the state of the clash
// check (the dry run's answer: free, the clashes by endpoint and conference with their
// time, the bridge's capacity) and the API's refusals in words, by form field.

import { el, siteName } from './common.js';
import { t } from './i18n.js';
import { dayOf, formatClock, formatDate, weekday } from './calendar_time.js';

// Where a booking rule's problem (`details.problems`) is shown, and its words.
const PROBLEMS = [
  [/^end must be after start/, 'end', () => t('cal_err_end_after')],
  [/^the new end must be/, 'end', () => t('cal_err_end_after')],
  [/^a conference may last at most ([\d.]+) hours/, 'end', (m) => t('cal_err_duration', { hours: m[1].replace('.', ',') })],
  [/^start is in the past/, 'start', () => t('cal_err_past')],
  [/^start is more than (\d+) days ahead/, 'date', (m) => t('cal_err_horizon', { days: m[1] })],
  [/^setup_minutes must be between/, 'setup', () => t('cal_err_setup')],
  [/^the chair .* must be among the participants/, 'chair', () => t('cal_err_chair_member')],
  [/^unknown or retired endpoints: (.*)/, 'participants', (m) => t('cal_err_unknown_endpoints', { codes: m[1] })],
  [/rrule|recurrence|occurrence/i, 'repeat', (m) => t('cal_err_server', { message: m.input })],
];
// The schema's field names (`details[].field`) and the form's.
const FIELD_OF = {
  title: 'title', agenda: 'agenda', chair: 'chair', participants: 'participants', start: 'start',
  end: 'end', setup_minutes: 'setup', rrule: 'repeat', reason: 'general',
};

/** "Thứ Hai, 14/12/2026 07:30–09:00" */
export function whenText(startMs, endMs) {
  const day = dayOf(startMs);
  return `${t(`cal_wd_${weekday(day)}`)}, ${formatDate(day)} ${formatClock(startMs)}–${formatClock(endMs)}`;
}

/** A 422 of the booking API as {form field: words}: the booking rules'
 * `details.problems` and the schema's `details[].field`; 'general' for the rest. */
export function problemsOf(error) {
  const found = {};
  const put = (name, text) => {
    if (!found[name]) found[name] = text;
  };
  const details = error.details;
  if (details && Array.isArray(details.problems)) {
    for (const problem of details.problems) {
      const rule = PROBLEMS.find(([pattern]) => pattern.test(problem));
      if (rule) put(rule[1], rule[2](problem.match(rule[0])));
      else put('general', t('cal_err_server', { message: problem }));
    }
  } else if (Array.isArray(details)) {
    for (const { field, problem } of details) {
      const name = FIELD_OF[String(field).split('.')[0]] || 'general';
      put(name, name === 'title' ? t('cal_err_title') : t('cal_err_server', { message: problem }));
    }
  } else {
    put('general', t('cal_err_server', { message: error.message }));
  }
  return found;
}

function clashes(data) {
  const list = el('ul', { class: 'cal-conflicts', id: 'cal-conflicts' });
  for (const clash of data.conflicts || []) {
    list.append(el('li', { data: { conference: clash.conference } }, t('cal_conflict_line', {
      endpoints: clash.endpoints.map(siteName).join(', '),
      title: clash.title,
      when: whenText(Date.parse(clash.start), Date.parse(clash.end)),
    })));
  }
  if (data.capacity) {
    const at = Date.parse(data.capacity.at);
    list.append(el('li', { class: 'cal-capacity', text: t('cal_capacity_line', {
      when: `${formatDate(dayOf(at))} ${formatClock(at)}`, conferences: data.capacity.conferences,
      ports: data.capacity.ports, reason: data.capacity.reason,
    }) }));
  }
  const lines = [el('p', { class: 'cal-check-title', text: t('cal_conflicts_title') }), list];
  const more = (data.conflicts_total || 0) - (data.conflicts || []).length;
  if (more > 0) lines.push(el('p', { text: t('cal_conflicts_more', { count: more }) }));
  return lines;
}

const busy = (text) => el('p', {}, el('span', { class: 'spinner spinner-small' }), text);

/** Show the check's `state` in `box` (its data-state says which): idle, unchanged,
 * checking, uploading ({name}), ok ({occurrences}), conflict (a 409's details),
 * invalid, or error ({message}). */
export function showCheck(box, state, data = {}) {
  box.dataset.state = state;
  let lines;
  if (state === 'idle') lines = [el('p', { text: t('cal_check_idle') })];
  else if (state === 'unchanged') lines = [el('p', { text: t('cal_check_unchanged') })];
  else if (state === 'checking') lines = [busy(t('cal_check_running'))];
  else if (state === 'uploading') lines = [busy(t('cal_uploading', { name: data.name }))];
  else if (state === 'ok') {
    lines = [el('p', { text: data.occurrences > 1 ? t('cal_check_ok_series', { count: data.occurrences }) : t('cal_check_ok') })];
  } else if (state === 'conflict') lines = clashes(data);
  else if (state === 'invalid') lines = [el('p', { text: t('cal_fix_fields') })];
  else lines = [el('p', { text: t('cal_check_failed', { message: data.message || '' }) })];
  box.replaceChildren(...lines);
}
