// The join page (/join): a district operator logs in, checks the camera and
// microphone, and joins its endpoint's current or next conference with one
// button. In the conference: the chair and the floor holder large, itself
// small, mute, "xin phát biểu", connection quality, leave. It reconnects by
// itself after a network cut, and if the room is not open yet it waits for
// the scheduler's event and joins then, without a reload.

import {
  api, ApiFailure, banner, el, EventStream, fill, formatNumber, formatTime, formatWhen, icon,
  opensAt, RUNNING, runPage, signIn, siteName, statusChip, toast,
} from './common.js';
import { CallReporter } from './call_stats.js';
import { errorText, onLangChange, t } from './i18n.js';
import { documentsPanel, roomDocuments } from './documents_panel.js';
import { LevelMeter, LocalMedia, fillDevicePickers } from './media.js';
import { QualityMeter } from './room.js';
import {
  openRoom, qualityParts, reconnectRoom, roomPlaced, sampleQuality as sampleRoomQuality,
} from './room_session.js';

const app = document.getElementById('app');

const page = {
  me: null,
  conference: null,
  media: new LocalMedia(),
  meter: null,
  room: null,
  state: null,
  // lobby | waiting | connecting | call | reconnecting
  mode: 'lobby',
  wantIn: false,
  attempts: 0,
  wakeUp: null,
  micMuted: false,
  // Where the room is, from a node's redirect or conference.room_placed (room_session.js).
  placement: null,
  redirects: 0,
  notice: null, // {key, kind} shown in the lobby after leaving or an end
  tracks: { chair: null, floor: null },
  quality: new QualityMeter(),
};

const ui = {};

// -- start ---------------------------------------------------------------------------------

async function main() {
  const me = await signIn(app, 'brand_join', 'login_intro', { beforeLogout: () => leave(false) });
  page.me = me;
  if (!me.endpoint) {
    fill(app, el('div', { class: 'center-stage' }, el('div', { class: 'card notice-card' },
      el('p', { text: t('no_endpoint') }))));
    return;
  }
  build();
  onLangChange(renderAll);
  const events = new EventStream(onEvent);
  events.start();
  // In a conference the page reports the call's figures on the stream (call_stats.js).
  new CallReporter(events, () => (page.mode === 'call' && page.room && page.conference
    ? { room: page.room, conference: page.conference.id, media: page.media } : null)).start();
  window.addEventListener('online', () => page.wakeUp && page.wakeUp());
  // The event stream says when the room opens; this also catches it if the
  // stream is down.
  setInterval(async () => {
    if (page.mode !== 'waiting' && page.mode !== 'lobby') return;
    await refreshConference();
    if (page.mode === 'waiting' && page.wantIn && page.conference && RUNNING.has(page.conference.status)) {
      checkAndConnect().catch(() => reconnect());
    }
  }, 15000);
  setInterval(sampleQuality, 1000);
  page.mediaReady = openMedia();
  await refreshConference();
  await page.mediaReady;
}

// -- layout ------------------------------------------------------------------------------------

function build() {
  // Lobby: the conference, the join button, the device check.
  ui.confLabel = el('div', { class: 'eyebrow' });
  ui.confTitle = el('h1', { id: 'conference-title', class: 'conf-title' });
  ui.confMeta = el('div', { class: 'conf-meta' });
  ui.joinButton = el('button', { id: 'join-button', type: 'button', class: 'button button-join', on: { click: () => join() } });
  ui.joinHint = el('p', { class: 'muted join-hint' });
  ui.joinStatus = el('div', { id: 'join-status', class: 'join-status', role: 'status', 'aria-live': 'polite' });
  ui.lobbyConf = el('section', { class: 'card conf-card' }, ui.confLabel, ui.confTitle, ui.confMeta,
    el('div', { class: 'join-row' }, ui.joinButton), ui.joinHint, ui.joinStatus);

  ui.preview = el('video', { id: 'preview', class: 'mirror', autoplay: true, muted: true, playsinline: true });
  ui.previewEmpty = el('div', { class: 'video-empty' }, icon('camera'));
  ui.levelBar = el('div', { id: 'level-bar', class: 'level-fill' });
  ui.cameraSelect = el('select', { id: 'camera-select', on: { change: () => changeDevice() } });
  ui.micSelect = el('select', { id: 'mic-select', on: { change: () => changeDevice() } });
  ui.mediaProblem = el('div', { id: 'media-problem', class: 'alert', role: 'alert', hidden: true });
  ui.checkTitle = el('h2');
  ui.levelLabel = el('span', { class: 'level-label' });
  ui.micHint = el('p', { class: 'muted small' });
  ui.cameraLabel = el('label', { for: 'camera-select' });
  ui.micLabel = el('label', { for: 'mic-select' });
  ui.lobbyCheck = el('section', { class: 'card check-card' },
    ui.checkTitle,
    el('div', { class: 'video-box preview-box' }, ui.preview, ui.previewEmpty),
    el('div', { class: 'level-row' }, el('span', { class: 'level-icon' }, icon('mic')), ui.levelLabel,
      el('div', { class: 'level', role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '1' }, ui.levelBar)),
    ui.micHint,
    el('div', { class: 'field-row' },
      el('div', { class: 'field' }, ui.cameraLabel, ui.cameraSelect),
      el('div', { class: 'field' }, ui.micLabel, ui.micSelect)),
    ui.mediaProblem);
  ui.lobby = el('div', { id: 'lobby', class: 'lobby' }, ui.lobbyConf, ui.lobbyCheck);
  page.meter = new LevelMeter(ui.levelBar);

  // The conference.
  ui.callTitle = el('div', { class: 'call-title' });
  ui.callWhen = el('div', { class: 'call-when muted' });
  ui.callChips = el('div', { class: 'call-chips' });
  ui.qualityBars = el('span', { class: 'bars' }, el('i'), el('i'), el('i'), el('i'));
  ui.qualityText = el('span', { class: 'quality-text' });
  ui.quality = el('div', { id: 'quality', class: 'quality', data: { grade: 'none' } }, ui.qualityBars, ui.qualityText);
  ui.qualityText.textContent = t('quality_none');

  ui.chairVideo = el('video', { id: 'video-chair', autoplay: true, muted: true, playsinline: true });
  ui.floorVideo = el('video', { id: 'video-floor', autoplay: true, muted: true, playsinline: true });
  ui.floorSelf = el('video', { class: 'mirror', autoplay: true, muted: true, playsinline: true, hidden: true });
  ui.chairEmpty = el('div', { class: 'video-empty' });
  ui.floorEmpty = el('div', { class: 'video-empty' });
  ui.chairCaption = el('div', { class: 'caption' });
  ui.floorCaption = el('div', { class: 'caption' });
  ui.chairTile = el('div', { class: 'tile tile-chair' },
    el('div', { class: 'video-box' }, ui.chairVideo, ui.chairEmpty), ui.chairCaption);
  ui.floorTile = el('div', { class: 'tile tile-floor' },
    el('div', { class: 'video-box' }, ui.floorVideo, ui.floorSelf, ui.floorEmpty), ui.floorCaption);
  ui.mix = el('audio', { id: 'mix', autoplay: true });
  for (const video of [ui.chairVideo, ui.floorVideo]) {
    for (const event of ['loadeddata', 'emptied']) video.addEventListener(event, () => renderRoom());
  }

  ui.selfVideo = el('video', { id: 'self-video', class: 'mirror', autoplay: true, muted: true, playsinline: true });
  ui.selfLevel = el('div', { class: 'level-fill' });
  ui.selfName = el('div', { class: 'self-name' });
  ui.muteButton = el('button', { id: 'mute-button', type: 'button', class: 'button button-control', on: { click: toggleMute } });
  ui.floorButton = el('button', { id: 'floor-button', type: 'button', class: 'button button-control', on: { click: floorAction } });
  ui.floorStatus = el('div', { id: 'floor-status', class: 'floor-status', data: { floor: 'idle' }, role: 'status', 'aria-live': 'polite' });
  ui.leaveButton = el('button', { id: 'leave-button', type: 'button', class: 'button button-danger', on: { click: () => leave(true) } });
  ui.callStatus = el('div', { id: 'call-status', class: 'call-status', data: { mode: 'connecting' } });
  ui.documents = roomDocuments(); // "Tài liệu" in the room

  ui.call = el('div', { id: 'call', class: 'call', hidden: true },
    el('div', { class: 'call-head' },
      el('div', { class: 'call-head-text' }, ui.callTitle, ui.callWhen),
      ui.callChips, ui.callStatus, ui.quality),
    el('div', { class: 'stage' }, ui.chairTile, ui.floorTile),
    el('div', { class: 'controls' },
      el('div', { class: 'self-tile' },
        el('div', { class: 'video-box' }, ui.selfVideo),
        el('div', { class: 'self-meta' }, ui.selfName, el('div', { class: 'level level-small' }, ui.selfLevel))),
      el('div', { class: 'control-group' }, ui.muteButton),
      el('div', { class: 'control-group control-floor' }, ui.floorButton, ui.floorStatus),
      el('div', { class: 'spacer' }),
      ui.documents.button,
      ui.leaveButton),
    ui.documents.drawer,
    ui.mix);

  fill(app, ui.lobby, ui.call);
  page.selfMeter = new LevelMeter(ui.selfLevel);
  renderAll();
}

function renderAll() {
  ui.checkTitle.textContent = t('check_title');
  ui.levelLabel.textContent = t('mic_level');
  ui.micHint.textContent = t('mic_hint');
  ui.cameraLabel.textContent = t('camera');
  ui.micLabel.textContent = t('microphone');
  ui.leaveButton.replaceChildren(icon('leave'), el('span', { text: t('leave') }));
  fill(ui.selfName, el('span', { class: 'self-label', text: t('self_view') }), siteName(page.me.endpoint));
  renderConference();
  renderMediaProblem();
  renderRoom();
  renderMode();
  renderQuality();
}

// -- the conference in the lobby -------------------------------------------------------------------

async function refreshConference() {
  const code = encodeURIComponent(page.me.endpoint);
  const from = encodeURIComponent(new Date().toISOString());
  try {
    const body = await api('GET', `/api/v1/conferences?endpoint=${code}&from=${from}` +
      '&status=scheduled&status=open&status=live&limit=20');
    const list = body.conferences;
    const chosen = list.find((c) => RUNNING.has(c.status)) || list[0] || null;
    // Keep the one we are in or waiting for, even if another sorts first.
    if (page.conference && page.mode !== 'lobby') {
      const same = list.find((c) => c.id === page.conference.id);
      if (same) page.conference = same;
    } else {
      page.conference = chosen;
    }
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 401) location.reload();
    return;
  }
  renderConference();
}

function renderConference() {
  const conference = page.conference;
  const again = page.notice && page.notice.key === 'left_text';
  ui.joinButton.replaceChildren(el('span', { text: again ? t('join_again') : t('join') }));
  if (!conference) {
    ui.confLabel.textContent = `${t('your_endpoint')}: ${siteName(page.me.endpoint)}`;
    ui.confTitle.textContent = t('no_conference');
    ui.confTitle.classList.add('conf-title-empty');
    fill(ui.confMeta);
    ui.joinButton.disabled = true;
    ui.joinButton.hidden = true;
    ui.joinHint.textContent = '';
    renderMode();
    return;
  }
  ui.confTitle.classList.remove('conf-title-empty');
  ui.joinButton.hidden = false;
  const running = RUNNING.has(conference.status);
  ui.confLabel.textContent = running ? t('current_conference') : t('next_conference');
  ui.confTitle.textContent = conference.title;
  const rows = [
    el('div', { class: 'meta-when' }, el('strong', { text: formatWhen(conference.start, conference.end) }), ' ',
      statusChip(conference.status)),
    el('div', {}, el('span', { class: 'muted', text: `${t('chair')}: ` }), siteName(conference.chair)),
    el('div', {}, el('span', { class: 'muted', text: `${t('your_endpoint')}: ` }), siteName(page.me.endpoint),
      el('span', { class: 'muted', text: ` · ${t('participants', { count: conference.participants.length })}` })),
  ];
  if (!running) rows.push(el('div', { class: 'muted', text: t('room_opens', { time: formatTime(opensAt(conference)) }) }));
  if (conference.agenda) {
    rows.push(el('details', { class: 'agenda' }, el('summary', { text: t('agenda') }),
      el('p', { class: 'agenda-text', text: conference.agenda })));
  }
  if (!page.lobbyDocuments || page.lobbyDocuments.dataset.conference !== String(conference.id)) {
    page.lobbyDocuments = documentsPanel(conference.id);
  }
  rows.push(page.lobbyDocuments);
  fill(ui.confMeta, rows);
  ui.joinButton.disabled = page.mode !== 'lobby';
  ui.joinHint.textContent = running ? t('join_hint') : t('join_hint_wait');
  renderMode();
}

function renderMode() {
  const mode = page.mode;
  ui.lobby.hidden = mode !== 'lobby' && mode !== 'waiting';
  ui.call.hidden = !ui.lobby.hidden;
  ui.joinStatus.dataset.mode = mode;
  if (mode === 'waiting' && page.conference) {
    fill(ui.joinStatus, el('div', { class: 'waiting' },
      el('span', { class: 'spinner', 'aria-hidden': 'true' }),
      el('div', {}, el('strong', { text: t('waiting_title') }),
        el('p', { text: t('waiting_text', { time: formatTime(opensAt(page.conference)) }) })),
      el('button', { type: 'button', class: 'button button-quiet', text: t('cancel_wait'), on: { click: () => leave(false) } })));
  } else if (mode === 'lobby' && page.notice) {
    fill(ui.joinStatus, el('div', { class: `notice notice-${page.notice.kind}`, text: t(page.notice.key, page.notice.params) }));
  } else {
    fill(ui.joinStatus);
  }
  if (page.conference) ui.joinButton.disabled = mode !== 'lobby';
  const status = { connecting: t('connecting'), reconnecting: t('reconnecting'), call: t('connected') }[mode] || '';
  ui.callStatus.dataset.mode = mode;
  fill(ui.callStatus, mode === 'call' ? null : el('span', { class: 'spinner spinner-small', 'aria-hidden': 'true' }), status);
}

function setMode(mode) {
  page.mode = mode;
  renderMode();
  renderRoom();
  if (ui.lobby.hidden === false) renderConference();
}

// -- camera and microphone ------------------------------------------------------------------------------

async function openMedia() {
  await page.media.open();
  afterMediaChange();
  await fillDevicePickers(ui.cameraSelect, ui.micSelect, page.media);
}

async function changeDevice() {
  page.media.cameraId = ui.cameraSelect.value;
  page.media.micId = ui.micSelect.value;
  await page.media.open();
  afterMediaChange();
  await fillDevicePickers(ui.cameraSelect, ui.micSelect, page.media);
  const room = page.room;
  if (!room) return;
  if ((!room.audio && page.media.audio) || (!room.video && page.media.video)) {
    connect(); // joined without a device that is there now: offer again, with it
    return;
  }
  await room.replaceTrack('audio', page.media.audio);
  await room.replaceTrack('video', page.media.video);
}

function afterMediaChange() {
  const { media } = page;
  if (media.audio) media.audio.enabled = !page.micMuted;
  ui.preview.srcObject = media.video ? media.stream : null;
  ui.previewEmpty.hidden = Boolean(media.video);
  ui.selfVideo.srcObject = media.video ? media.stream : null;
  ui.floorSelf.srcObject = media.video ? media.stream : null;
  page.meter.attach(media.audio);
  page.selfMeter.attach(media.audio);
  renderMediaProblem();
  renderRoom();
}

function renderMediaProblem() {
  const { media } = page;
  if (!media.problem) {
    ui.mediaProblem.hidden = true;
    return;
  }
  const parts = [el('p', { text: t(media.problem, { name: media.problemName }) })];
  if (!media.usable) parts.push(el('p', { class: 'small', text: t('media_receive_only') }));
  if (media.problem !== 'media_insecure') {
    parts.push(el('button', { type: 'button', class: 'button button-quiet', text: t('retry'), on: { click: () => changeDevice() } }));
  }
  fill(ui.mediaProblem, parts);
  ui.mediaProblem.dataset.problem = media.problem;
  ui.mediaProblem.hidden = false;
}

function toggleMute() {
  page.micMuted = !page.micMuted;
  if (page.media.audio) page.media.audio.enabled = !page.micMuted;
  renderRoom();
}

// -- joining, staying in, leaving ---------------------------------------------------------------------------

/** "Tham gia": join now if the room is open, else wait for it to open. */
async function join() {
  if (!page.conference) return;
  page.wantIn = true;
  page.notice = null;
  page.attempts = 0;
  ui.joinButton.disabled = true;
  await page.mediaReady; // pressed before the camera opened: join with it, not without
  if (!page.wantIn) return;
  if (RUNNING.has(page.conference.status)) {
    connect();
    return;
  }
  await checkAndConnect().catch(() => reconnect());
}

/** Ask the API how the conference stands, then connect, wait or stop. */
async function checkAndConnect() {
  let conference;
  try {
    conference = await api('GET', `/api/v1/conferences/${page.conference.id}`);
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 404) {
      stop('cancelled_text', 'warn');
      return;
    }
    throw error; // the caller retries
  }
  page.conference = conference;
  if (!page.wantIn) return;
  if (RUNNING.has(conference.status)) connect();
  else if (conference.status === 'scheduled') setMode('waiting');
  else stop(conference.status === 'cancelled' ? 'cancelled_text' : 'ended_text', 'info');
}

// What the page does in the room; the connection itself is room_session.js.
const roomHooks = {
  setMode,
  liveMode: 'call',
  opening: () => renderHeader(),
  onState: (state) => {
    page.state = state;
    renderRoom();
  },
  onTrack: (slot, track) => attachTrack(slot, track),
  onEnded: (kind, reason) => {
    if (kind === 'removed') stop('removed_text', 'warn');
    else if (kind === 'replaced') stop('replaced_text', 'warn');
    else stop(reason === 'cancelled' ? 'cancelled_text' : 'ended_text', 'info');
  },
  onError: (error, room) => {
    if (!room.joined && (error.code === 'locked' || error.code === 'removed')) {
      stop(error.code === 'locked' ? 'locked_text' : 'removed_text', 'warn');
    } else {
      toast(errorText(error));
    }
  },
  recheck: () => checkAndConnect(),
};

function connect() {
  openRoom(page, page.conference.id, { audio: page.media.audio, video: page.media.video }, roomHooks);
}

/** The network dropped: say so, and come back with the same seat. */
function reconnect() {
  return reconnectRoom(page, roomHooks);
}

/** Leave on purpose (`goodbye`: tell the bridge, the roll call shows "left"). */
function leave(goodbye) {
  const wasIn = page.mode === 'call' || page.mode === 'reconnecting' || page.mode === 'connecting';
  page.wantIn = false;
  if (page.room) page.room.close(goodbye);
  page.room = null;
  page.state = null;
  banner(null);
  page.notice = wasIn ? { key: 'left_text', kind: 'info' } : null;
  resetTracks();
  setMode('lobby');
  refreshConference();
}

function stop(key, kind) {
  page.wantIn = false;
  if (page.room) page.room.close(false);
  page.room = null;
  page.state = null;
  banner(null);
  page.notice = { key, kind };
  resetTracks();
  setMode('lobby');
  refreshConference();
}

function resetTracks() {
  page.tracks = { chair: null, floor: null };
  ui.chairVideo.srcObject = null;
  ui.floorVideo.srcObject = null;
  ui.mix.srcObject = null;
}

function attachTrack(slot, track) {
  const stream = new MediaStream([track]);
  if (slot === 'mix') {
    ui.mix.srcObject = stream;
    ui.mix.play().catch(() => {});
  } else if (slot === 'chair' || slot === 'floor') {
    page.tracks[slot] = track;
    const video = slot === 'chair' ? ui.chairVideo : ui.floorVideo;
    video.srcObject = stream;
  }
}

// -- the conference view ---------------------------------------------------------------------------------

function renderHeader() {
  const conference = page.conference;
  if (!conference) return;
  ui.callTitle.textContent = conference.title;
  ui.callWhen.textContent = formatWhen(conference.start, conference.end);
  ui.documents.show(conference.id);
}

function myFloor(state) {
  const me = page.me.endpoint;
  if (!state) return { kind: 'idle' };
  if (state.holder === me) return { kind: 'granted' };
  const position = state.queue.indexOf(me);
  if (position >= 0) return { kind: 'waiting', position: position + 1 };
  if (state.refused.includes(me)) return { kind: 'refused' };
  return { kind: 'idle' };
}

function renderRoom() {
  if (!ui.call) return;
  renderHeader();
  const state = page.state;
  const me = page.me.endpoint;

  // The chair.
  const chair = state ? state.chair : page.conference && page.conference.chair;
  const chairHere = Boolean(state && state.present.includes(chair));
  const flowing = page.mode === 'call';
  fill(ui.chairCaption, el('span', { class: 'caption-role', text: t('slot_chair') }), siteName(chair));
  ui.chairEmpty.hidden = flowing && chairHere && ui.chairVideo.readyState >= 2;
  fill(ui.chairEmpty, ...placeholder('camera', chairHere ? '' : t('no_video')));

  // The floor: the holder, or in open discussion whoever speaks.
  const main = state ? state.main : null;
  const holder = state ? state.holder : null;
  const mineIsMain = main === me || holder === me;
  let role = t('slot_floor');
  let who = '';
  if (holder) who = holder === me ? t('you_have_floor') : siteName(holder);
  else if (main) {
    role = t('slot_speaker');
    who = main === me ? t('self_view') : siteName(main);
  }
  fill(ui.floorCaption, el('span', { class: 'caption-role', text: role }), who || t('nobody_floor'));
  ui.floorSelf.hidden = !mineIsMain || !page.media.video;
  ui.floorVideo.hidden = mineIsMain;
  ui.floorEmpty.hidden = mineIsMain ? Boolean(page.media.video)
    : flowing && Boolean(main) && ui.floorVideo.readyState >= 2;
  fill(ui.floorEmpty, ...placeholder('floor', main ? '' : t('nobody_floor')));
  ui.floorTile.classList.toggle('tile-mine', mineIsMain);

  // Microphone.
  const mutedByChair = Boolean(state && state.muted.includes(me));
  const micOff = page.micMuted || !page.media.audio;
  ui.muteButton.replaceChildren(icon(micOff ? 'micOff' : 'mic'), el('span', { text: micOff ? t('unmute') : t('mute') }));
  ui.muteButton.classList.toggle('is-off', micOff);
  ui.muteButton.disabled = !page.media.audio;
  ui.muteButton.setAttribute('aria-pressed', String(micOff));

  // The floor button and its state.
  const floor = myFloor(state);
  ui.floorStatus.dataset.floor = floor.kind;
  const buttonText = { idle: t('ask_floor'), waiting: t('cancel_request'), granted: t('release_floor'), refused: t('ask_again') }[floor.kind];
  ui.floorButton.replaceChildren(icon('hand'), el('span', { text: buttonText }));
  ui.floorButton.dataset.floor = floor.kind;
  ui.floorButton.disabled = !state || !flowing;
  const statusText = {
    idle: t('floor_idle'),
    waiting: t('floor_waiting', { position: floor.position }),
    granted: t('floor_granted'),
    refused: t('floor_refused'),
  }[floor.kind];
  fill(ui.floorStatus, el('span', { class: `dot dot-${floor.kind}`, 'aria-hidden': 'true' }), statusText);

  // Chips next to the title.
  const chips = [];
  if (page.conference) chips.push(statusChip(page.conference.status));
  if (mutedByChair) chips.push(el('span', { class: 'chip chip-warn', id: 'muted-by-chair' }, icon('micOff'), t('muted_by_chair')));
  if (state && state.recording) chips.push(el('span', { class: 'chip chip-rec' }, icon('rec'), t('recording')));
  fill(ui.callChips, chips);
}

/** The content of an empty video box: a spinner while (re)connecting, else an icon. */
function placeholder(iconName, text) {
  if (page.mode === 'connecting' || page.mode === 'reconnecting') {
    return [el('span', { class: 'spinner', 'aria-hidden': 'true' }),
      el('span', { text: page.mode === 'connecting' ? t('connecting') : t('reconnecting') })];
  }
  return [icon(iconName), text ? el('span', { text }) : null];
}

function floorAction() {
  if (!page.room) return;
  const kind = myFloor(page.state).kind;
  const type = { idle: 'floor.request', refused: 'floor.request', waiting: 'floor.cancel', granted: 'floor.release' }[kind];
  page.room.send({ type });
}

// -- connection quality ------------------------------------------------------------------------------------------

function sampleQuality() {
  return sampleRoomQuality(page, ui, { liveMode: 'call', ready: (room) => room.audioPc, render: renderQuality });
}

function renderQuality() {
  const q = page.lastQuality;
  if (!q || page.mode !== 'call') return;
  ui.quality.dataset.grade = q.grade;
  const parts = qualityParts(q);
  if (q.kbpsOut !== null) parts.push(`↑ ${Math.round(q.kbpsOut)} kb/s`);
  fill(ui.qualityText, parts.join(' · '));
  ui.quality.title = `${t('quality')}: ${t(`quality_${q.grade}`)}\n${t('rtt')}: ${q.rttMs === null ? '–' : `${Math.round(q.rttMs)} ms`}\n`
    + `${t('loss')}: ${q.lossPct === null ? '–' : `${formatNumber(q.lossPct)} %`}\n`
    + `${t('bitrate')}: ↓ ${q.kbpsIn === null ? '–' : Math.round(q.kbpsIn)} / ↑ ${q.kbpsOut === null ? '–' : Math.round(q.kbpsOut)} kb/s`;
}

// -- the scheduler's events ------------------------------------------------------------------------------------------

let refreshTimer = null;

function onEvent(event) {
  const conference = page.conference;
  const mine = conference && event.conference === conference.id;
  if (mine && event.type === 'conference.room_placed') roomPlaced(page, event, connect);
  if (mine && page.mode === 'waiting' && page.wantIn
      && ['conference.opened', 'conference.live', 'endpoint.invited'].includes(event.type)) {
    checkAndConnect().catch(() => reconnect());
    return;
  }
  if (event.type.startsWith('conference.')) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshConference, 200);
  }
}

runPage(main);
