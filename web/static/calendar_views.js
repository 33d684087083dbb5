// The calendar's views, drawn from the conferences of the visible range: a time grid of
// one day or a week, a month, and a list. Each conference is a button (keyboard: Tab,
// Enter) coloured by its status; every text is inserted as text.
//
// Our own small module rather than a vendored calendar library: FullCalendar 6 injects
// its CSS as <style> elements, which the page policy refuses (its issues 7104, 7353);
// FullCalendar 7.1.5 ships CSS files and did render under the policy, but it is a
// 957 KB bundle (plus a theme, a locale, and a Temporal polyfill for named time zones)
// for four plain views, and its first week of 189 events was no faster than this
// (docs/performance.md). Here every conference is a button, every text a text node,
// every time 24 h in the fixed UTC+7 of calendar_time.js.
//
// Positions in the time grid are fractions of the day set through the CSSOM
// (`node.style.top = …`), which the page's policy (style-src 'self') allows: no style
// attribute is parsed and no <style> element is made.

import { el, siteName } from './common.js';
import { t } from './i18n.js';
import {
  DAY_MS, dayFromYmd, dayOf, dayStart, formatClock, formatDate, formatDayMonth, mondayOf, today, weekday,
  ymd,
} from './calendar_time.js';

const DAY_MINUTES = 24 * 60;
// A short conference still gets room for its time and title.
const MIN_VISUAL_MINUTES = 25;
const MONTH_CHIPS = 3;

/** The conferences as the views use them: the API objects plus their instants (ms). */
export function prepare(conferences) {
  return conferences.map((c) => ({ ...c, startMs: Date.parse(c.start), endMs: Date.parse(c.end) }))
    .sort((a, b) => a.startMs - b.startMs || a.id - b.id);
}

function statusText(status) {
  return t(`status_${status}`);
}

function describe(c) {
  return `${c.title}, ${formatDate(dayOf(c.startMs))} ${formatClock(c.startMs)}–${formatClock(c.endMs)}, ${statusText(c.status)}`;
}

function dayHeading(day) {
  return `${t(`cal_wd_${weekday(day)}`)}, ${formatDate(day)}`;
}

/** The parts of each conference within each of `days` (a conference past midnight is
 * cut at it), laid out in columns where they overlap. */
function segmentsByDay(days, conferences) {
  const first = days[0];
  const byDay = new Map(days.map((d) => [d, []]));
  for (const c of conferences) {
    const last = dayOf(c.endMs - 1);
    for (let day = Math.max(first, dayOf(c.startMs)); day <= last; day += 1) {
      const list = byDay.get(day);
      if (!list) break; // past the range
      const base = dayStart(day);
      const s = Math.max(0, Math.round((c.startMs - base) / 60000));
      const e = Math.min(DAY_MINUTES, Math.round((c.endMs - base) / 60000));
      if (e > s) list.push({ c, s, e, col: 0, n: 1 });
    }
  }
  for (const list of byDay.values()) layout(list);
  return byDay;
}

/** Greedy columns per cluster of overlapping segments (O(n · columns)). */
function layout(segments) {
  segments.sort((a, b) => a.s - b.s || b.e - a.e);
  let cluster = [];
  let clusterEnd = -1;
  const columnEnds = [];
  const close = () => {
    for (const seg of cluster) seg.n = columnEnds.length;
    cluster = [];
    columnEnds.length = 0;
  };
  for (const seg of segments) {
    const visualEnd = Math.max(seg.e, seg.s + MIN_VISUAL_MINUTES);
    if (cluster.length && seg.s >= clusterEnd) close();
    let col = columnEnds.findIndex((end) => end <= seg.s);
    if (col === -1) {
      col = columnEnds.length;
      columnEnds.push(visualEnd);
    } else {
      columnEnds[col] = visualEnd;
    }
    seg.col = col;
    cluster.push(seg);
    clusterEnd = Math.max(clusterEnd, visualEnd);
  }
  close();
}

function percent(value) {
  return `${(value * 100).toFixed(4)}%`;
}

function eventBlock(seg) {
  const { c } = seg;
  const label = describe(c);
  const block = el('button', {
    type: 'button', class: `cal-event cal-st-${c.status}${c.series_id ? ' is-series' : ''}`,
    data: { id: c.id, status: c.status }, title: label, 'aria-label': label,
  },
  el('span', { class: 'cal-event-time', text: `${formatClock(c.startMs)}–${formatClock(c.endMs)}` }),
  el('span', { class: 'cal-event-title', text: c.title }),
  el('span', { class: 'cal-event-meta', text: `${siteName(c.chair)} · ${t('cal_participants_n', { count: c.participants.length })}` }));
  const visualEnd = Math.max(seg.e, seg.s + MIN_VISUAL_MINUTES);
  block.style.top = percent(seg.s / DAY_MINUTES);
  block.style.height = percent((visualEnd - seg.s) / DAY_MINUTES);
  block.style.left = percent(seg.col / seg.n);
  block.style.width = percent(1 / seg.n);
  if (visualEnd - seg.s < 45) block.classList.add('is-short');
  if (seg.n > 3) block.classList.add('is-narrow');
  return block;
}

/**
 * The time grid of `days` (one day, or the seven of a week) into `container`.
 * `onOpen(conference)`; `onSlot(day, minutes)` for a click on an empty slot (null: none);
 * `onDay(day)` for a click on a day's heading.
 */
export function renderTimeGrid(container, { days, conferences, onOpen, onSlot, onDay }) {
  const now = Date.now();
  const current = today();
  const byDay = segmentsByDay(days, conferences);
  const head = el('div', { class: 'cal-grid-head' }, el('div', { class: 'cal-corner' }));
  const hours = el('div', { class: 'cal-hours', 'aria-hidden': 'true' });
  for (let h = 0; h < 24; h += 1) {
    hours.append(el('div', { class: 'cal-hour', text: `${String(h).padStart(2, '0')}:00` }));
  }
  const body = el('div', { class: 'cal-grid-body' }, hours);
  for (const day of days) {
    const isToday = day === current;
    head.append(el('button', {
      type: 'button', class: `cal-day-head${isToday ? ' is-today' : ''}${weekday(day) >= 5 ? ' is-weekend' : ''}`,
      data: { day }, 'aria-label': dayHeading(day), on: { click: () => onDay(day) },
    },
    el('span', { class: 'cal-day-name', text: t(`cal_wd_${weekday(day)}`) }),
    el('span', { class: 'cal-day-date', text: formatDayMonth(day) })));
    const column = el('div', {
      class: `cal-day-col${isToday ? ' is-today' : ''}${weekday(day) >= 5 ? ' is-weekend' : ''}`,
      data: { day }, role: 'group', 'aria-label': dayHeading(day),
    });
    const fragment = document.createDocumentFragment();
    for (const seg of byDay.get(day)) fragment.append(eventBlock(seg));
    column.append(fragment);
    if (isToday) {
      const line = el('div', { class: 'cal-now', 'aria-hidden': 'true' });
      line.style.top = percent((now - dayStart(day)) / DAY_MS);
      column.append(line);
    }
    body.append(column);
  }
  // One listener for the whole grid: a conference opens, an empty slot books.
  const byId = new Map(conferences.map((c) => [c.id, c]));
  body.addEventListener('click', (event) => {
    const block = event.target.closest('.cal-event');
    if (block) {
      onOpen(byId.get(Number(block.dataset.id)));
      return;
    }
    const column = event.target.closest('.cal-day-col');
    if (!onSlot || event.target !== column) return;
    const box = column.getBoundingClientRect();
    const minutes = Math.floor(((event.clientY - box.top) / box.height) * DAY_MINUTES / 30) * 30;
    onSlot(Number(column.dataset.day), Math.max(0, Math.min(DAY_MINUTES - 60, minutes)));
  });
  // The heading scrolls with the body (sticky at the top), so the columns always line up.
  const scroller = el('div', { class: 'cal-grid-scroll' }, head, body);
  const grid = el('div', { class: `cal-grid cal-grid-${days.length === 1 ? 'day' : 'week'}` }, scroller);
  container.replaceChildren(grid);
  return scroller;
}

/** The month of `monthDay` into `container`: each day with its first conferences. */
export function renderMonth(container, { monthDay, conferences, onOpen, onDay }) {
  const { y, m } = ymd(monthDay);
  const first = mondayOf(dayFromYmd(y, m, 1));
  const lastOfMonth = dayFromYmd(y, m + 1, 1) - 1;
  const weeks = Math.ceil((lastOfMonth - first + 1) / 7);
  const byDay = new Map();
  for (const c of conferences) {
    const last = Math.min(dayOf(c.endMs - 1), first + weeks * 7 - 1);
    for (let day = Math.max(first, dayOf(c.startMs)); day <= last; day += 1) {
      if (!byDay.has(day)) byDay.set(day, []);
      byDay.get(day).push(c);
    }
  }
  const current = today();
  const head = el('div', { class: 'cal-month-head', 'aria-hidden': 'true' });
  for (let i = 0; i < 7; i += 1) {
    head.append(el('div', { class: 'cal-month-wd' },
      el('span', { class: 'cal-wd-long', text: t(`cal_wd_${i}`) }),
      el('span', { class: 'cal-wd-short', text: t(`cal_wds_${i}`) })));
  }
  const grid = el('div', { class: 'cal-month-grid', data: { weeks } });
  for (let i = 0; i < weeks * 7; i += 1) {
    const day = first + i;
    const inMonth = ymd(day).m === m;
    const list = byDay.get(day) || [];
    const cell = el('div', {
      class: `cal-month-cell${inMonth ? '' : ' is-other-month'}${day === current ? ' is-today' : ''}${weekday(day) >= 5 ? ' is-weekend' : ''}`,
      data: { day }, role: 'group', 'aria-label': dayHeading(day),
    },
    el('button', { type: 'button', class: 'cal-month-day', text: String(ymd(day).d), 'aria-label': dayHeading(day), on: { click: () => onDay(day) } }));
    for (const c of list.slice(0, MONTH_CHIPS)) {
      cell.append(el('button', {
        type: 'button', class: `cal-chip cal-st-${c.status}`, data: { id: c.id, status: c.status },
        title: describe(c), 'aria-label': describe(c), on: { click: () => onOpen(c) },
      },
      el('span', { class: 'cal-chip-time', text: formatClock(c.startMs) }),
      el('span', { class: 'cal-chip-title', text: c.title })));
    }
    if (list.length > MONTH_CHIPS) {
      cell.append(el('button', {
        type: 'button', class: 'cal-more', text: t('cal_more', { count: list.length - MONTH_CHIPS }),
        on: { click: () => onDay(day) },
      }));
    }
    grid.append(cell);
  }
  container.replaceChildren(el('div', { class: 'cal-month' }, head, grid));
}

/** The conferences of `days` as a table, a heading row per day. */
export function renderList(container, { days, conferences, onOpen }) {
  const first = days[0];
  const last = days[days.length - 1];
  const byDay = new Map();
  for (const c of conferences) {
    const day = Math.max(first, dayOf(c.startMs));
    if (day > last) continue;
    if (!byDay.has(day)) byDay.set(day, []);
    byDay.get(day).push(c);
  }
  if (!byDay.size) {
    container.replaceChildren(el('p', { class: 'cal-empty card', text: t('cal_empty_range') }));
    return;
  }
  const table = el('table', { class: 'cal-list' },
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col', class: 'cal-list-time', text: t('cal_col_time') }),
      el('th', { scope: 'col', text: t('cal_col_title') }),
      el('th', { scope: 'col', class: 'cal-list-chair', text: t('cal_col_chair') }),
      el('th', { scope: 'col', class: 'cal-list-sites', text: t('cal_col_sites') }),
      el('th', { scope: 'col', class: 'cal-list-status', text: t('cal_col_status') }))));
  for (const day of [...byDay.keys()].sort((a, b) => a - b)) {
    const tbody = el('tbody', {},
      el('tr', { class: `cal-list-day${day === today() ? ' is-today' : ''}` },
        el('th', { colspan: 5, scope: 'colgroup', text: dayHeading(day) })));
    for (const c of byDay.get(day)) {
      tbody.append(el('tr', { class: `cal-list-row cal-st-${c.status}`, data: { id: c.id, status: c.status } },
        el('td', { class: 'cal-list-time', text: `${formatClock(c.startMs)} – ${formatClock(c.endMs)}` }),
        el('td', { class: 'cal-list-title' },
          el('button', { type: 'button', class: 'cal-list-open', text: c.title, 'aria-label': describe(c), on: { click: () => onOpen(c) } }),
          c.series_id ? el('span', { class: 'cal-series-mark', text: t('cal_series_mark') }) : null,
          c.status === 'cancelled' && c.cancel_reason
            ? el('span', { class: 'cal-list-reason', text: t('cal_cancel_reason_shown', { reason: c.cancel_reason }) }) : null),
        el('td', { class: 'cal-list-chair', text: siteName(c.chair) }),
        el('td', { class: 'cal-list-sites', text: String(c.participants.length) }),
        el('td', { class: 'cal-list-status' }, el('span', { class: `chip chip-${c.status}`, text: statusText(c.status) }))));
    }
    table.append(tbody);
  }
  container.replaceChildren(el('div', { class: 'cal-list-wrap' }, table));
}
