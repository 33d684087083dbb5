// The "Tài liệu" panel: a conference's documents with their download links, for every
// page that shows a conference (the join page in the room, the conference page, the
// operator home). `documentsPanel(conferenceId)` returns the element; it loads the list
// itself, refreshes it every minute while it is on the page, and re-renders on a
// language change. Names and titles from the server are inserted as text only.

import { ApiFailure, api, el, fill, formatSize } from './common.js';
import { onLangChange, t } from './i18n.js';
import './texts/documents.js';

const REFRESH_MS = 60000;

const KINDS = {
  'application/pdf': 'pdf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'pptx',
  'image/png': 'png',
  'image/jpeg': 'jpeg',
};

const PATHS = {
  file: 'M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8zm0 2.5L17.5 8H14zM8 12h8v2H8zm0 4h8v2H8z',
  download: 'M5 20h14v-2H5zM19 9h-4V3H9v6H5l7 7z',
  close: 'M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z',
};

/** A small inline icon of this module (decorative). */
export function docIcon(name) {
  const svg = el('svg:svg', { class: 'icon', viewBox: '0 0 24 24', 'aria-hidden': 'true', focusable: 'false' });
  svg.append(el('svg:path', { d: PATHS[name] }));
  return svg;
}

/** The kind of a document ("pdf", "docx", ...) from its media type. */
export function kindOf(document) {
  return KINDS[document.media_type] || 'file';
}

/** The link that downloads a document (the service sends it as an attachment). */
export function downloadLink(document, { compact = false } = {}) {
  return el('a', {
    class: compact ? 'button button-small button-secondary doc-download' : 'button button-secondary doc-download',
    href: `/api/v1/documents/${encodeURIComponent(document.id)}/content`,
    download: document.filename,
    'aria-label': t('doc_download_named', { title: document.title }),
    data: { document: document.id },
  }, docIcon('download'), el('span', { text: t('doc_download') }));
}

/** The badge of a document's kind (PDF, Word, ...). */
export function kindBadge(document) {
  const kind = kindOf(document);
  return el('span', { class: `doc-kind doc-kind-${kind}`, text: kind === 'file' ? '?' : t(`doc_kind_${kind}`) });
}

function row(document) {
  const meta = [document.filename, formatSize(document.size)];
  return el('li', { class: 'doc-item', data: { document: document.id } },
    el('span', { class: `doc-icon doc-icon-${kindOf(document)}` }, docIcon('file')),
    el('div', { class: 'doc-text' },
      el('div', { class: 'doc-title', text: document.title }),
      el('div', { class: 'doc-meta muted', text: meta.join(' · ') }),
      document.series_id ? el('div', { class: 'doc-series small', text: t('doc_panel_series') }) : null),
    downloadLink(document, { compact: true }));
}

/**
 * The documents of conference `conferenceId` as a panel element. `panel.refresh()`
 * reloads the list; `options.title === false` leaves out the heading.
 */
export function documentsPanel(conferenceId, options = {}) {
  const heading = el('h2', { class: 'doc-panel-title' });
  const body = el('div', { class: 'doc-panel-body', 'aria-live': 'polite' });
  const panel = el('section', { class: 'doc-panel', data: { conference: conferenceId } },
    options.title === false ? null : heading, body);
  let documents = null;
  let failed = false;

  const render = () => {
    fill(heading, docIcon('file'), el('span', { text: t('doc_panel_title') }),
      documents && documents.length ? el('span', { class: 'doc-count', text: String(documents.length) }) : null);
    if (documents === null) {
      fill(body, el('p', { class: failed ? 'doc-panel-note doc-panel-error' : 'doc-panel-note muted', text: failed ? t('doc_load_failed') : t('doc_loading') }));
    } else if (!documents.length) {
      fill(body, el('p', { class: 'doc-panel-note muted', text: t('doc_panel_empty') }));
    } else {
      fill(body, el('ul', { class: 'doc-list' }, documents.map(row)));
    }
  };

  const load = async () => {
    try {
      const answer = await api('GET', `/api/v1/conferences/${encodeURIComponent(conferenceId)}/documents`);
      documents = answer.documents;
      failed = false;
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 404) documents = [];
      else failed = true;
    }
    render();
  };

  panel.refresh = load;
  render();
  load();
  const timer = setInterval(() => {
    if (!panel.isConnected) {
      if (panel.dataset.detached === 'yes') clearInterval(timer); // gone for good
      panel.dataset.detached = 'yes';
      return;
    }
    panel.dataset.detached = 'no';
    load();
  }, REFRESH_MS);
  onLangChange(() => { if (panel.isConnected) render(); });
  return panel;
}

/**
 * The documents in the room (the join page's conference view): a button for the
 * controls and a drawer over the pictures. `show(conferenceId)` binds them to the
 * conference in the room; the list is reloaded each time the drawer opens.
 */
export function roomDocuments() {
  const label = el('span');
  const button = el('button', { id: 'documents-button', type: 'button', class: 'button button-control', 'aria-expanded': 'false', 'aria-controls': 'documents-drawer' },
    docIcon('file'), label);
  const closeLabel = el('span');
  const close = el('button', { type: 'button', class: 'button button-small button-quiet' }, docIcon('close'), closeLabel);
  const holder = el('div', { class: 'doc-drawer-body' });
  const title = el('h2');
  const drawer = el('aside', { id: 'documents-drawer', class: 'doc-drawer', hidden: true, 'aria-labelledby': 'documents-drawer-title' },
    el('div', { class: 'doc-drawer-head' }, title, close), holder);
  title.id = 'documents-drawer-title';
  let conferenceId = null;
  let panel = null;

  const texts = () => {
    label.textContent = t('doc_room_button');
    closeLabel.textContent = t('doc_room_close');
    title.textContent = t('doc_panel_title');
  };
  const toggle = (open) => {
    drawer.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    button.classList.toggle('is-on', open);
    if (open && panel) panel.refresh();
  };
  button.addEventListener('click', () => toggle(drawer.hidden));
  close.addEventListener('click', () => toggle(false));
  texts();
  onLangChange(texts);

  return {
    button,
    drawer,
    show(id) {
      if (id === conferenceId || id === null || id === undefined) return;
      conferenceId = id;
      panel = documentsPanel(id, { title: false });
      fill(holder, panel);
    },
  };
}
