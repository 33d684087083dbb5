// The page is an endpoint too: while the operator is in a conference, it sends
// the endpoint's call figures as a heartbeat on the event stream it holds
// (docs/monitoring.md, "The operator's page reports too"), so the endpoint's
// health does not depend on whether the site uses the agent or the browser.
//
// The figures are the agent's (bridge/agent/call_stats.py), from the browser's
// own getStats(), each over the last interval (the difference from the
// previous reading): per kind (audio, video) and direction (in, out) the bit
// rate, the packets, the loss, the jitter and, from the bridge's RTCP receiver
// reports, the round-trip time; the decoded video frames per second of each
// slot that received packets. The summary is the worst of the kinds. A
// connection read for the first time (just joined) started at an unknown moment
// of the interval: its counts are sent, its rates (bit rate, frames per second)
// only from the next reading on.

const EVERY_MS = 5000; // the service's health_heartbeat_interval_seconds (each answer says it)
const KINDS = ['audio', 'video'];

function worst(values, lowest = false) {
  const present = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (!present.length) return null;
  return lowest ? Math.min(...present) : Math.max(...present);
}

const round = (value, digits) => (value === null ? null : Number(value.toFixed(digits)));
const rate = (bytes, seconds) => (bytes === null ? null : Math.round((bytes * 8) / seconds));
// Both kinds together; unknown when one is (a kind read for the first time).
const total = (values) => (values.length && !values.includes(null)
  ? values.reduce((sum, v) => sum + v, 0) : null);

/** Counter `now` minus the previous reading of `key` (all of it for a new stream). */
function since(previous, key, now) {
  const before = previous.get(key);
  previous.set(key, now);
  if (!before || now.some((value, i) => value < before[i])) return now;
  return now.map((value, i) => value - before[i]);
}

function emptyDirection() {
  return { bytes: 0, packets: 0, lost: 0, jitters: [], rtts: [], losses: [], fps: {} };
}

/** One peer connection's statistics added to `sums` (per kind: `in`, `out`); `fresh`:
 * read for the first time (no rates). */
async function readPeer(pc, slots, previous, sums, fresh) {
  const report = await pc.getStats();
  const slotOfMid = new Map();
  pc.getTransceivers().forEach((transceiver, index) => {
    slotOfMid.set(transceiver.mid, slots[index] || `line${index}`);
  });
  report.forEach((s) => {
    if (!KINDS.includes(s.kind)) return;
    const { in: got, out } = sums[s.kind];
    if (s.type === 'inbound-rtp') {
      const [packets, lost, bytes, frames] = since(previous, s.id, [
        s.packetsReceived || 0, Math.max(s.packetsLost || 0, 0),
        (s.bytesReceived || 0) + (s.headerBytesReceived || 0), s.framesDecoded || 0]);
      got.packets += packets;
      got.lost += lost;
      got.bytes += bytes;
      if (packets > 0 && typeof s.jitter === 'number') got.jitters.push(s.jitter * 1000);
      if (s.kind === 'video' && packets > 0 && !fresh) {
        got.fps[slotOfMid.get(s.mid) || 'line0'] = frames;
      }
    } else if (s.type === 'outbound-rtp') {
      const [packets, bytes] = since(previous, s.id, [
        s.packetsSent || 0, (s.bytesSent || 0) + (s.headerBytesSent || 0)]);
      out.packets += packets;
      out.bytes += bytes;
    } else if (s.type === 'remote-inbound-rtp') {
      // Only a receiver report that arrived during the interval tells about it.
      const [measured] = since(previous, s.id, [s.roundTripTimeMeasurements || 0]);
      if (measured > 0) {
        if (typeof s.roundTripTime === 'number') out.rtts.push(Math.max(s.roundTripTime * 1000, 0));
        if (typeof s.fractionLost === 'number') out.losses.push(s.fractionLost);
        if (typeof s.jitter === 'number') out.jitters.push(s.jitter * 1000);
      }
    }
  });
}

/** The heartbeat's `call` object (without `conference`) over the last `seconds`. */
export async function callFigures(room, previous, seconds) {
  const sums = {};
  for (const kind of KINDS) sums[kind] = { in: emptyDirection(), out: emptyDirection() };
  const kinds = [];
  for (const [pc, kind, slots] of [[room.audioPc, 'audio', ['mix']], [room.videoPc, 'video', room.slots]]) {
    if (!pc || pc.connectionState === 'closed') continue;
    const fresh = !previous.has(pc);
    if (fresh) previous.set(pc, new Map());
    await readPeer(pc, slots, previous.get(pc), sums, fresh);
    if (fresh) sums[kind].in.bytes = sums[kind].out.bytes = null;
    kinds.push(kind);
  }
  const call = { source: 'browser' };
  for (const kind of kinds) {
    const { in: got, out } = sums[kind];
    const expected = got.packets + got.lost;
    const inbound = {
      bitrate_bps: rate(got.bytes, seconds),
      packets_received: got.packets,
      packets_lost: got.lost,
      loss_ratio: expected ? round(got.lost / expected, 4) : null,
      jitter_ms: round(worst(got.jitters), 2),
    };
    if (kind === 'video') {
      inbound.fps_by_slot = {};
      for (const [slot, frames] of Object.entries(got.fps)) {
        inbound.fps_by_slot[slot] = round(Math.min(frames / seconds, 1000), 2);
      }
    }
    call[kind] = {
      in: inbound,
      out: {
        bitrate_bps: rate(out.bytes, seconds),
        packets_sent: out.packets,
        loss_ratio: round(worst(out.losses), 4),
        jitter_ms: round(worst(out.jitters), 2),
        rtt_ms: round(worst(out.rtts), 1),
      },
    };
  }
  const details = kinds.map((kind) => call[kind]);
  call.rtt_ms = worst(details.map((d) => d.out.rtt_ms));
  call.jitter_ms = worst(details.map((d) => d.in.jitter_ms));
  call.packet_loss_ratio = worst(details.map((d) => d.in.loss_ratio));
  call.bitrate_in_bps = total(details.map((d) => d.in.bitrate_bps));
  call.bitrate_out_bps = total(details.map((d) => d.out.bitrate_bps));
  call.fps = call.video ? worst(Object.values(call.video.in.fps_by_slot), true) : null;
  return call;
}

const live = (track) => Boolean(track && track.readyState === 'live');

/**
 * Sends the page's heartbeats on `stream` (common.js EventStream) while `inCall()`
 * returns `{room, conference, media}` (the RoomClient, the conference id, the
 * LocalMedia); nothing while it returns null.
 */
export class CallReporter {
  constructor(stream, inCall) {
    this.stream = stream;
    this.inCall = inCall;
    this.previous = new WeakMap(); // peer connection -> its last reading, by stats id
    this.lastAt = null;
    this.timer = null;
  }

  start() {
    this.timer = setInterval(() => this.report().catch(() => {}), EVERY_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  async report() {
    const now = performance.now();
    const seconds = this.lastAt === null ? EVERY_MS / 1000 : (now - this.lastAt) / 1000;
    this.lastAt = now;
    const current = this.inCall();
    if (!current) return;
    const call = await callFigures(current.room, this.previous, Math.max(seconds, 0.001));
    const { media } = current;
    this.stream.send({
      type: 'heartbeat',
      body: {
        sent_at: new Date().toISOString(),
        // What this page sends; a browser cannot tell whether a loudspeaker is there.
        devices: { camera: live(media.video), microphone: live(media.audio), speaker: true },
        call: { conference: current.conference, ...call },
      },
    });
  }
}
