// The site's side of the bridge's signaling protocol (docs/signaling.md), in
// the browser: the same logic as bridge/site_client.py.
//
// One WebSocket to /api/v1/conferences/{id}/signal (the session cookie
// authenticates it), then two peer connections offered by us and answered by
// the bridge, each with every ICE candidate in the offer (no trickle): audio
// (one sendrecv line: our microphone up, the mix of the others down) and
// video (the first line sendrecv: our camera up and the first slot down, then
// one recvonly line per further slot). VP8 only.
//
// A RoomClient lives for one connection. When the network drops it reports
// `onLost` once and closes everything; the page makes a new one (aiortc has
// no ICE restart) and the bridge gives the endpoint back its seat, floor and
// mute state.
//
// `base` is the base URL of the bridge node holding the room (the conference's
// `bridge.url`); null: this origin. A node that does not hold the room answers
// `redirect` with the right node's URL and closes: the RoomClient reports
// `onRedirect(message)` and the page opens a new one there (room_session.js).
//
// With `control: true` it is a moderator's console instead of a site
// (`?role=control`): no audio connection at all, and one video connection
// whose lines only receive (the floor and the grid); nothing is sent.

import { wsUrlAt } from './common.js';

const PING_EVERY_MS = 5000;
const PONG_TIMEOUT_MS = 12000;
// A peer connection "disconnected" this long is lost. Chromium says "disconnected"
// after a few seconds without ICE consent answers and often recovers by itself
// (a busy bridge, a short glitch): rebuild only when it lasts.
const DISCONNECTED_GRACE_MS = 6000;
const NEGOTIATION_TIMEOUT_MS = 20000;
const GATHER_TIMEOUT_MS = 3000;
// Upper bound of the camera's bit rate: the bridge forwards it to every site as is.
const MAX_VIDEO_BITRATE = 800000;

/** RTCIceServer objects from the bridge's URIs (`stun:h:p`, `turn:user:password@h:p`). */
export function iceServers(uris) {
  return (uris || []).map((uri) => {
    const match = /^(turns?):([^:@]+):([^@]+)@(.+)$/.exec(uri);
    if (match) return { urls: `${match[1]}:${match[4]}`, username: match[2], credential: match[3] };
    return { urls: uri };
  });
}

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') {
      resolve();
      return;
    }
    const done = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', done);
      resolve();
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, GATHER_TIMEOUT_MS); // send what we have
  });
}

export class RoomClient {
  /**
   * handlers: onJoined(joined), onState(state), onTrack(slot, track),
   * onConnected(), onLost(why), onEnded(kind, reason), onError(error), onRedirect(message).
   */
  constructor(conferenceId, {
    audio = null, video = null, receiveSlots = null, control = false, base = null,
  } = {}, handlers = {}) {
    this.conferenceId = conferenceId;
    this.base = base;
    this.redirect = null;
    this.control = control;
    this.audio = control ? null : audio;
    this.video = control ? null : video;
    this.receiveSlots = receiveSlots;
    this.handlers = handlers;
    this.ws = null;
    this.joined = null;
    this.state = null;
    this.slots = [];
    this.audioPc = null;
    this.videoPc = null;
    this.answers = new Map();
    this.finished = false;
    this.connected = false;
    this.lastPong = 0;
    this.timers = [];
    this.disconnectedSince = new Map();
  }

  // -- lifetime -------------------------------------------------------------------------

  start() {
    const query = this.control ? '?role=control' : '';
    const ws = new WebSocket(wsUrlAt(this.base, `/api/v1/conferences/${this.conferenceId}/signal${query}`));
    this.ws = ws;
    ws.onmessage = (message) => this.receive(message.data);
    ws.onclose = (event) => this.closedByServer(event);
    this.lastPong = Date.now();
    this.timers.push(setInterval(() => this.ping(), PING_EVERY_MS));
    this.timers.push(setInterval(() => this.watchMedia(), 500));
  }

  /** Close everything; `leave`: say goodbye first (the roll call shows "left"). */
  close(leave = false) {
    if (this.finished) return;
    this.finished = true;
    for (const timer of this.timers) clearInterval(timer);
    if (leave && this.ws && this.ws.readyState === WebSocket.OPEN) this.send({ type: 'leave' });
    for (const pc of [this.audioPc, this.videoPc]) if (pc) pc.close();
    if (this.ws) this.ws.close(1000);
    for (const pending of this.answers.values()) pending.reject(new Error('closed'));
    this.answers.clear();
  }

  lost(why) {
    if (this.finished) return;
    this.close(false);
    this.emit('onLost', why);
  }

  emit(name, ...args) {
    const handler = this.handlers[name];
    if (handler) handler(...args);
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  // -- signaling ----------------------------------------------------------------------------

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    switch (message.type) {
      case 'joined':
        this.joined = message;
        this.emit('onJoined', message);
        this.negotiate().catch((error) => this.lost(`negotiation: ${error.message || error}`));
        break;
      case 'state':
        // Drop a snapshot older than one already seen (an equal version carries
        // a new active speaker).
        if (this.state && message.version < this.state.version) return;
        this.state = message;
        this.emit('onState', message);
        break;
      case 'answer': {
        const pending = this.answers.get(message.pc);
        if (pending) {
          this.answers.delete(message.pc);
          pending.resolve(message);
        }
        break;
      }
      case 'pong':
        this.lastPong = Date.now();
        break;
      case 'error':
        if (message.error && message.error.code === 'bad_offer') {
          for (const pending of this.answers.values()) pending.reject(new Error(message.error.message));
          this.answers.clear();
        }
        this.emit('onError', message.error || {});
        break;
      case 'closed':
      case 'removed':
      case 'replaced':
        this.ended = { kind: message.type, reason: message.reason || null };
        break;
      case 'redirect':
        // The room is on another node (or moved there): the node closes next.
        if (typeof message.url === 'string') this.redirect = message;
        break;
      default:
        break;
    }
  }

  closedByServer() {
    if (this.finished) return;
    if (this.redirect) {
      this.close(false);
      this.emit('onRedirect', this.redirect);
    } else if (this.ended) {
      this.close(false);
      this.emit('onEnded', this.ended.kind, this.ended.reason);
    } else {
      this.lost(this.joined ? 'signaling closed' : 'refused');
    }
  }

  ping() {
    if (this.finished) return;
    if (Date.now() - this.lastPong > PONG_TIMEOUT_MS) {
      this.lost('no answer to ping');
      return;
    }
    this.send({ type: 'ping' });
  }

  // -- media --------------------------------------------------------------------------------

  newPc() {
    const pc = new RTCPeerConnection({
      iceServers: iceServers(this.joined.ice_servers),
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    });
    pc.addEventListener('connectionstatechange', () => this.watchMedia());
    return pc;
  }

  async negotiate() {
    let audioPc = null;
    if (!this.control) {
      audioPc = this.newPc();
      this.audioPc = audioPc;
      audioPc.addTransceiver(this.audio || 'audio', { direction: this.audio ? 'sendrecv' : 'recvonly' });
      audioPc.addEventListener('track', (event) => this.emit('onTrack', 'mix', event.track));
    }

    let slots = [...this.joined.slots];
    if (this.receiveSlots !== null) slots = slots.slice(0, this.receiveSlots);
    this.slots = slots;
    const videoPc = this.newPc();
    this.videoPc = videoPc;
    slots.forEach((slot, index) => {
      if (index === 0 && this.video) {
        videoPc.addTransceiver(this.video, {
          direction: 'sendrecv',
          sendEncodings: [{ maxBitrate: MAX_VIDEO_BITRATE }],
        });
      } else {
        videoPc.addTransceiver('video', { direction: 'recvonly' });
      }
    });
    const vp8 = RTCRtpReceiver.getCapabilities('video').codecs
      .filter((codec) => /^video\/(vp8|rtx)$/i.test(codec.mimeType));
    for (const transceiver of videoPc.getTransceivers()) transceiver.setCodecPreferences(vp8);
    videoPc.addEventListener('track', (event) => {
      const index = videoPc.getTransceivers().indexOf(event.transceiver);
      this.emit('onTrack', slots[index] || `line${index}`, event.track);
    });

    // Both gather at once; the bridge answers them in the order they arrive.
    const pcs = audioPc ? [[audioPc, 'audio'], [videoPc, 'video']] : [[videoPc, 'video']];
    const offers = await Promise.all(pcs.map(([pc]) => this.prepare(pc)));
    const deadline = setTimeout(() => this.lost('no answer to the offers'), NEGOTIATION_TIMEOUT_MS);
    try {
      await Promise.all(pcs.map(([pc, kind], index) => this.offer(pc, kind, offers[index])));
    } finally {
      clearTimeout(deadline);
    }
  }

  async prepare(pc) {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    return pc.localDescription.sdp;
  }

  async offer(pc, kind, sdp) {
    const answer = new Promise((resolve, reject) => this.answers.set(kind, { resolve, reject }));
    if (!this.send({ type: 'offer', pc: kind, sdp })) throw new Error('signaling closed');
    const message = await answer;
    if (this.finished) return;
    await pc.setRemoteDescription({ type: 'answer', sdp: message.sdp });
  }

  /** Lost media: a peer connection failed, was closed, or stayed disconnected. */
  watchMedia() {
    if (this.finished || !this.videoPc || (!this.control && !this.audioPc)) return;
    const pcs = this.control ? [this.videoPc] : [this.audioPc, this.videoPc];
    for (const pc of pcs) {
      const state = pc.connectionState;
      if (state === 'failed' || state === 'closed') {
        this.lost(`media ${state}`);
        return;
      }
      if (state === 'disconnected') {
        const since = this.disconnectedSince.get(pc) || Date.now();
        this.disconnectedSince.set(pc, since);
        if (Date.now() - since > DISCONNECTED_GRACE_MS) {
          this.lost('media disconnected');
          return;
        }
      } else {
        this.disconnectedSince.delete(pc);
      }
    }
    if (!this.connected && pcs.every((pc) => pc.connectionState === 'connected')) {
      this.connected = true;
      this.emit('onConnected');
    }
  }

  /** Swap the microphone or camera without renegotiating. */
  async replaceTrack(kind, track) {
    const pc = kind === 'audio' ? this.audioPc : this.videoPc;
    if (!pc) return;
    const transceiver = pc.getTransceivers()[0];
    if (transceiver && transceiver.sender && transceiver.direction === 'sendrecv') {
      await transceiver.sender.replaceTrack(track);
    }
  }
}

/**
 * Connection quality from getStats(): round-trip time of the selected ICE pair,
 * packet loss and bit rates over the last interval, across both connections.
 */
export class QualityMeter {
  constructor() {
    this.previous = null;
  }

  async sample(pcs) {
    const now = performance.now();
    const totals = { received: 0, lost: 0, bytesIn: 0, bytesOut: 0, framesDecoded: 0, audioPackets: 0 };
    const rtts = [];
    for (const pc of pcs) {
      if (!pc || pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      let selectedPair = null;
      report.forEach((stat) => {
        if (stat.type === 'transport' && stat.selectedCandidatePairId) selectedPair = stat.selectedCandidatePairId;
      });
      report.forEach((stat) => {
        if (stat.type === 'inbound-rtp') {
          totals.received += stat.packetsReceived || 0;
          totals.lost += Math.max(stat.packetsLost || 0, 0);
          totals.bytesIn += stat.bytesReceived || 0;
          if (stat.kind === 'video') totals.framesDecoded += stat.framesDecoded || 0;
          if (stat.kind === 'audio') totals.audioPackets += stat.packetsReceived || 0;
        } else if (stat.type === 'outbound-rtp') {
          totals.bytesOut += stat.bytesSent || 0;
        } else if (stat.type === 'candidate-pair' && stat.id === selectedPair
                   && typeof stat.currentRoundTripTime === 'number') {
          rtts.push(stat.currentRoundTripTime * 1000);
        }
      });
    }
    const result = { rttMs: rtts.length ? Math.max(...rtts) : null, lossPct: null, kbpsIn: null, kbpsOut: null, ...totals };
    const previous = this.previous;
    this.previous = { at: now, ...totals };
    if (previous && now > previous.at) {
      const seconds = (now - previous.at) / 1000;
      const received = totals.received - previous.received;
      const lost = totals.lost - previous.lost;
      if (received >= 0 && lost >= 0) result.lossPct = received + lost > 0 ? (100 * lost) / (received + lost) : 0;
      if (totals.bytesIn >= previous.bytesIn) result.kbpsIn = ((totals.bytesIn - previous.bytesIn) * 8) / 1000 / seconds;
      if (totals.bytesOut >= previous.bytesOut) result.kbpsOut = ((totals.bytesOut - previous.bytesOut) * 8) / 1000 / seconds;
    }
    // The bridge sends the mix without pause (silence too): with an audio receiver,
    // nothing coming in means a broken link. A receive-only console (control mode)
    // legitimately gets nothing while no site sends a picture.
    const expectsFlow = pcs.some((pc) => pc && pc.connectionState !== 'closed'
      && pc.getReceivers().some((r) => r.track && r.track.kind === 'audio'));
    result.grade = grade(result, expectsFlow);
    return result;
  }

  reset() {
    this.previous = null;
  }
}

function grade({ rttMs, lossPct, kbpsIn }, expectsFlow) {
  if (rttMs === null && lossPct === null) return 'none';
  const rtt = rttMs || 0;
  const loss = lossPct || 0;
  if (rtt > 400 || loss > 8 || (expectsFlow && kbpsIn === 0)) return 'poor';
  if (rtt > 150 || loss > 2) return 'fair';
  return 'good';
}
