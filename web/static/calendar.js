// The booking calendar (/calendar): every conference across the endpoints by week
// (the default), day, month or as a list, coloured by status, filtered by endpoint;
// bookers and admins book, edit, extend and cancel in the form (calendar_form.js), IT
// staff read. Only the visible range is fetched (the list API is paged), and the page
// follows the event stream, so a change made elsewhere shows within a second.
//
// Performance marks: `cal-data` when the range's conferences have arrived,
// `cal-rendered` once the view is built and laid out (measure `cal-render`), and
// `cal-painted` after the next frame (measure `cal-paint`); bench/calendar.py reads them.

import './texts/calendar.js';
import {
  EventStream, api, el, fill, loadRoster, logOut, loginForm, runPage, setupFrame, showUser,
  toast, whoAmI,
} from './common.js';
import { lang, onLangChange, t } from './i18n.js';
import { ConferenceForm } from './calendar_form.js';
import { prepare, renderList, renderMonth, renderTimeGrid } from './calendar_views.js';
import {
  addMonths, dayFromYmd, dayStart, formatDate, formatDayMonth, isoDate, isoWeek, mondayOf,
  parseIsoDate, today, weekday, ymd,
} from './calendar_time.js';

const VIEWS = ['day', 'week', 'month', 'list'];
const STATUSES = ['scheduled', 'open', 'live', 'ended', 'cancelled'];
const PAGE_LIMIT = 500;
const REFRESH_DELAY_MS = 700;
const FIRST_HOUR = 7; // the time grid opens scrolled to 07:00

setupFrame('cal_brand');
runPage(main);

async function main() {
  const app = document.getElementById('app');
  let me = await whoAmI();
  if (!me) me = await loginForm(app, 'cal_login_intro');
  showUser(me, async () => {
    await logOut();
    location.reload();
  });
  if (!['admin', 'booker', 'it'].includes(me.role)) {
    const render = () => fill(app, el('div', { class: 'center-stage' },
      el('div', { class: 'card notice-card' },
        el('p', { text: t('cal_not_for_role') }),
        el('p', {}, el('a', { href: '/join', text: t('cal_go_join') })))));
    render();
    onLangChange(render);
    return;
  }
  await loadRoster();
  const endpoints = (await api('GET', '/api/v1/endpoints')).endpoints;
  new CalendarPage(app, me, endpoints).start();
}

class CalendarPage {
  constructor(app, me, endpoints) {
    this.app = app;
    this.me = me;
    this.endpoints = endpoints;
    this.canBook = me.role === 'booker' || me.role === 'admin';
    this.conferences = [];
    this.loadSeq = 0;
    this.loaded = false;
    this.refreshTimer = null;
    this.lastGrid = null; // the view whose scroll position to keep
    const params = new URLSearchParams(location.search);
    this.view = VIEWS.includes(params.get('view')) ? params.get('view') : 'week';
    this.day = parseIsoDate(params.get('date')) ?? today();
    this.endpoint = endpoints.some((e) => e.code === params.get('endpoint')) ? params.get('endpoint') : '';
    this.showCancelled = params.get('cancelled') !== '0';
    this.form = new ConferenceForm({
      endpoints, me, onSaved: (day, message) => this.saved(day, message),
    });
  }

  start() {
    this.build();
    this.load();
    onLangChange(() => {
      this.texts();
      this.render();
    });
    new EventStream((event) => {
      if (String(event.type).startsWith('conference.')) this.refreshSoon();
    }).start();
  }

  // -- the frame -------------------------------------------------------------------------

  build() {
    const button = (id, cls, on) => el('button', { type: 'button', id, class: cls, on: { click: on } });
    this.todayButton = button('cal-today', 'button button-quiet', () => this.go(today()));
    this.prevButton = button('cal-prev', 'button button-quiet cal-arrow', () => this.step(-1));
    this.nextButton = button('cal-next', 'button button-quiet cal-arrow', () => this.step(1));
    this.prevButton.textContent = '‹';
    this.nextButton.textContent = '›';
    this.rangeTitle = el('h1', { id: 'cal-range', class: 'cal-range', 'aria-live': 'polite' });
    this.viewButtons = new Map(VIEWS.map((view) => [view, button(`cal-view-${view}`, 'cal-view-button', () => this.setView(view))]));
    this.viewGroup = el('div', { class: 'cal-views', role: 'group' }, ...this.viewButtons.values());
    this.filter = el('select', { id: 'cal-endpoint', class: 'cal-filter-select' });
    this.filter.addEventListener('change', () => {
      this.endpoint = this.filter.value;
      this.load();
    });
    this.filterLabel = el('label', { for: 'cal-endpoint', class: 'cal-filter-label' });
    this.cancelledBox = el('input', { type: 'checkbox', id: 'cal-show-cancelled', checked: this.showCancelled });
    this.cancelledBox.addEventListener('change', () => {
      this.showCancelled = this.cancelledBox.checked;
      this.writeUrl();
      this.render();
    });
    this.cancelledLabel = el('span');
    this.newButton = el('button', { type: 'button', id: 'cal-new', class: 'button button-primary', hidden: !this.canBook },
      el('span', { class: 'cal-plus', 'aria-hidden': 'true', text: '+' }), el('span', { class: 'cal-new-label' }));
    // A new booking starts on the first day shown that is not past.
    this.newButton.addEventListener('click', () => this.form.openNew(Math.max(this.range().first, today()), 8 * 60));
    this.count = el('span', { class: 'cal-count muted', 'aria-live': 'polite' });
    this.legend = el('ul', { class: 'cal-legend' });
    this.readOnly = el('p', { class: 'notice notice-info cal-read-only', hidden: this.canBook });
    this.viewNode = el('div', { id: 'cal-view', class: 'cal-view', data: { state: 'loading' } });
    fill(this.app, el('div', { class: 'calendar' },
      el('div', { class: 'cal-toolbar' },
        el('div', { class: 'cal-nav' }, this.todayButton, this.prevButton, this.nextButton, this.rangeTitle),
        this.viewGroup,
        el('div', { class: 'cal-filter' }, this.filterLabel, this.filter),
        this.newButton),
      el('div', { class: 'cal-subbar' }, this.legend,
        el('label', { class: 'cal-check', for: 'cal-show-cancelled' }, this.cancelledBox, this.cancelledLabel),
        this.count),
      this.readOnly,
      this.viewNode));
    this.texts();
  }

  texts() {
    this.todayButton.textContent = t('cal_today');
    const unit = { day: 'day', week: 'week', list: 'week', month: 'month' }[this.view];
    this.prevButton.setAttribute('aria-label', t(`cal_prev_${unit}`));
    this.nextButton.setAttribute('aria-label', t(`cal_next_${unit}`));
    this.prevButton.title = t(`cal_prev_${unit}`);
    this.nextButton.title = t(`cal_next_${unit}`);
    this.viewGroup.setAttribute('aria-label', t('cal_view'));
    for (const [view, node] of this.viewButtons) {
      node.textContent = t(`cal_view_${view}`);
      node.setAttribute('aria-pressed', String(view === this.view));
    }
    this.filterLabel.textContent = t('cal_filter');
    const options = [el('option', { value: '', text: t('cal_filter_all') })];
    const kinds = [...new Set(this.endpoints.map((e) => e.kind))];
    for (const kind of kinds) {
      const label = ['provincial', 'district', 'commune'].includes(kind) ? t(`cal_picker_group_${kind}`) : kind;
      const group = el('optgroup', { label });
      for (const endpoint of this.endpoints.filter((e) => e.kind === kind)) {
        group.append(el('option', { value: endpoint.code, text: (lang() === 'en' && endpoint.name_en) || endpoint.name }));
      }
      options.push(group);
    }
    fill(this.filter, options);
    this.filter.value = this.endpoint;
    this.cancelledLabel.textContent = t('cal_show_cancelled');
    this.newButton.querySelector('.cal-new-label').textContent = t('cal_new');
    this.readOnly.textContent = t('cal_read_only');
    this.legend.setAttribute('aria-label', t('cal_legend'));
    fill(this.legend, STATUSES.map((status) => el('li', { class: `cal-legend-item cal-st-${status}` },
      el('span', { class: 'cal-swatch', 'aria-hidden': 'true' }), t(`status_${status}`))));
    this.rangeTitle.textContent = this.title();
  }

  // -- the range -----------------------------------------------------------------------

  /** The days shown and the days whose conferences are fetched. */
  range() {
    if (this.view === 'day') return { days: [this.day], first: this.day, last: this.day };
    if (this.view === 'month') {
      const { y, m } = ymd(this.day);
      const first = mondayOf(dayFromYmd(y, m, 1));
      const end = dayFromYmd(y, m + 1, 1);
      const weeks = Math.ceil((end - first) / 7);
      return { days: null, first, last: first + weeks * 7 - 1 };
    }
    const first = mondayOf(this.day);
    const days = Array.from({ length: 7 }, (_, i) => first + i);
    return { days, first, last: first + 6 };
  }

  title() {
    if (this.view === 'day') return `${t(`cal_wd_${weekday(this.day)}`)}, ${formatDate(this.day)}`;
    if (this.view === 'month') {
      const { y, m } = ymd(this.day);
      return t('cal_month_title', { month: m, year: y });
    }
    const first = mondayOf(this.day);
    return t('cal_week_title', { week: isoWeek(first), from: formatDayMonth(first), to: formatDate(first + 6) });
  }

  go(day) {
    this.day = day;
    this.load();
  }

  step(direction) {
    if (this.view === 'day') this.go(this.day + direction);
    else if (this.view === 'month') this.go(addMonths(this.day, direction));
    else this.go(this.day + 7 * direction);
  }

  setView(view) {
    this.view = view;
    this.texts();
    this.load();
  }

  writeUrl() {
    const params = new URLSearchParams({ view: this.view, date: isoDate(this.day) });
    if (this.endpoint) params.set('endpoint', this.endpoint);
    if (!this.showCancelled) params.set('cancelled', '0');
    history.replaceState(null, '', `${location.pathname}?${params}`);
  }

  // -- data ---------------------------------------------------------------------------------

  /** Every conference of the visible range, page by page. */
  async fetchRange(first, last) {
    const conferences = [];
    let offset = 0;
    for (;;) {
      const query = new URLSearchParams({
        from: new Date(dayStart(first)).toISOString(),
        to: new Date(dayStart(last + 1)).toISOString(),
        limit: String(PAGE_LIMIT),
        offset: String(offset),
      });
      if (this.endpoint) query.set('endpoint', this.endpoint);
      const page = await api('GET', `/api/v1/conferences?${query}`);
      conferences.push(...page.conferences);
      if (page.next_offset === null || page.next_offset === undefined) return conferences;
      offset = page.next_offset;
    }
  }

  async load({ quiet = false } = {}) {
    const seq = ++this.loadSeq;
    this.writeUrl();
    this.texts();
    const { first, last } = this.range();
    if (!quiet) this.viewNode.dataset.state = 'loading';
    this.viewNode.setAttribute('aria-busy', 'true');
    let conferences;
    try {
      conferences = await this.fetchRange(first, last);
    } catch (error) {
      if (seq !== this.loadSeq) return;
      this.viewNode.dataset.state = 'error';
      this.viewNode.removeAttribute('aria-busy');
      toast(t('cal_check_failed', { message: error.message }));
      return;
    }
    if (seq !== this.loadSeq) return;
    performance.mark('cal-data');
    this.loaded = true;
    this.conferences = prepare(conferences);
    this.render();
  }

  refreshSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.load({ quiet: true }), REFRESH_DELAY_MS);
  }

  saved(day, message) {
    if (message) toast(message);
    const { first, last } = this.range();
    if (day < first || day > last) this.day = day; // show where the booking went
    this.load({ quiet: true });
  }

  // -- drawing ------------------------------------------------------------------------------

  render() {
    if (!this.loaded) return;
    const shown = this.showCancelled ? this.conferences : this.conferences.filter((c) => c.status !== 'cancelled');
    const gridKey = `${this.view}`;
    const oldScroller = this.viewNode.querySelector('.cal-grid-scroll');
    const keepScroll = oldScroller && this.lastGrid === gridKey ? oldScroller.scrollTop : null;
    const onOpen = (c) => this.form.openExisting(c);
    const onDay = (day) => {
      this.day = day;
      this.setView('day');
    };
    const { days } = this.range();
    if (this.view === 'month') {
      renderMonth(this.viewNode, { monthDay: this.day, conferences: shown, onOpen, onDay });
    } else if (this.view === 'list') {
      renderList(this.viewNode, { days, conferences: shown, onOpen });
    } else {
      const onSlot = this.canBook ? (day, minutes) => this.form.openNew(day, minutes) : null;
      const scroller = renderTimeGrid(this.viewNode, { days, conferences: shown, onOpen, onSlot, onDay });
      const hour = scroller.querySelector('.cal-grid-body').offsetHeight / 24; // lays it out
      scroller.scrollTop = keepScroll ?? FIRST_HOUR * hour - 10; // 07:00's label in sight
    }
    this.lastGrid = gridKey;
    void this.viewNode.offsetHeight; // the layout belongs to the render
    performance.mark('cal-rendered');
    const measure = performance.measure('cal-render', 'cal-data', 'cal-rendered');
    this.viewNode.dataset.renderMs = measure.duration.toFixed(1);
    this.viewNode.dataset.count = String(shown.length);
    this.viewNode.dataset.state = 'ready';
    this.viewNode.dataset.view = this.view;
    this.viewNode.removeAttribute('aria-busy');
    this.count.textContent = t('cal_count', { count: shown.length });
    requestAnimationFrame(() => setTimeout(() => {
      performance.mark('cal-painted');
      performance.measure('cal-paint', 'cal-data', 'cal-painted');
    }, 0));
  }
}
