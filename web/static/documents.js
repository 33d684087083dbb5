// The document search page (/documents): one box that finds the documents of the
// conferences the person may see, by title and by text, with or without diacritics
// (the API folds both sides). Without words it lists the newest documents. Every
// result names its conference and downloads with one click. The server decides who
// sees what; text from it is inserted as text only.

import {
  api, ApiFailure, el, fill, formatSize, formatStamp, runPage, signIn,
} from './common.js';
import { docIcon, downloadLink, kindBadge, kindOf } from './documents_panel.js';
import { onLangChange, t } from './i18n.js';
import './texts/documents.js';

const app = document.getElementById('app');
const TYPING_PAUSE_MS = 350;

const state = { query: '', results: null, error: null, asked: 0 };
const ui = {};

async function main() {
  await signIn(app, 'doc_brand', 'doc_login_intro');
  build();
  onLangChange(render);
  state.query = new URLSearchParams(location.search).get('q') || '';
  ui.input.value = state.query;
  await search();
}

function build() {
  ui.heading = el('h1', { id: 'doc-heading' });
  ui.intro = el('p', { class: 'muted' });
  ui.label = el('label', { for: 'doc-search' });
  ui.input = el('input', { id: 'doc-search', name: 'q', type: 'search', autocomplete: 'off', maxlength: '200', spellcheck: 'false' });
  ui.button = el('button', { type: 'submit', class: 'button button-primary' });
  ui.form = el('form', { class: 'doc-search-form', role: 'search' },
    el('div', { class: 'field' }, ui.label, ui.input), ui.button);
  ui.summary = el('p', { id: 'doc-summary', class: 'doc-summary', role: 'status', 'aria-live': 'polite' });
  ui.results = el('ul', { id: 'doc-results', class: 'doc-results' });
  fill(app, el('div', { class: 'doc-page' },
    el('section', { class: 'card doc-search-card', 'aria-labelledby': 'doc-heading' }, ui.heading, ui.intro, ui.form),
    ui.summary, ui.results));

  let timer = null;
  ui.input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => setQuery(ui.input.value), TYPING_PAUSE_MS);
  });
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(timer);
    setQuery(ui.input.value);
  });
  render();
  ui.input.focus();
}

function setQuery(text) {
  const query = text.trim();
  if (query === state.query && state.results !== null) return;
  state.query = query;
  const url = new URL(location.href);
  if (query) url.searchParams.set('q', query);
  else url.searchParams.delete('q');
  history.replaceState(null, '', url);
  search();
}

async function search() {
  const asked = ++state.asked;
  const query = state.query;
  const params = new URLSearchParams({ limit: '50' });
  if (query) params.set('q', query);
  try {
    const answer = await api('GET', `/api/v1/documents?${params}`);
    if (asked !== state.asked) return; // a newer search is under way
    state.results = answer.documents;
    state.error = null;
  } catch (error) {
    if (asked !== state.asked) return;
    if (error instanceof ApiFailure && error.status === 401) {
      location.reload();
      return;
    }
    state.error = error.message;
  }
  state.shownQuery = query;
  render();
}

function render() {
  ui.heading.textContent = t('doc_heading');
  ui.intro.textContent = t('doc_intro');
  ui.label.textContent = t('doc_search_label');
  ui.input.placeholder = t('doc_search_placeholder');
  ui.button.replaceChildren(el('span', { text: t('doc_search_button') }));
  const results = state.results;
  const query = state.shownQuery || '';
  ui.summary.dataset.state = state.error ? 'error' : 'ok';
  if (state.error) {
    ui.summary.textContent = t('doc_search_failed', { message: state.error });
    return;
  }
  if (results === null) {
    ui.summary.textContent = t('doc_loading');
    fill(ui.results);
    return;
  }
  if (!results.length) {
    ui.summary.textContent = '';
    fill(ui.results, el('li', { class: 'card doc-empty', text: query ? t('doc_none_found', { query }) : t('doc_none_yet') }));
    return;
  }
  const one = results.length === 1 ? '_one' : '';
  ui.summary.textContent = query ? t(`doc_found${one}`, { count: results.length, query })
    : `${t('doc_newest')} · ${t(`doc_count${one}`, { count: results.length })}`;
  fill(ui.results, results.map(result));
}

function result(document) {
  const conference = document.conference;
  return el('li', { class: 'card doc-result', data: { document: document.id, conference: conference.id } },
    el('span', { class: `doc-icon doc-icon-${kindOf(document)}` }, docIcon('file')),
    el('div', { class: 'doc-result-main' },
      el('div', { class: 'doc-result-title' }, el('strong', { class: 'doc-title', text: document.title }), kindBadge(document)),
      el('div', { class: 'doc-conference' },
        el('span', { class: 'muted', text: `${t('doc_conference')}: ` }),
        el('a', { href: `/conferences/${encodeURIComponent(conference.id)}`, text: conference.title }),
        el('span', { class: 'muted', text: ` · ${formatStamp(conference.start)}` })),
      document.snippet ? el('p', { class: 'doc-snippet', text: document.snippet }) : null,
      el('div', { class: 'doc-meta muted', text: [document.filename, formatSize(document.size),
        t('doc_uploaded', { when: formatStamp(document.uploaded_at), who: document.uploaded_by })].join(' · ') })),
    downloadLink(document));
}

runPage(main);
