// What every page shares: building DOM safely, the API with the session cookie
// and its CSRF header, the roster, times in Asia/Ho_Chi_Minh, the event
// stream, the login form and the header with the site's navigation.
//
// Text from the server is only ever inserted as text nodes (`el` below):
// no page ever parses a string as HTML.

import { applyStatic, lang, onLangChange, setLang, t } from './i18n.js';
import { renderNav, wireMenu } from './site_nav.js';

export const ZONE = 'Asia/Ho_Chi_Minh';
// A conference whose room is open: sites may join (the service's RUNNING_STATUSES).
export const RUNNING = new Set(['open', 'live']);

// -- DOM ------------------------------------------------------------------------

/**
 * A new element. `attrs`: `class`, `text` (a text node), `on` ({event: handler}),
 * `data` ({key: value} for data-*), `hidden`, any other attribute by name.
 * Children: nodes, or strings (inserted as text), null/false skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.setAttribute('class', value);
    else if (name === 'text') node.textContent = String(value);
    else if (name === 'on') for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (name === 'data') for (const [key, v] of Object.entries(value)) node.dataset[key] = String(v);
    else if (name === 'hidden') node.hidden = Boolean(value);
    else if (name === 'style') throw new Error('inline styles are refused by the page policy');
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const ICONS = {
  mic: 'M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2z',
  micOff: 'M19 11h-2a5 5 0 0 1-.7 2.54l1.46 1.46A6.96 6.96 0 0 0 19 11zM15 11V5a3 3 0 0 0-5.94-.6L15 10.34V11zM4.27 3 3 4.27l6 6V11a3 3 0 0 0 4.5 2.6l1.52 1.52A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.92V21h2v-3.08a6.9 6.9 0 0 0 3.04-1.13L19.73 21 21 19.73z',
  hand: 'M21 7.5a1.5 1.5 0 0 0-3 0V12h-1V4.5a1.5 1.5 0 0 0-3 0V11h-1V3.5a1.5 1.5 0 0 0-3 0V11H9V5.5a1.5 1.5 0 0 0-3 0v9.17l-2.1-2.1a1.5 1.5 0 0 0-2.12 2.12l5.3 5.3A6 6 0 0 0 11.32 22H15a6 6 0 0 0 6-6z',
  leave: 'M12 9c-1.6 0-3.15.25-4.6.72v3.1c0 .39-.23.74-.56.9-.98.49-1.87 1.12-2.66 1.85-.18.18-.43.28-.7.28-.28 0-.53-.11-.71-.29L.29 13.08A.96.96 0 0 1 0 12.37c0-.28.11-.53.29-.71C3.34 8.78 7.46 7 12 7s8.66 1.78 11.71 4.67c.18.18.29.43.29.71 0 .28-.11.53-.29.71l-2.48 2.48a1 1 0 0 1-1.41.01 11.3 11.3 0 0 0-2.67-1.85 1 1 0 0 1-.56-.9v-3.1A15 15 0 0 0 12 9z',
  lock: 'M18 8h-1V6A5 5 0 0 0 7 6v2H6a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V10a2 2 0 0 0-2-2zM9 6a3 3 0 0 1 6 0v2H9zm3 11a2 2 0 1 1 0-4 2 2 0 0 1 0 4z',
  unlock: 'M18 8h-8V6a2 2 0 0 1 4 0h2a4 4 0 0 0-8 0v2H6a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V10a2 2 0 0 0-2-2zm-6 9a2 2 0 1 1 0-4 2 2 0 0 1 0 4z',
  check: 'M9 16.17 4.83 12l-1.42 1.41L9 19 21 7l-1.41-1.41z',
  close: 'M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z',
  floor: 'M12 2a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V5a3 3 0 0 1 3-3zM4 21v-1a6 6 0 0 1 6-6h4a6 6 0 0 1 6 6v1z',
  camera: 'M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11z',
  back: 'M20 11H7.83l5.59-5.59L12 4l-8 8 8 8 1.41-1.41L7.83 13H20z',
  rec: 'M12 7a5 5 0 1 0 0 10 5 5 0 0 0 0-10z',
  info: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm1 15h-2v-6h2zm0-8h-2V7h2z',
};

/** A small inline SVG icon (decorative: hidden from screen readers). */
export function icon(name) {
  const svg = el('svg:svg', { class: 'icon', viewBox: '0 0 24 24', 'aria-hidden': 'true', focusable: 'false' });
  svg.append(el('svg:path', { d: ICONS[name] || '' }));
  return svg;
}

// -- API ---------------------------------------------------------------------------

let csrfToken = '';

export class ApiFailure extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || 'http';
    this.details = error.details || null;
  }
}

/** A JSON request to the API with the session cookie (and the CSRF header on writes). */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) throw new ApiFailure(response.status, payload);
  return payload;
}

/** The logged-in user ({name, role, endpoint}), or null when there is no session. */
export async function whoAmI() {
  try {
    const me = await api('GET', '/api/v1/auth/me');
    csrfToken = me.csrf_token || '';
    return me;
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 401) return null;
    throw error;
  }
}

export async function logIn(username, password) {
  const answer = await api('POST', '/api/v1/auth/login', { username, password });
  csrfToken = answer.csrf_token || '';
  return whoAmI();
}

export async function logOut() {
  try {
    await api('POST', '/api/v1/auth/logout');
  } finally {
    csrfToken = '';
  }
}

export function wsUrl(path) {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${path}`;
}

/**
 * The WebSocket URL of `path` under `base`: a bridge node's base URL (docs/deployment.md:
 * behind the proxy, under this origin's `/nodes/<id>`, its path prefix kept); this
 * origin when `base` is empty.
 */
export function wsUrlAt(base, path) {
  if (!base) return wsUrl(path);
  const url = new URL(base, location.href);
  const prefix = url.pathname.replace(/\/+$/, '');
  return `${url.protocol === 'https:' ? 'wss:' : 'ws:'}//${url.host}${prefix}${path}`;
}

// -- the roster and times ------------------------------------------------------------

const roster = new Map();

export async function loadRoster() {
  const body = await api('GET', '/api/v1/endpoints?include_retired=true');
  for (const endpoint of body.endpoints) roster.set(endpoint.code, endpoint);
}

/** Every endpoint of the roster (retired ones too), in roster order. */
export function rosterEndpoints() {
  return [...roster.values()];
}

/** An endpoint's display name in the current language (its code if unknown). */
export function siteName(code) {
  if (!code) return '';
  const endpoint = roster.get(code);
  if (!endpoint) return code;
  return (lang() === 'en' && endpoint.name_en) || endpoint.name || code;
}

/** Two letters for an endpoint without a picture, from its Vietnamese name
 * ("UBND huyện Vĩnh Lộc" → "VL"), the same in both languages. */
export function initials(code) {
  const endpoint = roster.get(code);
  const name = (endpoint && endpoint.name) || code || '';
  const words = name.replace(/^(Văn phòng|UBND|Sở)\s+/i, '')
    .replace(/^(huyện|thị xã|thành phố|tỉnh)\s+/i, '').split(/[\s-]+/).filter(Boolean);
  return words.slice(-2).map((w) => w.charAt(0).toUpperCase()).join('');
}

function formatter(options) {
  return new Intl.DateTimeFormat(lang() === 'en' ? 'en-GB' : 'vi-VN', { timeZone: ZONE, ...options });
}

export function formatTime(iso) {
  return formatter({ hour: '2-digit', minute: '2-digit', hour12: false }).format(new Date(iso));
}

export function formatDay(iso) {
  return formatter({ weekday: 'long', day: '2-digit', month: '2-digit', year: 'numeric' }).format(new Date(iso));
}

/** "Thứ Sáu, 27/11/2026 · 08:00 – 10:00" */
export function formatWhen(start, end) {
  const day = formatDay(start);
  return `${day.charAt(0).toUpperCase()}${day.slice(1)} · ${formatTime(start)} – ${formatTime(end)}`;
}

/** "27/11/2026 10:05" (with `seconds`: "10:05:31") in Asia/Ho_Chi_Minh, 24 h; '' for none.
 * Built from parts: some locales' data writes "27-11" or a 12-hour clock. */
export function formatStamp(iso, { seconds = false } = {}) {
  if (!iso) return '';
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', {
    timeZone: ZONE, day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit',
    minute: '2-digit', ...(seconds ? { second: '2-digit' } : {}), hourCycle: 'h23',
  }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  const time = `${parts.hour}:${parts.minute}${seconds ? `:${parts.second}` : ''}`;
  return `${parts.day}/${parts.month}/${parts.year} ${time}`;
}

/** A number in the page's language, a decimal comma in Vietnamese ("2,5"); '–' for none. */
export function formatNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  return new Intl.NumberFormat(lang() === 'en' ? 'en-GB' : 'vi-VN', {
    maximumFractionDigits: digits, minimumFractionDigits: 0,
  }).format(value);
}

/** "1,2 MB", "340 KB", "12 B": a file's size in the page's language. */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${formatNumber(bytes / 1024)} KB`;
  return `${formatNumber(bytes / (1024 * 1024))} MB`;
}

/** When the room of a conference opens: `setup_minutes` before its start. */
export function opensAt(conference) {
  return new Date(Date.parse(conference.start) - conference.setup_minutes * 60000).toISOString();
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// -- the event stream ------------------------------------------------------------------

/**
 * The scheduler's events (`/api/v1/events`) for this account, resumed with
 * `?after=` after any cut, so the pages never miss "the room opened".
 */
export class EventStream {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.after = null;
    this.ws = null;
    this.stopped = false;
    this.delay = 500;
    this.pinger = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    const query = this.after === null ? '' : `?after=${this.after}`;
    const ws = new WebSocket(wsUrl(`/api/v1/events${query}`));
    this.ws = ws;
    ws.onmessage = (message) => {
      let body;
      try {
        body = JSON.parse(message.data);
      } catch {
        return;
      }
      if (body.type === 'stream.ready') {
        this.delay = 500;
        if (this.after === null || body.reset) this.after = body.after;
        return;
      }
      if (typeof body.seq === 'number') {
        if (this.after !== null && body.seq <= this.after) return;
        this.after = body.seq;
        this.onEvent(body);
      }
    };
    ws.onclose = () => {
      clearInterval(this.pinger);
      if (this.stopped) return;
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
    this.pinger = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
    }, 20000);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
  }

  /** Send a message on the stream (the page's heartbeat); false when it is not open. */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }
}

// -- the page frame: header, banner, toast, login -------------------------------------

const MENU_ICON = 'M3 6h18v2H3zm0 5h18v2H3zm0 5h18v2H3z';

/**
 * Build the frame every page shares around its `#app`: the header (the brand,
 * a link home; the page's subtitle; the navigation by role, filled by
 * `showUser`; who is logged in; the language switch), the banner and the
 * toast. Built here once, so the HTML files hold only what differs. On a
 * phone the navigation, the user and the switch fold into a menu button.
 */
export function setupFrame(subtitleKey) {
  const switcher = el('button', { id: 'lang', class: 'lang-button', type: 'button', data: { i18n: 'switch_lang' } });
  switcher.addEventListener('click', () => setLang(lang() === 'vi' ? 'en' : 'vi'));
  const toggle = el('button', {
    id: 'nav-toggle', class: 'nav-toggle', type: 'button', 'aria-controls': 'site-menu', 'aria-expanded': 'false',
  }, el('svg:svg', { class: 'icon', viewBox: '0 0 24 24', 'aria-hidden': 'true', focusable: 'false' },
    el('svg:path', { d: MENU_ICON })), el('span', { class: 'nav-toggle-text', data: { i18n: 'nav_menu' } }));
  const list = el('ul', { id: 'site-nav-list', class: 'nav-list', hidden: true });
  const header = el('header', { class: 'topbar' },
    el('a', { class: 'brand', href: '/' },
      el('img', { class: 'brand-mark', src: '/static/icon.svg', alt: '', width: 36, height: 36 }),
      el('div', { class: 'brand-text' },
        el('div', { class: 'brand-name', data: { i18n: 'brand' } }),
        el('div', { class: 'brand-sub', id: 'brand-sub', data: { i18n: subtitleKey } }))),
    toggle,
    el('div', { id: 'site-menu', class: 'topbar-menu' },
      el('nav', { id: 'site-nav', class: 'site-nav', data: { i18nLabel: 'nav_label' } }, list),
      el('div', { class: 'topbar-right' }, el('span', { id: 'user-box', class: 'user-box' }), switcher)));
  const live = { role: 'status', 'aria-live': 'polite', hidden: true };
  document.body.prepend(header, el('div', { id: 'banner', class: 'banner', ...live }));
  document.body.append(el('div', { id: 'toast', class: 'toast', ...live }));
  const relabel = wireMenu(toggle, document.getElementById('site-menu'), header);
  onLangChange(relabel);
  applyStatic();
}

/**
 * Start a page: the frame, a loading line, the login form when nobody is logged in,
 * the roster, and who is logged in in the header. Log-out runs `beforeLogout` (leave
 * a room), then reloads. Returns the person (`GET /api/v1/auth/me`).
 */
export async function signIn(app, subtitleKey, introKey = 'login_intro', { beforeLogout = null } = {}) {
  setupFrame(subtitleKey);
  fill(app, el('p', { class: 'center-stage muted', text: t('loading') }));
  let me = await whoAmI();
  if (!me) me = await loginForm(app, introKey);
  await loadRoster();
  showUser(me, async () => {
    if (beforeLogout) beforeLogout();
    await logOut().catch(() => {});
    location.reload();
  });
  return me;
}

/** Run a page's `main`; if it fails (the service unreachable), say so and reload soon. */
export function runPage(main) {
  main().catch((error) => {
    banner(t('err_network'), 'error');
    // eslint-disable-next-line no-console
    console.error(error);
    setTimeout(() => location.reload(), 5000);
  });
}

let userRender = null;

/** Show who is logged in (and the log-out button) in the header, and the pages
 * their role may use in the navigation; `null` empties both. */
export function showUser(me, onLogout) {
  const box = document.getElementById('user-box');
  const list = document.getElementById('site-nav-list');
  const render = () => {
    renderNav(list, me);
    if (!me) {
      fill(box);
      return;
    }
    const where = me.endpoint ? siteName(me.endpoint) : me.role ? t(`role_${me.role}`) : '';
    fill(box,
      el('span', { class: 'user-name', text: me.name }),
      where ? el('span', { class: 'user-where', text: where }) : null,
      el('button', { type: 'button', class: 'link-button', text: t('logout'), on: { click: onLogout } }));
  };
  if (!userRender) onLangChange(() => userRender && userRender());
  userRender = render;
  render();
}

let bannerTimer = null;

/** A message across the top of the page (`kind`: info, warn, error, ok); null hides it. */
export function banner(text, kind = 'info', { autoHideMs = 0 } = {}) {
  const node = document.getElementById('banner');
  clearTimeout(bannerTimer);
  if (!text) {
    node.hidden = true;
    node.textContent = '';
    return;
  }
  node.className = `banner banner-${kind}`;
  node.dataset.kind = kind;
  node.textContent = text;
  node.hidden = false;
  if (autoHideMs) bannerTimer = setTimeout(() => banner(null), autoHideMs);
}

let toastTimer = null;

export function toast(text) {
  const node = document.getElementById('toast');
  clearTimeout(toastTimer);
  node.textContent = text;
  node.hidden = false;
  toastTimer = setTimeout(() => {
    node.hidden = true;
  }, 4000);
}

/** The login form in `container` (`introKey`: the text under the title);
 * resolves with the user once logged in. */
export function loginForm(container, introKey = 'login_intro') {
  return new Promise((resolve) => {
    const message = el('p', { class: 'form-error', role: 'alert', hidden: true });
    const username = el('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autofocus: true });
    const password = el('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const submit = el('button', { type: 'submit', class: 'button button-primary button-wide' });
    const title = el('h1');
    const intro = el('p', { class: 'muted' });
    const userLabel = el('label', { for: 'username' });
    const passLabel = el('label', { for: 'password' });
    const texts = () => {
      title.textContent = t('login_title');
      intro.textContent = t(introKey);
      userLabel.textContent = t('username');
      passLabel.textContent = t('password');
      submit.textContent = t('login_button');
    };
    texts();
    onLangChange(texts);
    const form = el('form', { class: 'card login-card', id: 'login-form', novalidate: true },
      title, intro,
      el('div', { class: 'field' }, userLabel, username),
      el('div', { class: 'field' }, passLabel, password),
      message, submit);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      message.hidden = true;
      submit.disabled = true;
      try {
        resolve(await logIn(username.value.trim(), password.value));
      } catch (error) {
        let text;
        if (error instanceof ApiFailure && error.status === 401) text = t('login_wrong');
        else if (error instanceof ApiFailure && error.status === 429) {
          text = t('login_limited', { seconds: (error.details && error.details.retry_after_seconds) || 60 });
        } else text = t('login_failed', { message: error.message });
        message.textContent = text;
        message.hidden = false;
        password.value = '';
        password.focus();
      } finally {
        submit.disabled = false;
      }
    });
    fill(container, el('div', { class: 'center-stage' }, form));
    username.focus();
  });
}

/** A status chip for a conference status. */
export function statusChip(status) {
  return el('span', { class: `chip chip-${status}`, data: { status }, text: t(`status_${status}`) });
}
