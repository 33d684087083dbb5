// How the chair console lays out its sites: every site at once when the screen
// holds them (31 sites on 1366x768), else pages of as many as it holds (170
// sites after the 2025 reform), with the chair and the floor holder larger and
// on every page. Pure functions of the sizes and states; chair.js draws.

/** The grid's filters: which sites a page lists besides the chair and floor holder. */
export const FILTERS = ['all', 'asking', 'connected', 'missing', 'muted'];

/** Whether a site (the bridge's `site`, its console `status`) passes `filter`. */
export function passes(filter, site, status) {
  switch (filter) {
    case 'asking': return Boolean(site.asking);
    case 'connected': return status === 'connected';
    case 'missing': return status !== 'connected' && status !== 'removed';
    case 'muted': return Boolean(site.muted);
    default: return true;
  }
}

// The sizes the style sheet gives a tile (chair.css): keep them together.
export const GAP = 8; // px between tiles
const MIN_TILE = 90; // px: the narrowest tile that still shows a short name and three buttons
const MAX_COLUMNS = 16;
const ROOMY = 200; // px: from this width a tile's buttons and marks carry their words
const FOOT = 30; // px: a small tile's row of icon buttons under its picture
const ROOMY_FOOT = 64; // px: a roomy tile's buttons with words, on up to two lines

/**
 * The grid for a `width` x `height` area: `featured` large tiles (the chair, the
 * floor holder) and `others` small ones. Takes the fewest columns (the largest
 * pictures) that show every site at once; when no column count does, the most
 * columns and pages. Returns {cols, span (of a featured tile, in cells), perPage
 * (small tiles on a page), roomy (small tiles wide enough for words), fits}.
 */
export function gridLayout(width, height, featured, others) {
  let best = null;
  for (let cols = 1; cols <= MAX_COLUMNS; cols += 1) {
    const tile = (width - (cols - 1) * GAP) / cols;
    if (cols > 1 && tile < MIN_TILE) break;
    const roomy = tile >= ROOMY;
    const tall = (tile * 9) / 16 + (roomy ? ROOMY_FOOT : FOOT);
    const rows = Math.floor((height + GAP) / (tall + GAP));
    if (rows < 1) continue; // a tile this wide is taller than the area: more columns
    // A featured tile spans 2 x 2 cells from 4 columns on (never more rows than there are).
    const span = cols >= 4 ? Math.min(2, rows) : 1;
    const room = cols * rows - featured * span * span;
    best = { cols, span, perPage: Math.max(1, room), roomy, fits: room >= others };
    if (best.fits) return best;
  }
  // Not even one row fits (a tiny area): one column, scrolled.
  return best || { cols: 1, span: 1, perPage: 1, roomy: width >= ROOMY, fits: false };
}

/** How many pages `count` small tiles take, `perPage` a page (at least one). */
export function pageCount(count, perPage) {
  return Math.max(1, Math.ceil(count / perPage));
}

/**
 * A name short enough for a small tile (the full name is its tooltip):
 * "UBND huyện Nga Sơn" → "Nga Sơn", "UBND Thành phố Thanh Hóa" → "TP Thanh Hóa",
 * "Văn phòng Tỉnh ủy" → "VP Tỉnh ủy"; "Nga Son District People's Committee" →
 * "Nga Son District".
 */
export function shortName(name) {
  return String(name || '')
    .replace(/^UBND\s+/i, '')
    .replace(/^huyện\s+/i, '')
    .replace(/^thành phố\s+/i, 'TP ')
    .replace(/^thị xã\s+/i, 'TX ')
    .replace(/^phường\s+/i, 'P. ')
    .replace(/^văn phòng\s+/i, 'VP ')
    .replace(/ (District|City|Town|Commune|Ward) People['’]s Committee$/i, ' $1');
}
