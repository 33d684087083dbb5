// The booking form: book a conference (once, weekly or monthly), edit one, extend a
// running one, cancel one. A modal <dialog> (keyboard: Tab through labelled fields, Esc
// closes). While the booker types, the form asks the API for a dry run
// (`?dry_run=true`, debounced) and shows every clash before saving: the endpoint, the
// other conference and its time, or the bridge's capacity. The API's refusals are shown
// next to the field they concern.

import { ApiFailure, api, el, formatSize, statusChip, toast } from './common.js';
import { lang, onLangChange, t } from './i18n.js';
import { EndpointPicker } from './endpoint_picker.js';
import { askCancel, askScope } from './calendar_dialogs.js';
import { listDocuments, uploadDocument } from './calendar_documents.js';
import { problemsOf, showCheck, whenText } from './calendar_check.js';
import {
  addMonths, compactDate, dayOf, formatClock, formatDate, formatMinutes, isoAt, minuteOf,
  parseDate, parseTime, weekday, weekdayCode, weekdayOrdinal, ymd,
} from './calendar_time.js';

const CHECK_DELAY_MS = 450;
const DEFAULT_SETUP = 15;
const EXTEND_CHOICES = [15, 30, 45, 60, 90, 120];
const KIND_ORDER = ['provincial', 'district', 'commune'];

function sameSet(a, b) {
  return a.length === b.length && a.every((x) => b.includes(x));
}

export class ConferenceForm {
  /**
   * `endpoints`: the active roster; `me`: who is logged in (bookers and admins edit);
   * `onSaved(day, message)`: after a booking, an edit, an extension or a cancellation.
   */
  constructor({ endpoints, me, onSaved }) {
    this.endpoints = endpoints;
    this.me = me;
    this.onSaved = onSaved;
    this.canBook = me.role === 'booker' || me.role === 'admin';
    this.conference = null; // null: a new booking
    this.touched = new Set();
    this.serverErrors = {};
    this.checkSeq = 0;
    this.checkTimer = null;
    this.texts = []; // [node, key, property]
    this.build();
    onLangChange(() => this.applyTexts());
  }

  // -- building ---------------------------------------------------------------------

  text(node, key, property = 'textContent') {
    this.texts.push([node, key, property]);
    node[property] = t(key);
    return node;
  }

  applyTexts() {
    for (const [node, key, property] of this.texts) node[property] = t(key);
    this.repeatLabels();
    if (this.dialog.open) this.renderHeader();
  }

  /** A labelled field with its hint and its error slot (aria-describedby both). */
  field(name, id, labelKey, control, hintKey = null) {
    const label = this.text(el('label', { for: id }), labelKey);
    const hint = hintKey ? this.text(el('p', { class: 'cal-hint', id: `${id}-hint` }), hintKey) : null;
    const error = el('p', { class: 'field-error', id: `${id}-error`, hidden: true });
    control.setAttribute('aria-describedby', [hint && hint.id, error.id].filter(Boolean).join(' '));
    const node = el('div', { class: 'field cal-field', data: { field: name } }, label, control, hint, error);
    this.fields[name] = { node, control, error };
    return node;
  }

  build() {
    this.fields = {};
    const input = (id, attrs = {}) => el('input', { id, name: id, autocomplete: 'off', ...attrs });
    this.title = input('cal-title', { maxlength: 200, required: true });
    this.text(this.title, 'cal_title_hint', 'placeholder');
    this.agenda = el('textarea', { id: 'cal-agenda', name: 'cal-agenda', rows: 3, maxlength: 20000 });
    this.date = input('cal-date', { inputmode: 'numeric', placeholder: 'dd/mm/yyyy', required: true });
    this.start = input('cal-start', { inputmode: 'numeric', placeholder: '08:00', required: true, size: 6 });
    this.end = input('cal-end', { inputmode: 'numeric', placeholder: '10:00', required: true, size: 6 });
    this.setup = input('cal-setup', { type: 'number', min: 0, max: 1440, step: 5 });
    this.repeat = el('select', { id: 'cal-repeat', name: 'cal-repeat' });
    this.repeatOptions = {};
    for (const kind of ['none', 'weekly', 'monthly_day', 'monthly_nth']) {
      this.repeatOptions[kind] = el('option', { value: kind });
      this.repeat.append(this.repeatOptions[kind]);
    }
    this.untilRadio = el('input', { type: 'radio', name: 'cal-repeat-end', id: 'cal-repeat-end-until', value: 'until', checked: true });
    this.countRadio = el('input', { type: 'radio', name: 'cal-repeat-end', id: 'cal-repeat-end-count', value: 'count' });
    this.until = input('cal-repeat-until', { inputmode: 'numeric', placeholder: 'dd/mm/yyyy', size: 11 });
    this.count = input('cal-repeat-count', { type: 'number', min: 2, max: 500, step: 1, value: 10 });
    this.chair = el('select', { id: 'cal-chair', name: 'cal-chair', required: true });
    this.chairPlaceholder = this.text(el('option', { value: '' }), 'cal_chair_pick');
    this.chair.append(this.chairPlaceholder);
    const kinds = [...new Set(this.endpoints.map((e) => e.kind))]
      .sort((a, b) => (KIND_ORDER.indexOf(a) + 99) % 100 - (KIND_ORDER.indexOf(b) + 99) % 100);
    this.chairOptions = [];
    for (const kind of kinds) {
      const group = el('optgroup', {});
      this.texts.push([group, KIND_ORDER.includes(kind) ? `cal_picker_group_${kind}` : kind, 'label']);
      group.label = KIND_ORDER.includes(kind) ? t(`cal_picker_group_${kind}`) : kind;
      for (const endpoint of this.endpoints.filter((e) => e.kind === kind)) {
        const option = el('option', { value: endpoint.code });
        this.chairOptions.push([option, endpoint]);
        group.append(option);
      }
      this.chair.append(group);
    }
    this.picker = new EndpointPicker(this.endpoints, { idPrefix: 'cal-picker', onChange: () => this.edited('participants') });
    // The browser's own file button speaks the browser's language: ours speaks the page's.
    this.files = el('input', { type: 'file', id: 'cal-files', name: 'cal-files', multiple: true,
      class: 'cal-sr-only', accept: '.pdf,.docx,.xlsx,.pptx,.png,.jpg,.jpeg,application/pdf,image/*' });
    this.filesButton = el('label', { for: 'cal-files', class: 'button button-secondary button-small cal-files-button' });
    this.text(this.filesButton, 'cal_documents_pick');
    this.filesChosen = el('span', { class: 'cal-files-chosen muted', id: 'cal-files-chosen' });
    this.files.addEventListener('change', () => this.showChosen());
    this.filesSeries = el('input', { type: 'checkbox', id: 'cal-files-series' });
    this.documentsList = el('ul', { class: 'cal-docs', id: 'cal-docs' });
    this.text(this.documentsList, 'cal_documents_existing', 'ariaLabel');
    this.documentsNote = el('p', { class: 'cal-hint', hidden: true });

    // The time row: date, start, end, setup.
    const timeRow = el('div', { class: 'cal-row cal-time-row' },
      this.field('date', 'cal-date', 'cal_date', this.date),
      this.field('start', 'cal-start', 'cal_start', this.start),
      this.field('end', 'cal-end', 'cal_end', this.end),
      this.field('setup', 'cal-setup', 'cal_setup', this.setup));
    this.timeHint = this.text(el('p', { class: 'cal-hint cal-time-hint' }), 'cal_setup_hint');

    this.repeatEnd = el('fieldset', { class: 'cal-radios cal-repeat-end', hidden: true },
      this.text(el('legend'), 'cal_repeat_end'),
      el('div', { class: 'cal-repeat-choice' },
        this.untilRadio, this.text(el('label', { for: 'cal-repeat-end-until' }), 'cal_repeat_until'),
        el('label', { for: 'cal-repeat-until', class: 'cal-sr-only', text: t('cal_repeat_until_label') }), this.until),
      el('div', { class: 'cal-repeat-choice' },
        this.countRadio, this.text(el('label', { for: 'cal-repeat-end-count' }), 'cal_repeat_count'),
        el('label', { for: 'cal-repeat-count', class: 'cal-sr-only', text: t('cal_repeat_count_label') }), this.count));
    this.seriesNote = el('p', { class: 'notice notice-info cal-series-note', hidden: true });
    const repeatField = this.field('repeat', 'cal-repeat', 'cal_repeat', this.repeat);
    repeatField.append(this.repeatEnd);
    this.repeatField = repeatField;

    const participantsError = el('p', { class: 'field-error', id: 'cal-participants-error', hidden: true });
    const participants = el('fieldset', { class: 'field cal-field cal-participants', data: { field: 'participants' }, 'aria-describedby': 'cal-participants-error' },
      this.text(el('legend', { class: 'cal-fieldset-legend' }), 'cal_participants'), this.picker.node, participantsError);
    this.fields.participants = { node: participants, control: this.picker.search, error: participantsError };

    const documents = el('div', { class: 'field cal-field cal-documents', data: { field: 'documents' } },
      this.text(el('label', { for: 'cal-files' }), 'cal_documents'),
      el('div', { class: 'cal-files-row' }, this.files, this.filesButton, this.filesChosen),
      el('label', { class: 'cal-check', for: 'cal-files-series' }, this.filesSeries,
        this.text(el('span'), 'cal_documents_series')),
      this.text(el('p', { class: 'cal-hint', id: 'cal-files-hint' }), 'cal_documents_hint'),
      this.documentsList, this.documentsNote,
      el('p', { class: 'field-error', id: 'cal-files-error', hidden: true }));
    this.files.setAttribute('aria-describedby', 'cal-files-chosen cal-files-hint cal-files-error');
    this.fields.documents = { node: documents, control: this.files, error: documents.querySelector('#cal-files-error') };

    // A running conference: extend it.
    this.extendMinutes = el('select', { id: 'cal-extend-minutes' });
    for (const minutes of EXTEND_CHOICES) this.extendMinutes.append(el('option', { value: minutes, data: { minutes } }));
    this.extendButton = el('button', { type: 'button', class: 'button button-secondary', id: 'cal-extend-button' });
    this.text(this.extendButton, 'cal_extend');
    this.extendButton.addEventListener('click', () => this.extend());
    this.extendBox = el('div', { class: 'cal-extend', hidden: true },
      this.text(el('label', { for: 'cal-extend-minutes' }), 'cal_extend_by'), this.extendMinutes, this.extendButton);

    this.heading = el('h2', { id: 'cal-form-title', class: 'cal-form-title' });
    this.statusBox = el('span', { class: 'cal-form-status' });
    this.notice = el('p', { class: 'notice cal-form-notice', hidden: true });
    this.reasonNote = el('p', { class: 'notice notice-warn cal-reason-note', hidden: true });
    this.recordLink = el('a', { class: 'cal-record-link', hidden: true });
    this.text(this.recordLink, 'cal_open_record');
    this.check = el('div', { class: 'cal-check-box', id: 'cal-check', role: 'status', 'aria-live': 'polite', data: { state: 'idle' } });
    this.saveButton = el('button', { type: 'submit', class: 'button button-primary', id: 'cal-save' });
    this.closeButton = el('button', { type: 'button', class: 'button button-quiet', id: 'cal-close' });
    this.text(this.closeButton, 'cal_close');
    this.cancelButton = el('button', { type: 'button', class: 'button button-danger-quiet', id: 'cal-cancel-conference' });
    this.text(this.cancelButton, 'cal_cancel_conf');
    const closeIcon = el('button', { type: 'button', class: 'cal-x', id: 'cal-x' });
    this.text(closeIcon, 'cal_close', 'ariaLabel');
    closeIcon.textContent = '×';

    this.form = el('form', { class: 'cal-form', novalidate: true },
      el('header', { class: 'cal-form-head' }, this.heading, this.statusBox, closeIcon),
      el('div', { class: 'cal-form-body' },
        el('div', { class: 'cal-form-main' },
          this.notice, this.reasonNote, this.seriesNote, this.extendBox,
          this.field('title', 'cal-title', 'cal_title', this.title),
          this.field('agenda', 'cal-agenda', 'cal_agenda', this.agenda),
          timeRow, this.timeHint, repeatField,
          this.field('chair', 'cal-chair', 'cal_chair', this.chair),
          documents, this.recordLink),
        el('div', { class: 'cal-form-side' }, participants)),
      el('footer', { class: 'cal-form-foot' }, this.check,
        el('div', { class: 'cal-form-actions' }, this.cancelButton, el('span', { class: 'spacer' }), this.closeButton, this.saveButton)));
    this.general = el('p', { class: 'field-error', id: 'cal-general-error', hidden: true });
    this.form.querySelector('.cal-form-main').prepend(this.general);
    this.fields.general = { node: this.general, control: null, error: this.general };

    this.dialog = el('dialog', { class: 'dialog cal-dialog', id: 'cal-form-dialog', 'aria-labelledby': 'cal-form-title' }, this.form);
    document.body.append(this.dialog);

    // Every edit re-checks (debounced); a field's own error shows once it was left.
    for (const [name, control] of [['title', this.title], ['agenda', this.agenda], ['date', this.date],
      ['start', this.start], ['end', this.end], ['setup', this.setup], ['repeat', this.repeat],
      ['repeat', this.until], ['repeat', this.count], ['chair', this.chair]]) {
      control.addEventListener('input', () => this.edited(name));
      control.addEventListener('change', () => this.edited(name));
      control.addEventListener('blur', () => this.left(name));
    }
    for (const radio of [this.untilRadio, this.countRadio]) radio.addEventListener('change', () => this.edited('repeat'));
    this.date.addEventListener('blur', () => this.normalise());
    this.start.addEventListener('blur', () => this.normalise());
    this.end.addEventListener('blur', () => this.normalise());
    this.until.addEventListener('blur', () => this.normalise());
    this.date.addEventListener('input', () => this.repeatLabels());
    this.chair.addEventListener('change', () => this.picker.setChair(this.chair.value));
    this.repeat.addEventListener('change', () => this.showRepeat());
    closeIcon.addEventListener('click', () => this.close());
    this.closeButton.addEventListener('click', () => this.close());
    this.cancelButton.addEventListener('click', () => this.cancelConference());
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.save();
    });
    this.dialog.addEventListener('close', () => clearTimeout(this.checkTimer));
    this.chairNames();
    this.repeatLabels();
  }

  showChosen() {
    const names = [...this.files.files].map((f) => f.name);
    this.filesChosen.textContent = names.length ? names.join(', ') : t('cal_documents_chosen_none');
  }

  chairNames() {
    for (const [option, endpoint] of this.chairOptions) {
      option.textContent = (lang() === 'en' && endpoint.name_en) || endpoint.name;
    }
    for (const option of this.extendMinutes.options) option.textContent = t('cal_extend_minutes', { minutes: option.value });
  }

  repeatLabels() {
    this.chairNames();
    this.showChosen();
    const day = parseDate(this.date.value);
    const wd = day === null ? '…' : t(`cal_wd_${weekday(day)}`);
    const n = day === null ? 1 : weekdayOrdinal(day);
    this.repeatOptions.none.textContent = t('cal_repeat_none');
    this.repeatOptions.weekly.textContent = t('cal_repeat_weekly', { weekday: wd });
    this.repeatOptions.monthly_day.textContent = t('cal_repeat_monthly_day', { day: day === null ? '…' : ymd(day).d });
    this.repeatOptions.monthly_nth.textContent = n === 5
      ? t('cal_repeat_monthly_last', { weekday: wd })
      : t('cal_repeat_monthly_nth', { weekday: wd, n });
  }

  showRepeat() {
    const repeating = this.repeat.value !== 'none';
    this.repeatEnd.hidden = !repeating;
    if (repeating && !parseDate(this.until.value)) {
      const day = parseDate(this.date.value);
      if (day !== null) this.until.value = formatDate(this.repeat.value === 'weekly' ? addMonths(day, 3) : addMonths(day, 12));
    }
    this.filesSeries.closest('label').hidden = this.mode === 'view'
      || !(repeating || (this.conference && this.conference.series_id));
  }

  // -- opening ----------------------------------------------------------------------------

  /** A new booking, at `day` and `minutes` if given. */
  openNew(day, minutes = 8 * 60) {
    this.conference = null;
    this.reset();
    this.date.value = formatDate(day);
    this.start.value = formatMinutes(minutes);
    this.end.value = formatMinutes(Math.min(minutes + 120, 23 * 60 + 59));
    this.setup.value = String(DEFAULT_SETUP);
    this.mode = this.canBook ? 'new' : 'view';
    this.present();
    this.title.focus();
  }

  /** An existing conference (read afresh). */
  async openExisting(summary) {
    let conference = summary;
    try {
      conference = await api('GET', `/api/v1/conferences/${summary.id}`);
    } catch (error) {
      toast(error.message);
      return;
    }
    this.conference = conference;
    this.reset();
    const startMs = Date.parse(conference.start);
    const endMs = Date.parse(conference.end);
    this.title.value = conference.title;
    this.agenda.value = conference.agenda;
    this.date.value = formatDate(dayOf(startMs));
    this.start.value = formatClock(startMs);
    this.end.value = formatClock(endMs);
    this.setup.value = String(conference.setup_minutes);
    this.chair.value = conference.chair;
    this.picker.setChair(conference.chair);
    this.picker.set(conference.participants);
    const running = conference.status === 'open' || conference.status === 'live';
    const over = conference.status === 'ended' || conference.status === 'cancelled';
    if (!this.canBook || over) this.mode = 'view';
    else this.mode = running ? 'running' : 'edit';
    this.present();
    this.loadDocuments();
    (this.mode === 'view' ? this.closeButton : this.title).focus();
  }

  reset() {
    clearTimeout(this.checkTimer);
    this.checkSeq += 1;
    this.touched.clear();
    this.serverErrors = {};
    for (const control of [this.title, this.agenda, this.date, this.start, this.end, this.setup, this.until]) control.value = '';
    this.count.value = '10';
    this.repeat.value = 'none';
    this.untilRadio.checked = true;
    this.chair.value = '';
    this.picker.search.value = '';
    this.picker.filter();
    this.picker.setChair(null);
    this.picker.set([]);
    this.files.value = '';
    this.showChosen();
    this.filesSeries.checked = false;
    this.documentsList.replaceChildren();
    this.documentsNote.hidden = true;
    this.clearErrors();
    this.setCheck('idle');
  }

  renderHeader() {
    const key = { new: 'cal_form_new', edit: 'cal_form_edit', running: 'cal_form_edit', view: 'cal_form_view' }[this.mode];
    this.heading.textContent = t(key);
    this.statusBox.replaceChildren(this.conference ? statusChip(this.conference.status) : '');
    this.saveButton.textContent = t(this.mode === 'new' ? 'cal_book' : 'cal_save');
  }

  present() {
    const c = this.conference;
    const mode = this.mode;
    this.renderHeader();
    const locked = mode === 'view';
    const running = mode === 'running';
    for (const control of [this.title, this.agenda]) control.disabled = locked;
    this.end.disabled = locked;
    for (const control of [this.date, this.start, this.setup, this.chair]) control.disabled = locked || running;
    this.picker.setReadOnly(locked);
    this.picker.setDisabled(locked || running);
    this.files.disabled = locked;
    this.filesSeries.disabled = locked;
    for (const node of [this.files.parentElement, this.fields.documents.node.querySelector('.cal-check'),
      this.fields.documents.node.querySelector('#cal-files-hint')]) node.hidden = locked;
    this.repeatField.hidden = mode !== 'new';
    this.showRepeat();
    this.seriesNote.hidden = !(c && c.series_id);
    if (c && c.series_id) this.seriesNote.textContent = t('cal_series_note', { rule: this.ruleText(c.rrule) });
    this.notice.hidden = !(running || (c && locked));
    if (running) {
      this.notice.className = 'notice notice-info cal-form-notice';
      this.notice.textContent = t('cal_running_note');
    } else if (c && (c.status === 'ended' || c.status === 'cancelled')) {
      this.notice.className = 'notice notice-warn cal-form-notice';
      this.notice.textContent = t(c.status === 'ended' ? 'cal_over_ended' : 'cal_over_cancelled');
    } else if (c && locked) {
      this.notice.className = 'notice notice-info cal-form-notice';
      this.notice.textContent = t('cal_read_only');
    }
    this.reasonNote.hidden = !(c && c.status === 'cancelled');
    if (c && c.status === 'cancelled') {
      this.reasonNote.textContent = c.cancel_reason ? t('cal_cancel_reason_shown', { reason: c.cancel_reason }) : t('cal_cancel_no_reason');
    }
    this.extendBox.hidden = !running;
    this.recordLink.hidden = !c;
    if (c) this.recordLink.href = `/conferences/${c.id}`;
    this.saveButton.hidden = locked;
    this.cancelButton.hidden = !(c && this.canBook && ['scheduled', 'open', 'live'].includes(c.status));
    this.check.hidden = locked;
    this.setCheck(c ? 'unchanged' : 'idle');
    if (!this.dialog.open) this.dialog.showModal();
    this.scheduleCheck();
  }

  ruleText(rrule) {
    if (!rrule) return '';
    const parts = Object.fromEntries(rrule.split(';').map((p) => p.split('=')));
    const words = [t(parts.FREQ === 'WEEKLY' ? 'cal_rule_weekly' : parts.FREQ === 'MONTHLY' ? 'cal_rule_monthly' : 'cal_rule_other')];
    if (parts.COUNT) words.push(t('cal_rule_count', { count: parts.COUNT }));
    if (parts.UNTIL) {
      const m = /^(\d{4})(\d{2})(\d{2})/.exec(parts.UNTIL);
      if (m) words.push(t('cal_rule_until', { date: `${m[3]}/${m[2]}/${m[1]}` }));
    }
    return words.join(', ');
  }

  async loadDocuments() {
    const c = this.conference;
    let documents;
    try {
      documents = await listDocuments(c.id);
    } catch {
      this.documentsNote.textContent = t('cal_documents_unavailable');
      this.documentsNote.hidden = false;
      return;
    }
    if (this.conference !== c || documents === null) return;
    if (!documents.length) {
      this.documentsNote.textContent = t('cal_documents_none');
      this.documentsNote.hidden = false;
      return;
    }
    this.documentsList.replaceChildren(...documents.map((d) => el('li', {},
      el('a', { href: `/api/v1/documents/${d.id}/content`, text: d.title || d.filename }),
      el('span', { class: 'muted', text: ` · ${formatSize(d.size)}` }))));
  }

  close() {
    clearTimeout(this.checkTimer);
    this.checkSeq += 1;
    if (this.dialog.open) this.dialog.close();
  }

  // -- reading the form ---------------------------------------------------------------------

  normalise() {
    const day = parseDate(this.date.value);
    if (day !== null) this.date.value = formatDate(day);
    for (const input of [this.start, this.end]) {
      const minutes = parseTime(input.value);
      if (minutes !== null) input.value = formatMinutes(minutes);
    }
    const until = parseDate(this.until.value);
    if (until !== null) this.until.value = formatDate(until);
    this.repeatLabels();
  }

  rrule(day) {
    const kind = this.repeat.value;
    if (kind === 'none' || this.mode !== 'new') return { rule: null };
    let rule;
    if (kind === 'weekly') rule = `FREQ=WEEKLY;BYDAY=${weekdayCode(day)}`;
    else if (kind === 'monthly_day') rule = `FREQ=MONTHLY;BYMONTHDAY=${ymd(day).d}`;
    else {
      const n = weekdayOrdinal(day);
      rule = `FREQ=MONTHLY;BYDAY=${n === 5 ? -1 : n}${weekdayCode(day)}`;
    }
    if (this.countRadio.checked) {
      const count = Number(this.count.value);
      if (!Number.isInteger(count) || count < 2 || count > 500) return { error: t('cal_err_count') };
      return { rule: `${rule};COUNT=${count}` };
    }
    const until = parseDate(this.until.value);
    if (until === null) return { error: t('cal_err_date') };
    if (until <= day) return { error: t('cal_err_until') };
    return { rule: `${rule};UNTIL=${compactDate(until)}` };
  }

  /** {errors: {field: text}, body}: the request the form stands for (for an edit, only
   * what changed). */
  collect() {
    const errors = {};
    const title = this.title.value.trim();
    if (!title) errors.title = t('cal_err_title');
    const day = parseDate(this.date.value);
    if (day === null) errors.date = t('cal_err_date');
    const startMinutes = parseTime(this.start.value);
    if (startMinutes === null) errors.start = t('cal_err_time');
    const endMinutes = parseTime(this.end.value);
    if (endMinutes === null) errors.end = t('cal_err_time');
    else if (startMinutes !== null && endMinutes <= startMinutes) errors.end = t('cal_err_end_after');
    const setupText = this.setup.value.trim();
    const setup = Number(setupText);
    if (setupText === '' || !Number.isInteger(setup) || setup < 0 || setup > 1440) errors.setup = t('cal_err_setup');
    const chair = this.chair.value;
    if (!chair) errors.chair = t('cal_err_chair');
    const participants = this.picker.value();
    if (participants.length < 2) errors.participants = t('cal_err_participants');
    let rule = null;
    if (day !== null) {
      const repeat = this.rrule(day);
      if (repeat.error) errors.repeat = repeat.error;
      rule = repeat.rule;
    }
    if (Object.keys(errors).length) return { errors, body: null };
    const start = isoAt(day, startMinutes);
    const end = isoAt(day, endMinutes);
    const agenda = this.agenda.value;
    const c = this.conference;
    if (!c) {
      const body = { title, agenda, chair, participants, start, end, setup_minutes: setup };
      if (rule) body.rrule = rule;
      return { errors, body };
    }
    const body = {};
    if (title !== c.title) body.title = title;
    if (agenda !== c.agenda) body.agenda = agenda;
    if (this.mode === 'running') {
      // The end keeps its own day (a conference may run past midnight).
      const endDay = dayOf(Date.parse(c.end));
      if (endMinutes !== minuteOf(Date.parse(c.end))) body.end = isoAt(endDay, endMinutes);
      return { errors, body };
    }
    if (Date.parse(start) !== Date.parse(c.start)) body.start = start;
    if (Date.parse(end) !== Date.parse(c.end)) body.end = end;
    if (setup !== c.setup_minutes) body.setup_minutes = setup;
    if (chair !== c.chair) body.chair = chair;
    if (!sameSet(participants, c.participants)) body.participants = participants;
    return { errors, body };
  }

  // -- errors and the clash check ----------------------------------------------------------

  edited(name) {
    delete this.serverErrors[name];
    delete this.serverErrors.general;
    this.showErrors();
    this.scheduleCheck();
  }

  left(name) {
    this.touched.add(name);
    this.showErrors();
  }

  clearErrors() {
    for (const { control, error } of Object.values(this.fields)) {
      error.hidden = true;
      error.textContent = '';
      if (control) control.removeAttribute('aria-invalid');
    }
  }

  /** The form's own findings for the fields already left, then the API's. */
  showErrors(all = false) {
    this.clearErrors();
    if (this.mode === 'view') return;
    const { errors } = this.collect();
    const shown = {};
    for (const [name, text] of Object.entries(errors)) if (all || this.touched.has(name)) shown[name] = text;
    for (const [name, text] of Object.entries(this.serverErrors)) if (!shown[name]) shown[name] = text;
    for (const [name, text] of Object.entries(shown)) {
      const field = this.fields[name] || this.fields.general;
      field.error.textContent = text;
      field.error.hidden = false;
      if (field.control) field.control.setAttribute('aria-invalid', 'true');
    }
    return shown;
  }

  scheduleCheck() {
    clearTimeout(this.checkTimer);
    if (this.mode === 'view') return;
    this.checkTimer = setTimeout(() => this.runCheck(), CHECK_DELAY_MS);
  }

  request(body, { dryRun = false, scope = 'this' } = {}) {
    const query = new URLSearchParams();
    if (dryRun) query.set('dry_run', 'true');
    if (this.conference) {
      if (this.conference.series_id) query.set('scope', scope);
      const q = query.toString();
      return api('PATCH', `/api/v1/conferences/${this.conference.id}${q ? `?${q}` : ''}`, body);
    }
    const q = query.toString();
    return api('POST', `/api/v1/conferences${q ? `?${q}` : ''}`, body);
  }

  async runCheck() {
    const seq = ++this.checkSeq;
    const { errors, body } = this.collect();
    if (Object.keys(errors).length) {
      this.setCheck('idle');
      return;
    }
    if (this.conference && !Object.keys(body).length) {
      this.setCheck('unchanged');
      return;
    }
    this.setCheck('checking');
    try {
      const answer = await this.request(body, { dryRun: true });
      if (seq !== this.checkSeq) return;
      this.serverErrors = {};
      this.showErrors();
      this.setCheck('ok', answer);
    } catch (error) {
      if (seq !== this.checkSeq) return;
      this.refused(error);
    }
  }

  /** Show a refusal of the API where it belongs: clashes in the check box, rule
   * problems next to their fields. */
  refused(error) {
    if (!(error instanceof ApiFailure)) {
      this.setCheck('error', { message: error.message });
      return;
    }
    if (error.status === 409 && error.details && error.details.conflicts) {
      this.setCheck('conflict', error.details);
      return;
    }
    if (error.status === 409) {
      this.setCheck('error', { message: t('cal_state_error', { message: error.message }) });
      return;
    }
    if (error.status === 422) {
      this.serverErrors = problemsOf(error);
      const shown = this.showErrors();
      this.setCheck('invalid');
      const first = Object.keys(shown)[0];
      return first;
    }
    this.setCheck('error', { message: error.message });
    return null;
  }

  setCheck(state, data = {}) {
    showCheck(this.check, state, data);
  }

  // -- saving, extending, cancelling -----------------------------------------------------------

  async save() {
    if (this.mode === 'view') return;
    clearTimeout(this.checkTimer);
    this.checkSeq += 1;
    const { errors, body } = this.collect();
    if (Object.keys(errors).length) {
      const shown = this.showErrors(true);
      this.setCheck('invalid');
      this.focusField(Object.keys(shown)[0]);
      return;
    }
    const files = [...this.files.files];
    const changed = !this.conference || Object.keys(body).length > 0;
    if (!changed && !files.length) {
      this.close();
      return;
    }
    let scope = 'this';
    if (changed && this.conference && this.conference.series_id && this.mode === 'edit') {
      scope = await askScope();
      if (!scope) return;
    }
    this.busy(true);
    let saved = this.conference;
    let message = '';
    try {
      if (changed) {
        saved = await this.request(body, { scope });
        message = this.conference
          ? t('cal_saved_toast', { title: saved.title })
          : t('cal_booked_toast', { title: saved.title, count: (saved.occurrence_ids || [saved.id]).length });
        // From here on the form edits what was saved: a retry never books twice.
        this.conference = saved;
        if (this.mode === 'new') this.mode = 'edit';
      }
    } catch (error) {
      this.busy(false);
      this.focusField(this.refused(error));
      return;
    }
    if (files.length && !(await this.upload(saved, files))) {
      this.busy(false);
      this.present();
      this.onSaved(dayOf(Date.parse(saved.start)), message);
      return;
    }
    this.busy(false);
    this.close();
    this.onSaved(dayOf(Date.parse(saved.start)), message || t('cal_uploaded', { count: files.length }));
  }

  async upload(conference, files) {
    const field = this.fields.documents;
    const series = this.filesSeries.checked && Boolean(conference.series_id);
    for (const file of files) {
      this.setCheck('uploading', { name: file.name });
      try {
        await uploadDocument(this.me.csrf_token || '', conference.id, file, { series });
      } catch (error) {
        field.error.textContent = t('cal_upload_failed', { name: file.name, message: error.message });
        field.error.hidden = false;
        this.files.setAttribute('aria-invalid', 'true');
        this.setCheck('error', { message: error.message });
        return false;
      }
    }
    this.files.value = '';
    this.showChosen();
    return true;
  }

  focusField(name) {
    const field = name && this.fields[name];
    if (field && field.control && !field.control.disabled) field.control.focus();
  }

  busy(on) {
    this.saveButton.disabled = on;
    this.saveButton.textContent = on ? t('cal_saving') : t(this.mode === 'new' ? 'cal_book' : 'cal_save');
  }

  async extend() {
    const c = this.conference;
    const minutes = Number(this.extendMinutes.value);
    this.extendButton.disabled = true;
    try {
      const extended = await api('POST', `/api/v1/conferences/${c.id}/extend`, { minutes });
      this.conference = { ...c, ...extended };
      this.end.value = formatClock(Date.parse(extended.end));
      this.setCheck('ok', { occurrences: 1 });
      const message = t('cal_extended', { time: formatClock(Date.parse(extended.end)) });
      toast(message);
      this.onSaved(dayOf(Date.parse(extended.start)), '');
    } catch (error) {
      this.refused(error);
    } finally {
      this.extendButton.disabled = false;
    }
  }

  async cancelConference() {
    const c = this.conference;
    const answer = await askCancel({
      title: c.title, when: whenText(Date.parse(c.start), Date.parse(c.end)), series: Boolean(c.series_id),
    });
    if (!answer) return;
    try {
      const query = c.series_id ? `?scope=${answer.scope}` : '';
      const cancelled = await api('DELETE', `/api/v1/conferences/${c.id}${query}`, { reason: answer.reason });
      this.close();
      this.onSaved(dayOf(Date.parse(c.start)), t('cal_cancelled_toast', { count: cancelled.affected.length }));
    } catch (error) {
      this.refused(error);
    }
  }
}
