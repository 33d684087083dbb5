// A page's hold on its room, shared by the join page and the chair's console:
// open a RoomClient, tell the person how the connection goes (the banner), and
// after a network cut come back by itself with the same seat, waiting 250 ms
// doubling to 4 s between attempts (the browser's "online" event wakes it early
// through `page.wakeUp`).
//
// The room is on the bridge node the conference is placed on: the newest of what
// the conference's answer (`bridge`), a `conference.room_placed` event
// (`roomPlaced`) and a node's `redirect` said, this origin when none did. A
// redirect is followed at once (three in a row at most, then as after a drop);
// after a drop `hooks.recheck` reads the conference again, so its new placement
// is used.
//
// `page` is the page's state object: `room`, `attempts`, `wantIn`, `wakeUp`,
// `quality`, `placement` and `redirects` are read and written here; `conference`
// is read. `hooks` is what differs between pages:
//   setMode(mode)              'connecting', 'reconnecting' or `liveMode`
//   liveMode                   the page's mode once connected ('call', 'live')
//   opening()                  optional, right before a new connection
//   onState(state), onTrack(slot, track), onEnded(kind, reason), onError(error, room)
//   recheck()                  async: read the conference again, then connect or stop;
//                              a throw (the service unreachable) tries again

import { banner, fill, formatNumber } from './common.js';
import { t } from './i18n.js';
import { RoomClient } from './room.js';

const MAX_REDIRECTS = 3;

function placementOf(value) {
  if (!value || typeof value.url !== 'string' || !/^https?:\/\//.test(value.url)) return null;
  return { url: value.url, node: value.node || null, generation: Number(value.generation) || 0 };
}

/** The base URL of the node holding the room (null: this origin). */
export function roomBase(page) {
  const told = placementOf(page.placement);
  const answered = placementOf(page.conference && page.conference.bridge);
  if (!told) return answered ? answered.url : null;
  if (answered && answered.generation > told.generation) return answered.url;
  return told.url;
}

/**
 * A `conference.room_placed` event for the page's conference: remember where the
 * room is; a reconnect waiting goes now, a room connected elsewhere moves (`connect`).
 */
export function roomPlaced(page, event, connect) {
  const placement = placementOf(event.data);
  if (!placement) return;
  const known = placementOf(page.placement);
  if (known && known.generation > placement.generation) return;
  const before = roomBase(page);
  page.placement = placement;
  if (roomBase(page) === before || !page.wantIn) return;
  if (page.wakeUp) page.wakeUp();
  else if (page.room && page.room.base !== roomBase(page)) connect();
}

/** Connect `page` to the room of conference `conferenceId`, sending `media`. */
export function openRoom(page, conferenceId, media, hooks) {
  if (page.room) page.room.close(false);
  hooks.setMode(page.attempts ? 'reconnecting' : 'connecting');
  if (hooks.opening) hooks.opening();
  page.quality.reset();
  const room = new RoomClient(conferenceId, { ...media, base: roomBase(page) }, {
    onState: (state) => {
      if (room === page.room) hooks.onState(state);
    },
    onTrack: (slot, track) => hooks.onTrack(slot, track),
    onConnected: () => {
      if (room !== page.room) return;
      if (page.attempts) banner(t('reconnected'), 'ok', { autoHideMs: 4000 });
      else banner(null);
      page.attempts = 0;
      page.redirects = 0;
      hooks.setMode(hooks.liveMode);
    },
    onRedirect: (redirect) => {
      if (room !== page.room) return;
      page.placement = placementOf(redirect);
      page.redirects = (page.redirects || 0) + 1;
      if (page.redirects <= MAX_REDIRECTS) openRoom(page, conferenceId, media, hooks);
      else reconnectRoom(page, hooks);
    },
    onLost: () => {
      if (room === page.room) reconnectRoom(page, hooks);
    },
    onEnded: (kind, reason) => {
      if (room === page.room) hooks.onEnded(kind, reason);
    },
    onError: (error) => {
      if (room === page.room) hooks.onError(error, room);
    },
  });
  page.room = room;
  room.start();
}

/** The network dropped: say so, wait, and come back (`hooks.recheck`) with the same seat. */
export async function reconnectRoom(page, hooks) {
  if (!page.wantIn) return;
  page.attempts += 1;
  hooks.setMode('reconnecting');
  banner(t('reconnecting'), 'warn');
  const delay = Math.min(250 * 2 ** page.attempts, 4000);
  await new Promise((resolve) => {
    page.wakeUp = resolve;
    setTimeout(resolve, delay);
  });
  page.wakeUp = null;
  if (!page.wantIn) return;
  try {
    await hooks.recheck();
  } catch {
    reconnectRoom(page, hooks); // the service is unreachable: keep trying
  }
}

/**
 * Sample the room's connection quality (its peer connections' getStats) into
 * `page.lastQuality` and `render` it, while the page is in `liveMode` and
 * `ready(room)`; otherwise show "no connection" in `ui.quality`/`ui.qualityText`.
 * The pages call it every second.
 */
export async function sampleQuality(page, ui, { liveMode, ready, render }) {
  const room = page.room;
  if (!room || page.mode !== liveMode || !ready(room)) {
    ui.quality.dataset.grade = 'none';
    fill(ui.qualityText, t('quality_none'));
    return;
  }
  let q;
  try {
    q = await page.quality.sample([room.audioPc, room.videoPc]);
  } catch {
    return;
  }
  if (!q || room !== page.room) return;
  page.lastQuality = q;
  render();
}

/** The short quality line's parts: the grade, round-trip time, loss, bitrate down. */
export function qualityParts(q) {
  const parts = [t(`quality_${q.grade}`)];
  if (q.rttMs !== null) parts.push(`${Math.round(q.rttMs)} ms`);
  if (q.lossPct !== null) parts.push(`${t('loss')} ${formatNumber(q.lossPct)} %`);
  if (q.kbpsIn !== null) parts.push(`↓ ${Math.round(q.kbpsIn)} kb/s`);
  return parts;
}
