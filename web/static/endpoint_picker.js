// The participants of a booking: every endpoint of the roster as a check box, a box for
// "all" and one for each kind of endpoint (provincial offices, districts, communes), and
// a search that finds a name typed with or without diacritics ("nga son" finds
// "UBND huyện Nga Sơn"). The chair's box stays ticked: the chair always takes part.

import { el } from './common.js';
import { lang, onLangChange, t } from './i18n.js';

// The kinds in the order a province lists them; any other kind follows, by name.
const KIND_ORDER = ['provincial', 'district', 'commune'];

/** Text folded for a search: lower case, no diacritics, "đ" as "d". */
export function fold(text) {
  return String(text || '')
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[đĐ]/g, 'd')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim();
}

function kindLabel(kind, count) {
  const key = KIND_ORDER.includes(kind) ? `cal_picker_kind_${kind}` : 'cal_picker_kind_other';
  return t(key, { kind, count });
}

export class EndpointPicker {
  /**
   * `endpoints`: the active roster ({code, name, name_en, kind}) in roster order;
   * `onChange()` after every change made by the person.
   */
  constructor(endpoints, { idPrefix = 'picker', onChange = () => {} } = {}) {
    this.endpoints = endpoints;
    this.onChange = onChange;
    this.chair = null;
    this.disabled = false;
    this.boxes = new Map(); // code -> checkbox
    this.items = new Map(); // code -> its row
    this.kinds = [...new Set(endpoints.map((e) => e.kind))].sort((a, b) => {
      const ia = KIND_ORDER.indexOf(a) === -1 ? 99 : KIND_ORDER.indexOf(a);
      const ib = KIND_ORDER.indexOf(b) === -1 ? 99 : KIND_ORDER.indexOf(b);
      return ia - ib || a.localeCompare(b);
    });
    this.haystack = new Map(endpoints.map((e) => [e.code, fold(`${e.name} ${e.name_en} ${e.code.replace(/-/g, ' ')}`)]));

    this.search = el('input', {
      id: `${idPrefix}-search`, type: 'search', class: 'picker-search', autocomplete: 'off',
      'aria-controls': `${idPrefix}-list`,
    });
    this.searchLabel = el('label', { for: `${idPrefix}-search`, class: 'picker-search-label' });
    this.search.addEventListener('input', () => this.filter());
    this.search.addEventListener('keydown', (event) => {
      // Enter in the search ticks the only match (or the first): quick for a keyboard.
      if (event.key !== 'Enter') return;
      event.preventDefault();
      const visible = this.endpoints.filter((e) => !this.items.get(e.code).hidden);
      if (visible.length) {
        const box = this.boxes.get(visible[0].code);
        if (!box.disabled) {
          box.checked = !box.checked;
          this.changed();
        }
      }
    });

    this.groupBoxes = new Map(); // 'all' | kind -> [checkbox, label]
    const groupRow = el('div', { class: 'picker-groups', role: 'group' });
    for (const group of ['all', ...this.kinds]) {
      const box = el('input', { type: 'checkbox', id: `${idPrefix}-group-${group}`, data: { group } });
      const label = el('label', { for: `${idPrefix}-group-${group}`, class: 'picker-group-toggle' });
      box.addEventListener('change', () => this.toggleGroup(group, box.checked));
      this.groupBoxes.set(group, [box, label]);
      groupRow.append(el('span', { class: 'picker-group-item' }, box, label));
    }
    this.clearButton = el('button', { type: 'button', class: 'button button-small button-quiet picker-clear' });
    this.clearButton.addEventListener('click', () => {
      for (const [code, box] of this.boxes) if (code !== this.chair) box.checked = false;
      this.changed();
    });

    this.list = el('div', { id: `${idPrefix}-list`, class: 'picker-list' });
    this.groupTitles = new Map();
    for (const kind of this.kinds) {
      const title = el('div', { class: 'picker-list-title', data: { kind } });
      this.groupTitles.set(kind, title);
      const group = el('div', { class: 'picker-list-group', role: 'group', data: { kind } }, title);
      for (const endpoint of endpoints.filter((e) => e.kind === kind)) {
        const id = `${idPrefix}-ep-${endpoint.code}`;
        const box = el('input', { type: 'checkbox', id, value: endpoint.code });
        box.addEventListener('change', () => this.changed());
        const name = el('span', { class: 'picker-name' });
        const mark = el('span', { class: 'picker-chair-mark', hidden: true });
        const row = el('label', { class: 'picker-item', for: id, data: { code: endpoint.code } }, box, name, mark);
        this.boxes.set(endpoint.code, box);
        this.items.set(endpoint.code, row);
        group.append(row);
      }
      this.list.append(group);
    }
    this.noMatch = el('p', { class: 'picker-empty muted', hidden: true });
    this.count = el('p', { class: 'picker-count', 'aria-live': 'polite' });

    this.tools = el('div', { class: 'picker-tools' },
      el('div', { class: 'picker-search-box' }, this.searchLabel, this.search), this.clearButton);
    this.groupRow = groupRow;
    this.readOnly = false;
    this.node = el('div', { class: 'picker' }, this.tools, groupRow, this.list, this.noMatch, this.count);
    this.texts();
    onLangChange(() => this.texts());
  }

  texts() {
    this.searchLabel.textContent = t('cal_picker_search');
    this.search.placeholder = t('cal_picker_search_hint');
    this.clearButton.textContent = t('cal_picker_clear');
    this.noMatch.textContent = t('cal_picker_no_match');
    for (const [group, [, label]] of this.groupBoxes) {
      const count = group === 'all' ? this.endpoints.length : this.endpoints.filter((e) => e.kind === group).length;
      label.textContent = group === 'all' ? t('cal_picker_all', { count }) : kindLabel(group, count);
    }
    for (const [kind, title] of this.groupTitles) {
      title.textContent = KIND_ORDER.includes(kind) ? t(`cal_picker_group_${kind}`) : kind;
    }
    for (const endpoint of this.endpoints) {
      const row = this.items.get(endpoint.code);
      row.querySelector('.picker-name').textContent = (lang() === 'en' && endpoint.name_en) || endpoint.name;
      row.querySelector('.picker-chair-mark').textContent = t('cal_picker_chair_mark');
    }
    this.refresh();
  }

  /** The codes ticked, in roster order. */
  value() {
    return this.endpoints.map((e) => e.code).filter((code) => this.boxes.get(code).checked);
  }

  /** Tick exactly `codes` (unknown codes are ignored; the chair stays ticked). */
  set(codes) {
    const wanted = new Set(codes);
    for (const [code, box] of this.boxes) box.checked = wanted.has(code) || code === this.chair;
    this.refresh();
    if (this.readOnly) this.filter();
  }

  /** The chair: always ticked, its box locked. */
  setChair(code) {
    this.chair = this.boxes.has(code) ? code : null;
    for (const [c, row] of this.items) {
      const isChair = c === this.chair;
      row.querySelector('.picker-chair-mark').hidden = !isChair;
      row.classList.toggle('is-chair', isChair);
      const box = this.boxes.get(c);
      if (isChair) box.checked = true;
      box.disabled = this.disabled || isChair;
    }
    this.refresh();
  }

  /** Read only: the endpoints taking part, without the tools to change them. */
  setReadOnly(readOnly) {
    this.readOnly = readOnly;
    this.tools.hidden = readOnly;
    this.groupRow.hidden = readOnly;
    if (readOnly) this.search.value = '';
    this.setDisabled(readOnly);
    this.filter();
  }

  setDisabled(disabled) {
    this.disabled = disabled;
    this.search.disabled = disabled;
    this.clearButton.disabled = disabled;
    for (const [box] of this.groupBoxes.values()) box.disabled = disabled;
    this.setChair(this.chair);
  }

  toggleGroup(group, checked) {
    for (const endpoint of this.endpoints) {
      if (group !== 'all' && endpoint.kind !== group) continue;
      if (endpoint.code === this.chair) continue;
      this.boxes.get(endpoint.code).checked = checked;
    }
    this.changed();
  }

  filter() {
    const words = fold(this.search.value).split(' ').filter(Boolean);
    let shown = 0;
    for (const endpoint of this.endpoints) {
      const text = this.haystack.get(endpoint.code);
      const match = words.every((word) => text.includes(word))
        && (!this.readOnly || this.boxes.get(endpoint.code).checked);
      this.items.get(endpoint.code).hidden = !match;
      if (match) shown += 1;
    }
    for (const kind of this.kinds) {
      const any = this.endpoints.some((e) => e.kind === kind && !this.items.get(e.code).hidden);
      this.groupTitles.get(kind).parentElement.hidden = !any;
    }
    this.noMatch.hidden = shown > 0;
  }

  changed() {
    this.refresh();
    this.onChange();
  }

  /** The group boxes (ticked, empty or mixed) and the count follow the ticks. */
  refresh() {
    const selected = new Set(this.value());
    for (const [group, [box]] of this.groupBoxes) {
      const members = this.endpoints.filter((e) => group === 'all' || e.kind === group);
      const ticked = members.filter((e) => selected.has(e.code)).length;
      box.checked = ticked === members.length && ticked > 0;
      box.indeterminate = ticked > 0 && ticked < members.length;
    }
    for (const [code, row] of this.items) row.classList.toggle('is-selected', selected.has(code));
    this.count.textContent = t('cal_picker_selected', { count: selected.size, total: this.endpoints.length });
  }

  focus() {
    this.search.focus();
  }
}
