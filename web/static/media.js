// The endpoint's own camera and microphone: opening them with clear messages
// when that fails, the live level meter, and the device picker.

import { el, fill } from './common.js';
import { t } from './i18n.js';

// What a district office camera is asked for: the bridge forwards video as is,
// so a modest picture keeps every site's link and the bridge light.
const VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 15, max: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

function problemOf(error) {
  switch (error && error.name) {
    case 'NotAllowedError':
    case 'SecurityError':
    case 'PermissionDeniedError':
      return 'media_denied';
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return 'media_none';
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return 'media_busy';
    default:
      return 'media_other';
  }
}

/** The local camera and microphone; `problem` is an i18n key when something is missing. */
export class LocalMedia {
  constructor() {
    this.stream = new MediaStream();
    this.problem = null;
    this.problemName = '';
    this.cameraId = '';
    this.micId = '';
  }

  get audio() {
    return this.stream.getAudioTracks()[0] || null;
  }

  get video() {
    return this.stream.getVideoTracks()[0] || null;
  }

  /** Open (or re-open with other devices) the camera and microphone. */
  async open() {
    this.stop();
    this.problem = null;
    this.problemName = '';
    const devices = navigator.mediaDevices;
    if (!devices || !devices.getUserMedia) {
      this.problem = window.isSecureContext ? 'media_other' : 'media_insecure';
      this.problemName = 'getUserMedia';
      return this;
    }
    const video = this.cameraId ? { ...VIDEO, deviceId: { exact: this.cameraId } } : VIDEO;
    const audio = this.micId ? { ...AUDIO, deviceId: { exact: this.micId } } : AUDIO;
    try {
      this.stream = await devices.getUserMedia({ audio, video });
      return this;
    } catch (error) {
      this.problem = problemOf(error);
      this.problemName = error.name || String(error);
      if (this.problem === 'media_denied' || this.problem === 'media_busy') return this;
    }
    // One of the two may be missing: take what there is.
    for (const [only, missing] of [[{ audio }, 'media_no_camera'], [{ video }, 'media_no_mic']]) {
      try {
        this.stream = await devices.getUserMedia(only);
        this.problem = missing;
        return this;
      } catch (error) {
        if (problemOf(error) === 'media_denied') {
          this.problem = 'media_denied';
          return this;
        }
      }
    }
    return this;
  }

  /** Whether the endpoint can be heard or seen at all. */
  get usable() {
    return Boolean(this.audio || this.video);
  }

  stop() {
    for (const track of this.stream.getTracks()) track.stop();
    this.stream = new MediaStream();
  }
}

/** A level meter: `bar` grows with the microphone's loudness. */
export class LevelMeter {
  constructor(bar) {
    this.bar = bar;
    this.context = null;
    this.timer = null;
    this.peak = 0;
    document.addEventListener('pointerdown', () => this.context && this.context.resume(), { capture: true });
  }

  attach(track) {
    this.detach();
    if (!track) return;
    this.context = new AudioContext();
    const source = this.context.createMediaStreamSource(new MediaStream([track]));
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const value of samples) sum += value * value;
      const rms = Math.sqrt(sum / samples.length);
      // -60 dBFS (silence) .. 0 dBFS (full scale) onto 0 .. 1.
      const level = track.enabled ? Math.min(1, Math.max(0, (20 * Math.log10(rms + 1e-9) + 60) / 60)) : 0;
      this.peak = Math.max(this.peak, level);
      this.bar.style.transform = `scaleX(${level.toFixed(3)})`;
      this.bar.dataset.level = level.toFixed(2);
      this.bar.dataset.peak = this.peak.toFixed(2);
    }, 60);
  }

  detach() {
    clearInterval(this.timer);
    if (this.context) this.context.close();
    this.context = null;
    this.bar.style.transform = 'scaleX(0)';
  }
}

/** Camera and microphone pickers; `onChange` after the user picks another device. */
export async function fillDevicePickers(cameraSelect, micSelect, media) {
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    devices = [];
  }
  const fillOne = (select, kind, current, fallback) => {
    const options = devices.filter((d) => d.kind === kind && d.deviceId);
    fill(select, options.map((device, index) => el('option', {
      value: device.deviceId,
      selected: device.deviceId === current,
      text: device.label || `${fallback} ${index + 1}`,
    })));
    select.disabled = options.length === 0;
  };
  const settings = (track) => (track && track.getSettings ? track.getSettings() : {});
  fillOne(cameraSelect, 'videoinput', settings(media.video).deviceId || media.cameraId, t('camera'));
  fillOne(micSelect, 'audioinput', settings(media.audio).deviceId || media.micId, t('microphone'));
}
