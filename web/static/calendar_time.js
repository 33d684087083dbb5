// Days and times of the calendar in Asia/Ho_Chi_Minh, whatever the browser's own zone.
//
// Vietnam has kept UTC+7 without daylight saving since 1975, so a local day is a plain
// number (days since 1970-01-01 in UTC+7) and a local time is UTC + 7 h: the views
// place hundreds of conferences with integer arithmetic instead of an Intl formatter
// per figure. Texts are always 24 h and dd/mm/yyyy.

export const OFFSET_MS = 7 * 3600 * 1000;
export const DAY_MS = 24 * 3600 * 1000;
const WEEKDAY_CODES = ['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'];

const pad = (n) => String(n).padStart(2, '0');

/** The local day (a day number) of an instant in ms. */
export function dayOf(ms) {
  return Math.floor((ms + OFFSET_MS) / DAY_MS);
}

/** The instant (ms) a local day begins. */
export function dayStart(day) {
  return day * DAY_MS - OFFSET_MS;
}

/** Minutes since local midnight of an instant. */
export function minuteOf(ms) {
  return Math.floor((ms - dayStart(dayOf(ms))) / 60000);
}

/** 0 for Monday … 6 for Sunday (a Vietnamese week starts on Monday). */
export function weekday(day) {
  return (((day + 3) % 7) + 7) % 7; // 1970-01-01 was a Thursday
}

export function mondayOf(day) {
  return day - weekday(day);
}

/** {y, m, d} of a local day. */
export function ymd(day) {
  const date = new Date(day * DAY_MS);
  return { y: date.getUTCFullYear(), m: date.getUTCMonth() + 1, d: date.getUTCDate() };
}

export function dayFromYmd(y, m, d) {
  return Math.floor(Date.UTC(y, m - 1, d) / DAY_MS);
}

export function today() {
  return dayOf(Date.now());
}

export function firstOfMonth(day) {
  const { y, m } = ymd(day);
  return dayFromYmd(y, m, 1);
}

export function addMonths(day, months) {
  const { y, m, d } = ymd(day);
  const target = dayFromYmd(y, m + months, 1);
  const last = ymd(dayFromYmd(y, m + months + 1, 1) - 1).d;
  return target + Math.min(d, last) - 1;
}

export function daysInMonth(day) {
  const { y, m } = ymd(day);
  return ymd(dayFromYmd(y, m + 1, 1) - 1).d;
}

/** ISO 8601 week number (weeks start on Monday; week 1 holds the first Thursday). */
export function isoWeek(day) {
  const thursday = mondayOf(day) + 3;
  const { y } = ymd(thursday);
  return Math.floor((thursday - dayFromYmd(y, 1, 1)) / 7) + 1;
}

/** "27/11/2026" */
export function formatDate(day) {
  const { y, m, d } = ymd(day);
  return `${pad(d)}/${pad(m)}/${y}`;
}

/** "27/11" */
export function formatDayMonth(day) {
  const { m, d } = ymd(day);
  return `${pad(d)}/${pad(m)}`;
}

/** "08:05": minutes of the day as 24 h text. */
export function formatMinutes(minutes) {
  return `${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}

/** "08:05" of an instant, in local time. */
export function formatClock(ms) {
  return formatMinutes(minuteOf(ms));
}

/** "2026-11-27": the form the URL keeps. */
export function isoDate(day) {
  const { y, m, d } = ymd(day);
  return `${y}-${pad(m)}-${pad(d)}`;
}

/** "20261127": an RRULE UNTIL date (through the end of that local day). */
export function compactDate(day) {
  return isoDate(day).replaceAll('-', '');
}

/** "2026-11-27T08:00:00+07:00": a local time the API takes. */
export function isoAt(day, minutes) {
  return `${isoDate(day)}T${formatMinutes(minutes)}:00+07:00`;
}

/** A day from "2026-11-27" (the URL), or null. */
export function parseIsoDate(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || '');
  return match ? validDay(+match[1], +match[2], +match[3]) : null;
}

/** A day from what a person types: "27/11/2026", "27-11-2026", "27.11.2026", "1/2/2027";
 * null if it is no real date. */
export function parseDate(text) {
  const match = /^\s*(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})\s*$/.exec(text || '');
  return match ? validDay(+match[3], +match[2], +match[1]) : null;
}

function validDay(y, m, d) {
  if (y < 2000 || y > 2199 || m < 1 || m > 12 || d < 1) return null;
  const day = dayFromYmd(y, m, d);
  const back = ymd(day);
  return back.m === m && back.d === d ? day : null;
}

/** Minutes of the day from "8:30", "08:30", "0830", "8h30", "8h", "8.30", "8"; null if
 * it is no time of a 24 h day. */
export function parseTime(text) {
  const value = (text || '').trim().toLowerCase();
  let match = /^(\d{1,2})\s*[:h.]\s*(\d{2})?$/.exec(value) || /^(\d{1,2})$/.exec(value);
  let hours;
  let minutes;
  if (match) {
    hours = +match[1];
    minutes = match[2] === undefined ? 0 : +match[2];
  } else {
    match = /^(\d{2})(\d{2})$/.exec(value);
    if (!match) return null;
    hours = +match[1];
    minutes = +match[2];
  }
  if (hours > 23 || minutes > 59) return null;
  return hours * 60 + minutes;
}

/** The RRULE code of a day's weekday ("MO" … "SU"). */
export function weekdayCode(day) {
  return WEEKDAY_CODES[weekday(day)];
}

/** Which of its weekday in the month a day is: 1 … 5. */
export function weekdayOrdinal(day) {
  return Math.floor((ymd(day).d - 1) / 7) + 1;
}
