// The chair's console (/chair/{conference}): the grid of every site with its
// state, the roll call, the floor queue, and the moderation actions of the
// signaling protocol (grant, refuse, take back, mute, mute all, lock, remove).
// The grid shows every site at once on a 1366x768 screen (small pictures with
// name, state, muted and asking marks; the chair and the floor holder larger),
// and pages with a filter by state when there are more than a screen holds
// (chair_grid.js decides the layout).
//
// It is the chair endpoint's client of the room: it joins with the chair's
// operator login over the same signaling WebSocket as any site, sends this
// computer's camera and microphone as the chair's, and receives the "floor"
// slot and one "grid:<CODE>" slot per site. Every action takes effect when the
// bridge's next state snapshot arrives, which every client gets at once.
//
// A booker or an admin (no endpoint of their own in this meeting) runs it in
// control mode instead (`?role=control`, docs/signaling.md): the same states and
// actions, on the chair's behalf, but no camera or microphone is opened and
// nothing is sent; the grid, the chair's own picture included, is received
// only. The chair's operator may choose that mode too when the chair endpoint
// is connected from another device (the takeover screen).

import {
  api, ApiFailure, banner, el, EventStream, fill, formatTime, formatWhen, icon, initials, opensAt,
  RUNNING, runPage, signIn, siteName, statusChip, toast,
} from './common.js';
import { errorText, onLangChange, rollWord, t } from './i18n.js';
import { LocalMedia } from './media.js';
import { QualityMeter } from './room.js';
import {
  openRoom, qualityParts, roomPlaced, sampleQuality as sampleRoomQuality,
} from './room_session.js';
import { FILTERS, gridLayout, pageCount, passes, shortName } from './chair_grid.js';
import './texts/chair.js';

// Roles that may moderate any conference (the bridge checks it again).
const MODERATORS = new Set(['booker', 'admin']);
const ABSENT = new Set(['declined', 'absent', 'left']);
const app = document.getElementById('app');
const conferenceId = Number(location.pathname.split('/')[2]);

const page = {
  me: null,
  conference: null,
  media: new LocalMedia(),
  room: null,
  // true: control mode (a moderator's console: no media sent, no seat).
  control: false,
  state: null,
  rollcall: null,
  // loading | waiting | takeover | connecting | live | reconnecting | stopped
  mode: 'loading',
  wantIn: false,
  attempts: 0,
  // Where the room is, from a node's redirect or conference.room_placed (room_session.js).
  placement: null,
  redirects: 0,
  wakeUp: null,
  micMuted: false,
  tiles: new Map(),
  tracks: new Map(),
  quality: new QualityMeter(),
  stopNotice: null,
  // The grid: which sites it lists, which page, and its layout for the screen.
  view: { filter: 'all', page: 0 },
  layout: null,
};

const ui = {};

// -- start ------------------------------------------------------------------------------------

async function main() {
  const me = await signIn(app, 'brand_chair', 'login_intro_chair', { beforeLogout: () => stopRoom(false) });
  page.me = me;
  try {
    page.conference = await api('GET', `/api/v1/conferences/${conferenceId}`);
  } catch (error) {
    if (error instanceof ApiFailure && (error.status === 404 || error.status === 422)) {
      message(t('console_no_conference', { id: conferenceId }));
      return;
    }
    throw error;
  }
  const chairOperator = me.endpoint === page.conference.chair;
  if (!chairOperator && !MODERATORS.has(me.role)) {
    message(t('console_not_chair', { chair: siteName(page.conference.chair) }));
    return;
  }
  page.control = !chairOperator;
  build();
  onLangChange(renderAll);
  new EventStream(onEvent).start();
  window.addEventListener('online', () => page.wakeUp && page.wakeUp());
  setInterval(sampleQuality, 1000);
  setInterval(refreshRollcall, 5000);
  if (!page.control) {
    await page.media.open();
    if (page.media.problem) toast(t(page.media.problem, { name: page.media.problemName }));
  }
  renderAll();
  await begin();
}

function message(text) {
  fill(app, el('div', { class: 'center-stage' }, el('div', { class: 'card notice-card', role: 'alert' },
    el('p', { text }))));
}

/** Connect now, wait for the room to open, or ask before taking over the chair's seat. */
async function begin() {
  const conference = page.conference;
  if (conference.status === 'scheduled') {
    setMode('waiting');
    return;
  }
  if (!RUNNING.has(conference.status)) {
    page.stopNotice = conference.status === 'cancelled' ? 'cancelled_text' : 'ended_text';
    setMode('stopped');
    return;
  }
  await refreshRollcall();
  if (page.control) {
    // No seat to take over: any number of consoles may run beside the chair.
    start();
    return;
  }
  const chairRow = page.rollcall && page.rollcall.endpoints.find((e) => e.code === conference.chair);
  if (chairRow && chairRow.state === 'joined' && !page.wantIn) {
    setMode('takeover');
    return;
  }
  start();
}

// -- layout -----------------------------------------------------------------------------------------

function button(id, onClick, extra = '') {
  return el('button', { id, type: 'button', class: `button button-tool ${extra}`.trim(), on: { click: onClick } });
}

function build() {
  ui.title = el('h1', { class: 'console-title', id: 'conference-title' });
  ui.when = el('div', { class: 'muted console-when' });
  ui.chips = el('div', { class: 'call-chips' });
  ui.rollNumber = el('div', { id: 'rollcall-count', class: 'roll-number' });
  ui.rollLabel = el('div', { class: 'roll-label' });
  ui.status = el('div', { id: 'call-status', class: 'call-status' });
  ui.qualityText = el('span', { class: 'quality-text' });
  ui.quality = el('div', { id: 'quality', class: 'quality', data: { grade: 'none' } },
    el('span', { class: 'bars' }, el('i'), el('i'), el('i'), el('i')), ui.qualityText);
  ui.qualityText.textContent = t('quality_none');

  ui.muteAll = button('mute-all', () => send({ type: 'mute_all', muted: true }));
  ui.unmuteAll = button('unmute-all', () => send({ type: 'mute_all', muted: false }));
  ui.lock = button('lock-button', () => send({ type: 'lock', locked: !(page.state && page.state.locked) }));
  ui.chairMic = button('chair-mic', toggleChairMic);
  ui.controlNote = el('div', { id: 'control-note', class: 'control-note', role: 'note', hidden: true });
  ui.stop = button('stop-button', () => stopRoom(true), 'button-danger-quiet');

  ui.grid = el('div', { id: 'grid', class: 'grid' });
  ui.filters = el('div', { id: 'grid-filter', class: 'grid-filter', role: 'group' },
    FILTERS.map((name) => el('button', {
      type: 'button', class: 'filter-button', data: { filter: name }, 'aria-pressed': String(name === 'all'),
      on: { click: () => setFilter(name) },
    })));
  ui.pageText = el('span', { id: 'page-text', class: 'page-text', 'aria-live': 'polite' });
  ui.pagePrev = el('button', { type: 'button', id: 'page-prev', class: 'icon-button page-button', on: { click: () => turnPage(-1) } }, '‹');
  ui.pageNext = el('button', { type: 'button', id: 'page-next', class: 'icon-button page-button', on: { click: () => turnPage(1) } }, '›');
  ui.pager = el('div', { id: 'grid-pager', class: 'grid-pager', hidden: true }, ui.pagePrev, ui.pageText, ui.pageNext);
  ui.gridBar = el('div', { class: 'grid-bar' }, ui.filters, ui.pager);
  ui.gridArea = el('div', { class: 'grid-area' }, ui.grid);
  ui.mainVideo = el('video', { id: 'video-main', autoplay: true, muted: true, playsinline: true });
  ui.mainEmpty = el('div', { class: 'video-empty' });
  ui.mainCaption = el('div', { class: 'caption' });
  ui.mainTitle = el('h2');
  ui.holderTitle = el('h2');
  ui.holder = el('div', { id: 'holder', class: 'holder' });
  ui.queueTitle = el('h2');
  ui.queue = el('ol', { id: 'queue', class: 'queue' });
  ui.rollTitle = el('h2');
  ui.rollSummary = el('ul', { id: 'rollcall-summary', class: 'roll-list' });
  ui.mix = el('audio', { autoplay: true });

  ui.takeover = el('div', { class: 'overlay-card card', hidden: true });
  ui.dialog = el('dialog', { class: 'dialog' });

  ui.console = el('div', { class: 'console' },
    el('div', { class: 'console-head' },
      el('div', { class: 'console-head-text' }, ui.title, ui.when),
      ui.chips,
      el('div', { class: 'roll' }, ui.rollNumber, ui.rollLabel),
      ui.status, ui.quality),
    el('div', { class: 'toolbar' }, ui.muteAll, ui.unmuteAll, ui.lock, ui.chairMic, ui.controlNote,
      el('div', { class: 'spacer' }), ui.stop),
    el('div', { class: 'console-body' },
      el('div', { class: 'grid-wrap', id: 'grid-wrap' }, ui.gridBar, ui.gridArea, ui.takeover),
      el('aside', { class: 'sidebar' },
        el('section', { class: 'panel' }, ui.mainTitle,
          el('div', { class: 'video-box' }, ui.mainVideo, ui.mainEmpty), ui.mainCaption),
        el('section', { class: 'panel' }, ui.holderTitle, ui.holder),
        el('section', { class: 'panel panel-queue' }, ui.queueTitle, ui.queue),
        el('section', { class: 'panel' }, ui.rollTitle, ui.rollSummary))),
    ui.mix, ui.dialog);
  fill(app, ui.console);
  // The grid follows its area's size (a window resized, the sidebar, a phone turned).
  new ResizeObserver(() => {
    if (page.state) renderState();
  }).observe(ui.gridArea);
}

function renderAll() {
  const conference = page.conference;
  ui.title.textContent = conference.title;
  ui.when.textContent = formatWhen(conference.start, conference.end);
  ui.rollLabel.textContent = t('rollcall');
  ui.mainTitle.textContent = t('main_video');
  ui.holderTitle.textContent = t('floor_holder');
  ui.queueTitle.textContent = t('queue');
  ui.rollTitle.textContent = t('rollcall');
  ui.muteAll.replaceChildren(icon('micOff'), el('span', { text: t('mute_all') }));
  ui.unmuteAll.replaceChildren(icon('mic'), el('span', { text: t('unmute_all') }));
  ui.stop.replaceChildren(icon('leave'), el('span', { text: t('stop_console') }));
  fill(ui.controlNote, icon('info'), el('span', { text: t('control_note') }));
  ui.filters.setAttribute('aria-label', t('chair_filter_label'));
  ui.pagePrev.setAttribute('aria-label', t('chair_page_prev'));
  ui.pagePrev.title = t('chair_page_prev');
  ui.pageNext.setAttribute('aria-label', t('chair_page_next'));
  ui.pageNext.title = t('chair_page_next');
  ui.controlNote.title = t('control_note_detail');
  renderMode();
  renderState();
  renderRollSummary();
  renderQuality();
}

// -- the room's state -------------------------------------------------------------------------------------

function siteOrder(state) {
  const order = [state.chair, ...page.conference.participants];
  const known = new Set(order);
  for (const site of state.sites) if (!known.has(site.code)) order.push(site.code);
  const present = new Set(state.sites.map((s) => s.code));
  return [...new Set(order)].filter((code) => present.has(code));
}

/** connected | waiting | absent | dropped | removed */
function siteStatus(site) {
  if (site.status === 'connected' || site.status === 'removed') return site.status;
  const row = page.rollcall && page.rollcall.endpoints.find((e) => e.code === site.code);
  if (row && ABSENT.has(row.state)) return 'absent';
  if (row && row.state === 'dropped') return 'dropped';
  return 'waiting';
}

function tileFor(code) {
  let tile = page.tiles.get(code);
  if (tile) return tile;
  const isChair = page.state && code === page.state.chair;
  // The chair's tile shows this computer's camera (mirrored, as people expect to
  // see themselves), or in control mode the chair's picture from the bridge.
  const local = isChair && !page.control;
  const video = el('video', { autoplay: true, muted: true, playsinline: true, class: local ? 'mirror' : null });
  const empty = el('div', { class: 'video-empty' }, el('span', { class: 'initials' }));
  const status = el('span', { class: 'chip' });
  const flags = el('div', { class: 'tile-flags' });
  const name = el('div', { class: 'tile-name' });
  const mic = el('button', { type: 'button', class: 'icon-button', data: { action: 'mute' } });
  const floor = el('button', { type: 'button', class: 'icon-button', data: { action: 'floor' } });
  const remove = el('button', { type: 'button', class: 'icon-button icon-button-danger', data: { action: 'remove' } });
  const chairNote = el('div', { class: 'tile-note' });
  const node = el('article', { class: `site-tile${isChair ? ' is-chair' : ''}`, data: { code } },
    el('div', { class: 'video-box' }, video, empty, el('div', { class: 'tile-status' }, status), flags, name),
    el('div', { class: 'tile-foot' },
      isChair ? chairNote : el('div', { class: 'tile-actions' }, mic, floor, remove)));
  for (const event of ['loadeddata', 'emptied']) video.addEventListener(event, () => renderState());
  mic.addEventListener('click', () => {
    const site = findSite(code);
    if (site) send({ type: 'mute', endpoint: code, muted: !site.muted });
  });
  floor.addEventListener('click', () => {
    const site = findSite(code);
    if (site && site.has_floor) send({ type: 'floor.revoke' });
    else send({ type: 'floor.grant', endpoint: code });
  });
  remove.addEventListener('click', () => confirmRemove(code));
  tile = { node, video, empty, status, flags, name, mic, floor, remove, isChair, local, chairNote };
  page.tiles.set(code, tile);
  if (local) {
    video.srcObject = page.media.video ? page.media.stream : null;
  } else {
    const track = page.tracks.get(`grid:${code}`);
    if (track) video.srcObject = new MediaStream([track]);
  }
  return tile;
}

/** A tile's button: its icon and words; the words also name it when a small tile
 * shows the icon only (aria-label, and a tooltip). */
function labelButton(button, iconName, text) {
  button.replaceChildren(icon(iconName), el('span', { class: 'button-text', text }));
  button.setAttribute('aria-label', text);
  button.title = text;
}

/** A mark on a picture (muted, asking, has the floor ...): an icon and its words. */
function flag(kind, iconName, text, extra = '') {
  return el('span', { class: `flag flag-${kind}`, title: text },
    iconName ? icon(iconName) : null, el('span', { class: 'flag-text', text }), extra);
}

function findSite(code) {
  return page.state && page.state.sites.find((s) => s.code === code);
}

function setFilter(name) {
  page.view.filter = name;
  page.view.page = 0;
  for (const button of ui.filters.children) button.setAttribute('aria-pressed', String(button.dataset.filter === name));
  renderState();
}

function turnPage(step) {
  page.view.page += step;
  renderState();
}

/** Draw one tile for the site's current state. */
function renderTile(code, state) {
  const site = findSite(code);
  const tile = tileFor(code);
  const status = siteStatus(site);
  const node = tile.node;
  node.dataset.status = status;
  node.dataset.muted = String(site.muted);
  node.dataset.asking = String(site.asking);
  node.dataset.floor = String(site.has_floor);
  node.classList.toggle('has-floor', site.has_floor);
  node.classList.toggle('is-asking', site.asking);
  node.classList.toggle('is-main', state.main === code);
  // A small tile has room for the short name only; its tooltip has the whole one.
  const small = !page.layout.roomy && node.dataset.span !== '2';
  tile.name.textContent = small ? shortName(siteName(code)) : siteName(code);
  tile.name.title = siteName(code);
  if (tile.isChair) tile.chairNote.textContent = t(tile.local ? 'chair_you' : 'chair_site');
  tile.status.className = `chip chip-site-${status}`;
  tile.status.textContent = t(`state_${status}`);
  const flags = [];
  if (tile.isChair) flags.push(flag('chair', null, t('slot_chair')));
  if (site.muted) flags.push(flag('muted', 'micOff', t('badge_muted')));
  if (site.asking) {
    const position = state.queue.indexOf(code) + 1;
    flags.push(flag('asking', 'hand', t('badge_asking'), el('span', { class: 'flag-pos', text: ` #${position}` })));
  }
  if (site.has_floor) flags.push(flag('floor', 'floor', t('badge_floor')));
  if (site.refused) flags.push(flag('refused', null, t('badge_refused')));
  fill(tile.flags, flags);
  const connected = status === 'connected';
  const showVideo = connected && (tile.local ? Boolean(page.media.video) : tile.video.readyState >= 2);
  tile.empty.hidden = showVideo;
  tile.empty.firstChild.textContent = initials(code);
  if (!tile.isChair) {
    const removed = status === 'removed';
    labelButton(tile.mic, site.muted ? 'mic' : 'micOff', site.muted ? t('unmute_site') : t('mute_site'));
    tile.mic.disabled = removed;
    tile.mic.dataset.muted = String(site.muted);
    labelButton(tile.floor, 'floor', site.has_floor ? t('take_back') : t('grant'));
    tile.floor.disabled = removed || (!site.has_floor && !connected);
    labelButton(tile.remove, 'close', t('remove'));
    tile.remove.disabled = removed;
  }
  return tile;
}

/** The grid: the chair and the floor holder first and larger, then the sites the
 * filter lists, as many as the area holds (pages beyond that). */
function renderGrid(state) {
  const order = siteOrder(state);
  const featured = [state.chair, state.holder].filter((code, i, all) => code && all.indexOf(code) === i && order.includes(code));
  const statusOf = new Map(order.map((code) => [code, siteStatus(findSite(code))]));
  const others = order.filter((code) => !featured.includes(code));
  const listed = others.filter((code) => passes(page.view.filter, findSite(code), statusOf.get(code)));

  const area = ui.gridArea.getBoundingClientRect();
  const layout = gridLayout(Math.max(area.width, 1), Math.max(area.height, 1), featured.length, listed.length);
  // A new layout (the window resized) keeps the first site shown on the screen.
  if (page.layout && page.layout.perPage !== layout.perPage) {
    page.view.page = Math.floor((page.view.page * page.layout.perPage) / layout.perPage);
  }
  page.layout = layout;
  const pages = pageCount(listed.length, layout.perPage);
  page.view.page = Math.min(Math.max(page.view.page, 0), pages - 1);
  const shown = listed.slice(page.view.page * layout.perPage, (page.view.page + 1) * layout.perPage);

  const nodes = [];
  for (const code of [...featured, ...shown]) {
    const tile = tileFor(code);
    const big = featured.includes(code);
    tile.node.classList.toggle('is-featured', big);
    tile.node.dataset.span = big ? String(layout.span) : '1';
    renderTile(code, state);
    nodes.push(tile.node);
  }
  ui.grid.dataset.cols = String(layout.cols);
  ui.grid.dataset.count = String(order.length);
  ui.grid.classList.toggle('is-roomy', layout.roomy);
  ui.grid.replaceChildren(...nodes);

  // The filter's counts (of every site, as the roll call counts), and the pager when
  // the sites take more than one page.
  const counts = Object.fromEntries(FILTERS.map((name) => [name,
    order.filter((code) => passes(name, findSite(code), statusOf.get(code))).length]));
  for (const button of ui.filters.children) {
    const name = button.dataset.filter;
    fill(button, t(`chair_filter_${name}`), el('span', { class: 'filter-count', text: String(counts[name]) }));
  }
  ui.pager.hidden = pages <= 1;
  ui.pageText.textContent = t('chair_page', { page: page.view.page + 1, pages });
  ui.pagePrev.disabled = page.view.page === 0;
  ui.pageNext.disabled = page.view.page >= pages - 1;
  ui.grid.dataset.page = String(page.view.page + 1);
  ui.grid.dataset.pages = String(pages);
}

function renderState() {
  const state = page.state;
  if (!state) {
    ui.rollNumber.textContent = '–';
    fill(ui.queue, el('li', { class: 'queue-empty muted', text: t('queue_empty') }));
    fill(ui.holder, el('p', { class: 'muted', text: t('nobody') }));
    ui.mainEmpty.hidden = false;
    fill(ui.mainEmpty, icon('floor'), el('span', { text: t('nobody_floor') }));
    fill(ui.mainCaption, t('nobody_floor'));
    renderChips();
    renderToolbar();
    return;
  }
  // Roll call: connected over booked (the removed no longer count).
  const counted = state.sites.filter((s) => s.status !== 'removed');
  ui.rollNumber.textContent = t('rollcall_count', {
    connected: counted.filter((s) => s.status === 'connected').length, total: counted.length,
  });

  renderGrid(state);

  // The floor holder and the queue.
  if (state.holder) {
    fill(ui.holder,
      el('div', { class: 'holder-name' }, icon('floor'), el('strong', { text: siteName(state.holder) }),
        state.present.includes(state.holder) ? null : el('span', { class: 'chip chip-site-dropped', text: t('state_dropped') })),
      el('button', { id: 'revoke-button', type: 'button', class: 'button button-secondary', text: t('take_back'), on: { click: () => send({ type: 'floor.revoke' }) } }));
  } else {
    fill(ui.holder, el('p', { class: 'muted', text: t('nobody') }));
  }
  if (state.queue.length === 0) {
    fill(ui.queue, el('li', { class: 'queue-empty muted', text: t('queue_empty') }));
  } else {
    fill(ui.queue, state.queue.map((code, index) => el('li', { class: 'queue-item', data: { code } },
      el('div', { class: 'queue-who' },
        el('span', { class: 'queue-pos', text: String(index + 1) }),
        el('span', { class: 'queue-name', text: siteName(code), title: siteName(code) })),
      el('div', { class: 'queue-actions' },
        el('button', { type: 'button', class: 'button button-small button-primary', data: { action: 'grant' }, text: t('grant'), on: { click: () => send({ type: 'floor.grant', endpoint: code }) } }),
        el('button', { type: 'button', class: 'button button-small button-quiet', data: { action: 'refuse' }, text: t('refuse'), on: { click: () => send({ type: 'floor.refuse', endpoint: code }) } })))));
  }

  // The main picture (what every site sees in its "floor" slot).
  const main = state.main;
  ui.mainEmpty.hidden = Boolean(main);
  fill(ui.mainEmpty, icon('floor'), el('span', { text: t('nobody_floor') }));
  fill(ui.mainCaption, main
    ? [el('span', { class: 'caption-role', text: state.holder ? t('slot_floor') : t('slot_speaker') }), siteName(main)]
    : t('nobody_floor'));
  renderChips();
  renderToolbar();
}

function renderChips() {
  const chips = [statusChip(page.conference.status)];
  if (page.state && page.state.locked) chips.push(el('span', { class: 'chip chip-warn', id: 'locked-chip' }, icon('lock'), t('room_locked')));
  if (page.state && page.state.recording) chips.push(el('span', { class: 'chip chip-rec' }, icon('rec'), t('recording')));
  // Who else moderates from a console (a booker, an admin): their actions reach the room too.
  const others = ((page.state && page.state.moderators) || []).filter((name) => name !== page.me.name);
  if (others.length) chips.push(el('span', { class: 'chip', id: 'moderators-chip' }, t('moderators_chip', { names: others.join(', ') })));
  fill(ui.chips, chips);
}

function renderToolbar() {
  const live = Boolean(page.room && page.state);
  const locked = Boolean(page.state && page.state.locked);
  ui.lock.replaceChildren(icon(locked ? 'unlock' : 'lock'), el('span', { text: locked ? t('unlock') : t('lock') }));
  ui.lock.dataset.locked = String(locked);
  const off = page.micMuted || !page.media.audio;
  ui.chairMic.replaceChildren(icon(off ? 'micOff' : 'mic'), el('span', { text: off ? t('chair_mic_off') : t('chair_mic_on') }));
  ui.chairMic.classList.toggle('is-off', off);
  ui.chairMic.disabled = !page.media.audio;
  ui.chairMic.hidden = page.control;
  ui.controlNote.hidden = !page.control;
  for (const b of [ui.muteAll, ui.unmuteAll, ui.lock]) b.disabled = !live;
  ui.stop.disabled = !page.room;
}

async function refreshRollcall() {
  if (!page.conference) return;
  try {
    page.rollcall = await api('GET', `/api/v1/conferences/${conferenceId}/rollcall`);
  } catch {
    return;
  }
  renderRollSummary();
  if (page.state) renderState();
}

let rollcallTimer = null;

function rollcallSoon() {
  if (rollcallTimer) return;
  rollcallTimer = setTimeout(() => {
    rollcallTimer = null;
    refreshRollcall();
  }, 1500);
}

/** Who is not in, by name, and why (from the scheduler's roll call). */
function renderRollSummary() {
  const roll = page.rollcall;
  if (!roll) {
    fill(ui.rollSummary);
    return;
  }
  // The room's state is live; the roll call says why the others are not in.
  const present = new Set(page.state ? page.state.present : []);
  const missing = roll.endpoints.filter((e) => e.state !== 'joined' && !present.has(e.code));
  if (missing.length === 0) {
    fill(ui.rollSummary, el('li', { class: 'muted', text: t('roll_all_in') }));
    return;
  }
  fill(ui.rollSummary, missing.map((e) => el('li', { data: { code: e.code, state: e.state } },
    el('span', { class: 'roll-name', text: siteName(e.code) }),
    el('span', { class: `roll-state roll-${e.state}`, text: t(`roll_${rollWord(e)}`) + (e.redialling ? ` · ${t('roll_redialling')}` : '') }))));
}

// -- the mode: waiting, connected, reconnecting ... ------------------------------------------------------------

function setMode(mode) {
  page.mode = mode;
  renderMode();
}

function renderMode() {
  const mode = page.mode;
  const status = {
    connecting: t('connecting'), reconnecting: t('reconnecting'), live: t('connected'),
  }[mode] || '';
  ui.status.dataset.mode = mode;
  fill(ui.status, mode === 'connecting' || mode === 'reconnecting' ? el('span', { class: 'spinner spinner-small', 'aria-hidden': 'true' }) : null, status);
  const overlay = {
    waiting: () => [el('span', { class: 'spinner', 'aria-hidden': 'true' }),
      el('p', { text: t('console_waiting', { time: formatTime(opensAt(page.conference)) }) })],
    takeover: () => [el('p', { text: t('console_takeover') }),
      el('button', { id: 'takeover-button', type: 'button', class: 'button button-primary', text: t('console_start'), on: { click: () => start() } }),
      el('p', { class: 'muted overlay-alt', text: t('console_takeover_control') }),
      el('button', { id: 'control-only-button', type: 'button', class: 'button button-secondary', text: t('console_control_only'), on: { click: () => startControl() } })],
    stopped: () => [el('p', { text: t(page.stopNotice || 'console_stopped') }),
      RUNNING.has(page.conference.status)
        ? el('button', { id: 'restart-button', type: 'button', class: 'button button-primary', text: t('console_start'), on: { click: () => start() } })
        : null],
  }[mode];
  ui.takeover.hidden = !overlay;
  ui.gridBar.hidden = Boolean(overlay);
  ui.gridArea.hidden = Boolean(overlay);
  if (overlay) fill(ui.takeover, overlay());
  renderToolbar();
}

// -- connecting --------------------------------------------------------------------------------------------------

/** The chair's operator chose to run the meeting without media (the endpoint keeps its seat). */
function startControl() {
  page.control = true;
  page.media.stop(); // the camera light goes off: nothing is sent from here
  page.tiles.clear();
  renderAll();
  start();
}

function start() {
  page.wantIn = true;
  page.attempts = 0;
  page.stopNotice = null;
  connect();
}

// What the console does in the room; the connection itself is room_session.js.
const roomHooks = {
  setMode,
  liveMode: 'live',
  opening: () => {
    if (page.media.audio) page.media.audio.enabled = !page.micMuted;
  },
  onState: (state) => {
    const before = page.state;
    page.state = state;
    renderState();
    if (!before || before.present.length !== state.present.length) rollcallSoon();
  },
  onTrack: (slot, track) => attachTrack(slot, track),
  onEnded: (kind, reason) => {
    const key = kind === 'replaced' ? 'replaced_text' : reason === 'cancelled' ? 'cancelled_text' : 'ended_text';
    stopRoom(false, key);
    if (kind === 'closed') refreshConference();
  },
  onError: (error) => toast(errorText(error)),
  recheck: async () => {
    page.conference = await api('GET', `/api/v1/conferences/${conferenceId}`);
    if (RUNNING.has(page.conference.status)) connect();
    else stopRoom(false, page.conference.status === 'cancelled' ? 'cancelled_text' : 'ended_text');
  },
};

function connect() {
  const media = page.control ? { control: true } : { audio: page.media.audio, video: page.media.video };
  openRoom(page, conferenceId, media, roomHooks);
}

function stopRoom(goodbye, notice = null) {
  page.wantIn = false;
  if (page.room) page.room.close(goodbye);
  page.room = null;
  page.state = null;
  page.tracks.clear();
  page.tiles.clear();
  ui.grid && ui.grid.replaceChildren();
  if (ui.mainVideo) ui.mainVideo.srcObject = null;
  banner(null);
  page.stopNotice = notice;
  if (ui.console) {
    setMode('stopped');
    renderState();
  }
}

async function refreshConference() {
  try {
    page.conference = await api('GET', `/api/v1/conferences/${conferenceId}`);
  } catch {
    return;
  }
  renderAll();
}

function attachTrack(slot, track) {
  page.tracks.set(slot, track);
  if (slot === 'mix') {
    ui.mix.srcObject = new MediaStream([track]);
    ui.mix.play().catch(() => {});
  } else if (slot === 'floor') {
    ui.mainVideo.srcObject = new MediaStream([track]);
  } else if (slot.startsWith('grid:')) {
    const tile = page.tiles.get(slot.slice(5));
    if (tile) tile.video.srcObject = new MediaStream([track]);
  }
}

function send(message) {
  if (!page.room || !page.room.send(message)) toast(t('err_network'));
}

function toggleChairMic() {
  page.micMuted = !page.micMuted;
  if (page.media.audio) page.media.audio.enabled = !page.micMuted;
  renderToolbar();
}

function confirmRemove(code) {
  const name = siteName(code);
  fill(ui.dialog,
    el('form', { method: 'dialog', class: 'dialog-body' },
      el('p', { text: t('remove_confirm', { name }) }),
      el('div', { class: 'dialog-actions' },
        el('button', { type: 'submit', value: 'cancel', class: 'button button-quiet', text: t('cancel') }),
        el('button', { type: 'submit', value: 'remove', id: 'confirm-remove', class: 'button button-danger', text: t('remove') }))));
  ui.dialog.onclose = () => {
    if (ui.dialog.returnValue === 'remove') send({ type: 'remove', endpoint: code });
  };
  ui.dialog.returnValue = '';
  ui.dialog.showModal();
}

// -- connection quality -------------------------------------------------------------------------------------------

function sampleQuality() {
  return sampleRoomQuality(page, ui, { liveMode: 'live', ready: (room) => room.videoPc, render: renderQuality });
}

function renderQuality() {
  const q = page.lastQuality;
  if (!q || page.mode !== 'live') return;
  ui.quality.dataset.grade = q.grade;
  fill(ui.qualityText, qualityParts(q).join(' · '));
}

// -- the scheduler's events --------------------------------------------------------------------------------------------

function onEvent(event) {
  if (event.conference !== conferenceId) return;
  if (event.type === 'conference.room_placed') roomPlaced(page, event, connect);
  if (page.mode === 'waiting' && ['conference.opened', 'conference.live'].includes(event.type)) {
    refreshConference().then(() => begin());
    return;
  }
  if (event.type.startsWith('conference.')) refreshConference();
  if (event.type.startsWith('endpoint.')) rollcallSoon();
}

runPage(main);
