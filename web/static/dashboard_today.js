// Today's conferences on the IT dashboard, each with its readiness
// (GET /api/v1/conferences for today, GET /api/v1/conferences/{id}/readiness for
// those not over): who is not ready, and why.

import { ZONE, api, el, fill, formatTime, statusChip } from './common.js';
import { t } from './i18n.js';
import { reasonText, shortName } from './health_view.js';

const ACTIVE = new Set(['scheduled', 'open', 'live']);

/** Midnight today and tomorrow in Asia/Ho_Chi_Minh, as RFC 3339 with the offset. */
export function todayBounds(now = new Date()) {
  const day = new Intl.DateTimeFormat('en-CA', { timeZone: ZONE, year: 'numeric', month: '2-digit', day: '2-digit' }).format(now);
  const start = new Date(`${day}T00:00:00+07:00`);
  const end = new Date(start.getTime() + 86400000);
  return { from: `${day}T00:00:00+07:00`, to: end.toISOString().replace('.000Z', 'Z'), start, end };
}

function barFill(readiness) {
  const node = el('span', { class: 'readiness-fill' });
  // The CSSOM, not a style attribute: the page policy allows the one, not the other.
  node.style.transform = `scaleX(${readiness.ready / Math.max(1, readiness.total)})`;
  return node;
}

export class TodayPanel {
  constructor(container) {
    this.container = container;
    this.conferences = [];
    this.readiness = new Map(); // id -> readiness answer
    this.title = el('h2', { class: 'panel-title' });
    this.list = el('ol', { id: 'today-list', class: 'today-list' });
    this.empty = el('p', { class: 'muted', hidden: true });
    fill(container, this.title, this.list, this.empty);
    this.reloadTimer = null;
  }

  async load() {
    const { from, to } = todayBounds();
    const query = new URLSearchParams({ from, to, limit: '500' });
    const body = await api('GET', `/api/v1/conferences?${query}`);
    this.conferences = body.conferences.filter((c) => c.status !== 'cancelled');
    const active = this.conferences.filter((c) => ACTIVE.has(c.status));
    const answers = await Promise.all(active.map((c) => api('GET', `/api/v1/conferences/${c.id}/readiness`).catch(() => null)));
    this.readiness = new Map();
    active.forEach((c, i) => answers[i] && this.readiness.set(c.id, answers[i]));
    this.render();
  }

  /** A booking or lifecycle event: reload soon (a burst of events, one reload). */
  soon() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.load().catch(() => {}), 1000);
  }

  /** A `conference.readiness` event. */
  readinessEvent(conferenceId) {
    if (this.conferences.some((c) => c.id === conferenceId)) this.soon();
  }

  render() {
    this.title.textContent = t('dash_today');
    this.empty.textContent = t('dash_today_none');
    this.empty.hidden = this.conferences.length > 0;
    fill(this.list, ...this.conferences.map((c) => this.item(c)));
  }

  item(conference) {
    const readiness = this.readiness.get(conference.id);
    const parts = [
      el('div', { class: 'today-head' },
        el('span', { class: 'today-time', text: `${formatTime(conference.start)}–${formatTime(conference.end)}` }),
        statusChip(conference.status)),
      el('a', { class: 'today-title', href: `/conferences/${conference.id}`, title: t('dash_open_conference'), text: conference.title }),
    ];
    if (readiness) {
      const notReady = readiness.endpoints.filter((e) => !e.ready);
      const complete = readiness.ready === readiness.total;
      parts.push(el('div', { class: `readiness ${complete ? 'readiness-ok' : 'readiness-bad'}`, data: { ready: readiness.ready, total: readiness.total } },
        el('span', { class: 'readiness-bar', role: 'img', 'aria-label': t('dash_ready', readiness) }, barFill(readiness)),
        el('span', { class: 'readiness-text', text: t('dash_ready', readiness) })));
      if (notReady.length) {
        parts.push(el('ul', { class: 'not-ready' }, ...notReady.slice(0, 6).map((e) => el('li', {},
          el('strong', { text: shortName(e.code) }), ': ',
          (e.problems.length ? e.problems.map(reasonText).join('; ') : t('dash_not_ready')))),
          notReady.length > 6 ? el('li', { class: 'muted', text: `+${notReady.length - 6}` }) : null));
      }
    } else if (ACTIVE.has(conference.status)) {
      parts.push(el('div', { class: 'muted small', text: t('dash_readiness_unknown') }));
    }
    return el('li', { class: 'today-item', data: { conference: conference.id, status: conference.status }}, ...parts);
  }
}
