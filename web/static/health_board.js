// The IT dashboard's board: every endpoint as a tile coloured by its health state,
// with its reason; filtered by state and name, sorted, grouped. Live: the page
// hands it each `endpoint.health` event, and the board repaints what changed at
// most once every BATCH_MS, in place; tiles move to their new place in the sort and
// the groups at most once every REFLOW_MS (a move shifts every tile after it, the
// whole board is laid out and painted again). So 200 endpoints changing every 5 s
// cost a few repainted tiles a second and one reflow every 5 s, not 40 layouts a
// second (bench/dashboard.py). What a person changes (filter, sort) applies at once.
// Past DENSE_FROM endpoints
// the tiles turn compact so 200 still fit the eye: a name and, when not ok, its reason.

import { el, fill } from './common.js';
import { t } from './i18n.js';
import {
  SEVERITY, STATES, durationText, folded, reasonText, shortName, stateLabel,
} from './health_view.js';

const BATCH_MS = 1000;
const REFLOW_MS = 5000;
export const DENSE_FROM = 60;
const KINDS = ['provincial', 'district', 'commune'];

/**
 * Make `parent`'s children exactly `nodes`, in order, moving only what is out of
 * place: when a few endpoints change group, a few tiles move, not all 200 (each
 * moved node costs the browser a style and layout pass).
 */
function set(tile, key, value, write) {
  if (tile.shown[key] !== value) {
    tile.shown[key] = value;
    write();
  }
}

function reorder(parent, nodes) {
  let current = parent.firstChild;
  for (const node of nodes) {
    if (node === current) {
      current = current.nextSibling;
    } else {
      parent.insertBefore(node, current); // moves it, from here or from another group
    }
  }
  while (current) {
    const next = current.nextSibling;
    current.remove();
    current = next;
  }
}

export class HealthBoard {
  /**
   * `container`: where the groups go; `onOpen(code)`: a tile was chosen;
   * `onCounts(counts)`: the number of endpoints per state changed.
   */
  constructor(container, { onOpen, onCounts }) {
    this.container = container;
    this.onOpen = onOpen;
    this.onCounts = onCounts;
    this.entries = new Map(); // code -> {code, kind, state, since, reasons}
    this.tiles = new Map(); // code -> {node, name, state, reason}
    this.groups = new Map(); // key -> {section, title, grid, collapsed}
    this.view = { filter: 'all', query: '', sort: 'severity', group: 'state' };
    this.dirty = new Set();
    this.needsLayout = true;
    this.timer = null;
    this.lastLayout = 0;
    this.order = [];
    this.names = new Map(); // code -> {name, folded}: the sort and the search, per language
    this.collator = new Intl.Collator('vi');
    this.empty = el('p', { class: 'muted board-empty', text: t('dash_none_match'), hidden: true });
  }

  /** Every endpoint's health (GET /api/v1/health), with each endpoint's kind. */
  setAll(endpoints, kinds) {
    const seen = new Set();
    for (const item of endpoints) {
      seen.add(item.code);
      const before = this.entries.get(item.code);
      const entry = {
        code: item.code, kind: kinds.get(item.code) || 'other', state: item.state,
        since: item.since, reasons: item.reasons || [],
      };
      if (!before || before.state !== entry.state || before.since !== entry.since
          || JSON.stringify(before.reasons) !== JSON.stringify(entry.reasons)) {
        this.entries.set(item.code, entry);
        this.dirty.add(item.code);
        if (!before || before.state !== entry.state || before.since !== entry.since) this.needsLayout = true;
      }
    }
    for (const code of [...this.entries.keys()]) {
      if (!seen.has(code)) {
        this.entries.delete(code);
        const tile = this.tiles.get(code);
        if (tile) tile.node.remove();
        this.tiles.delete(code);
        this.needsLayout = true;
      }
    }
    this.flush();
  }

  /** An `endpoint.health` event: `{state, previous, since, reasons}` of `code`. */
  applyEvent(code, data) {
    const entry = this.entries.get(code);
    if (!entry) return; // an endpoint the roster does not list (yet): the next reload adds it
    const moved = entry.state !== data.state || entry.since !== data.since;
    entry.state = data.state;
    entry.since = data.since;
    entry.reasons = data.reasons || [];
    this.dirty.add(code);
    if (moved) this.needsLayout = true;
    this.schedule();
  }

  setView(changes) {
    Object.assign(this.view, changes);
    this.needsLayout = true;
    this.flush(true);
  }

  /** Repaint everything (the language changed). */
  repaintAll() {
    this.names.clear();
    for (const code of this.entries.keys()) this.dirty.add(code);
    for (const [key, group] of this.groups) group.title.textContent = this.groupTitle(key, group.count || 0);
    this.empty.textContent = t('dash_none_match');
    this.needsLayout = true;
    this.flush(true);
  }

  /** Bring the "since" durations up to date (called every 30 s). */
  tick() {
    for (const code of this.order) this.paintState(code);
  }

  counts() {
    const counts = { all: this.entries.size, offline: 0, degraded: 0, ok: 0 };
    for (const entry of this.entries.values()) if (entry.state in counts) counts[entry.state] += 1;
    return counts;
  }

  schedule(delay = BATCH_MS) {
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), delay);
  }

  /** Paint what changed; move tiles too if `now`, or if the last move is old enough. */
  flush(now = false) {
    clearTimeout(this.timer);
    this.timer = null;
    const dense = this.entries.size > DENSE_FROM;
    if (this.container.classList.contains('board-dense') !== dense) this.container.classList.toggle('board-dense', dense);
    for (const code of this.dirty) this.paint(code);
    this.dirty.clear();
    if (this.needsLayout) {
      const wait = this.lastLayout + REFLOW_MS - Date.now();
      if (now || wait <= 0) {
        this.needsLayout = false;
        this.lastLayout = Date.now();
        this.layout();
      } else {
        this.schedule(wait);
      }
    }
    this.onCounts(this.counts());
  }

  // -- one tile -----------------------------------------------------------------------

  tile(code) {
    let tile = this.tiles.get(code);
    if (tile) return tile;
    const name = el('span', { class: 'htile-name' });
    const state = el('span', { class: 'htile-state' });
    const reason = el('span', { class: 'htile-reason' });
    const node = el('button', {
      type: 'button', class: 'htile', data: { code }, on: { click: () => this.onOpen(code) },
    }, name, state, reason);
    tile = { node, name, state, reason, stateText: '', shown: {} };
    this.tiles.set(code, tile);
    return tile;
  }

  paint(code) {
    const entry = this.entries.get(code);
    if (!entry) return;
    const tile = this.tile(code);
    const label = this.name(code).name;
    const state = STATES.includes(entry.state) ? entry.state : 'unknown';
    const reasons = entry.reasons.map(reasonText);
    const reason = reasons.length ? reasons[0] + (reasons.length > 1 ? ` (+${reasons.length - 1})` : '') : '';
    // Only what differs is written: an unchanged text still costs a layout.
    set(tile, 'state', state, () => { tile.node.dataset.state = state; });
    set(tile, 'label', label, () => { tile.name.textContent = label; });
    set(tile, 'reason', reason, () => { tile.reason.textContent = reason; });
    const title = [label, stateLabel(entry.state), ...reasons, t('dash_tile_hint')].join('\n');
    set(tile, 'title', title, () => {
      tile.node.title = title;
      tile.node.setAttribute('aria-label', `${label}: ${stateLabel(entry.state)}${reasons.length ? `, ${reasons.join(', ')}` : ''}`);
    });
    this.paintState(code);
  }

  paintState(code) {
    const entry = this.entries.get(code);
    const tile = this.tiles.get(code);
    if (!entry || !tile) return;
    const text = entry.since
      ? `${stateLabel(entry.state)} · ${durationText((Date.now() - Date.parse(entry.since)) / 1000)}`
      : stateLabel(entry.state);
    if (text !== tile.stateText) {
      tile.stateText = text;
      tile.state.textContent = text;
    }
  }

  // -- filter, sort, group --------------------------------------------------------------

  name(code) {
    let known = this.names.get(code);
    if (!known) {
      const name = shortName(code);
      known = { name, folded: folded(`${name} ${code}`) };
      this.names.set(code, known);
    }
    return known;
  }

  visible() {
    const { filter, query } = this.view;
    const wanted = folded(query.trim());
    const result = [];
    for (const entry of this.entries.values()) {
      if (filter !== 'all' && entry.state !== filter) continue;
      if (wanted && !this.name(entry.code).folded.includes(wanted)) continue;
      result.push(entry);
    }
    const { collator } = this;
    const byName = (a, b) => collator.compare(this.name(a.code).name, this.name(b.code).name);
    const bySeverity = (a, b) => (SEVERITY[a.state] ?? 3) - (SEVERITY[b.state] ?? 3);
    const byRecent = (a, b) => (Date.parse(b.since || 0) || 0) - (Date.parse(a.since || 0) || 0);
    const sorts = {
      severity: (a, b) => bySeverity(a, b) || byName(a, b),
      name: byName,
      recent: (a, b) => byRecent(a, b) || byName(a, b),
    };
    return result.sort(sorts[this.view.sort] || sorts.severity);
  }

  groupKey(entry) {
    if (this.view.group === 'state') return STATES.includes(entry.state) ? entry.state : 'unknown';
    if (this.view.group === 'kind') return KINDS.includes(entry.kind) ? entry.kind : 'other';
    return 'all';
  }

  groupKeys() {
    if (this.view.group === 'state') return [...STATES, 'unknown'];
    if (this.view.group === 'kind') return [...KINDS, 'other'];
    return ['all'];
  }

  groupTitle(key, count) {
    const names = {
      all: t('dash_all'), unknown: t('health_unknown'), other: t('dash_kind_other'),
      provincial: t('dash_kind_provincial'), district: t('dash_kind_district'), commune: t('dash_kind_commune'),
    };
    return `${STATES.includes(key) ? stateLabel(key) : names[key] || key} (${count})`;
  }

  group(key) {
    let group = this.groups.get(key);
    if (group) return group;
    const title = el('span', { class: 'hgroup-title' });
    const toggle = el('button', { type: 'button', class: 'hgroup-toggle', 'aria-expanded': 'true' }, title);
    const grid = el('div', { class: 'hgrid' });
    const section = el('section', { class: 'hgroup', data: { group: key } }, el('h2', { class: 'hgroup-head' }, toggle), grid);
    group = { section, title, grid, toggle, collapsed: false, count: 0 };
    toggle.addEventListener('click', () => {
      group.collapsed = !group.collapsed;
      grid.hidden = group.collapsed;
      toggle.setAttribute('aria-expanded', String(!group.collapsed));
      section.classList.toggle('is-collapsed', group.collapsed);
    });
    this.groups.set(key, group);
    return group;
  }

  layout() {
    const entries = this.visible();
    const buckets = new Map(this.groupKeys().map((key) => [key, []]));
    for (const entry of entries) buckets.get(this.groupKey(entry)).push(entry.code);
    const sections = [];
    const order = [];
    for (const [key, codes] of buckets) {
      const group = this.group(key);
      group.count = codes.length;
      group.section.dataset.state = key;
      const title = this.groupTitle(key, codes.length);
      if (group.title.textContent !== title) group.title.textContent = title;
      if (!codes.length) continue;
      reorder(group.grid, codes.map((code) => this.tile(code).node));
      sections.push(group.section);
      order.push(...codes);
    }
    const placed = [...this.container.children];
    const wanted = [...sections, this.empty];
    if (placed.length !== wanted.length || placed.some((node, i) => node !== wanted[i])) {
      fill(this.container, ...wanted);
    }
    this.empty.hidden = entries.length > 0;
    this.order = order;
  }
}
