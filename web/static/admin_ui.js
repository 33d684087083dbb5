// Building blocks of the admin page's three sections: labelled fields that show
// their error next to them, a modal dialog, the "shown once" secret box with its
// copy button, text matching with or without Vietnamese diacritics, and times
// as dd/mm/yyyy HH:MM:SS in Asia/Ho_Chi_Minh.

import { ApiFailure, el, formatStamp as stamp } from './common.js';
import { lang, t } from './i18n.js';

let fieldSerial = 0;

/**
 * A labelled form field: `control` (an input or select) gets an id, its label,
 * an optional hint and an error line tied to it with aria-describedby.
 */
export function field(labelKey, control, { hintKey = null, name = null } = {}) {
  fieldSerial += 1;
  const id = control.id || `adm-field-${fieldSerial}`;
  control.id = id;
  if (name) control.name = name;
  const hint = hintKey ? el('p', { class: 'field-hint', id: `${id}-hint`, text: t(hintKey) }) : null;
  const error = el('p', { class: 'field-error', id: `${id}-error`, role: 'alert', hidden: true });
  control.setAttribute('aria-describedby', [hint && hint.id, error.id].filter(Boolean).join(' '));
  const node = el('div', { class: 'field', data: { field: name || '' } },
    el('label', { for: id, text: t(labelKey) }), control, hint, error);
  return {
    node,
    control,
    /** Show `text` as this field's error (null clears it). */
    setError(text) {
      error.textContent = text || '';
      error.hidden = !text;
      control.toggleAttribute('aria-invalid', Boolean(text));
      node.classList.toggle('has-error', Boolean(text));
    },
  };
}

/** A <select> with `options` [{value, text}] (or optgroups {label, options}). */
export function select(options, value = '') {
  const node = el('select');
  for (const option of options) {
    if (option.options) {
      node.append(el('optgroup', { label: option.label },
        option.options.map((o) => el('option', { value: o.value, text: o.text }))));
    } else node.append(el('option', { value: option.value, text: option.text }));
  }
  node.value = value;
  return node;
}

/**
 * Put an API refusal next to its fields: `details` [{field, problem}] go to
 * `fields[field]` (the text from `messages[field]` when given, else the server's
 * own words); anything else goes to `formError`. Returns true when it was shown.
 */
export function showApiErrors(error, fields, formError, messages = {}) {
  if (!(error instanceof ApiFailure)) {
    formError.textContent = t('adm_server_refused', { message: error.message });
    formError.hidden = false;
    return false;
  }
  let placed = false;
  if (Array.isArray(error.details)) {
    for (const problem of error.details) {
      const target = fields[problem.field];
      if (!target) continue;
      const custom = messages[`${problem.field}:${error.status}`] || messages[problem.field];
      target.setError(custom ? t(custom) : problem.problem);
      placed = true;
    }
  }
  if (!placed) {
    formError.textContent = t('adm_server_refused', { message: error.message });
    formError.hidden = false;
  }
  return true;
}

/** Clear every field's error and the form's own. */
export function clearErrors(fields, formError) {
  for (const f of Object.values(fields)) f.setError(null);
  formError.hidden = true;
  formError.textContent = '';
}

/**
 * A modal dialog (the native <dialog>: Escape closes it, the focus stays
 * inside). `build(close)` returns its content; resolves when it closes.
 */
export function openDialog(titleText, build, { wide = false } = {}) {
  return new Promise((resolve) => {
    const dialog = el('dialog', { class: `dialog admin-dialog${wide ? ' dialog-wide' : ''}`, 'aria-labelledby': 'adm-dialog-title' });
    const close = (value) => {
      dialog.close();
      resolve(value);
    };
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(undefined);
    });
    dialog.append(el('div', { class: 'dialog-body' },
      el('h2', { id: 'adm-dialog-title', class: 'dialog-title', text: titleText }),
      build(close)));
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector('input:not([type=radio]):not([disabled]), select, textarea');
    if (first) first.focus();
  });
}

/** Ask before something that cannot be undone; resolves true when confirmed. */
export function confirmAction(titleText, text, confirmText, { danger = true } = {}) {
  return openDialog(titleText, (close) => el('div', { class: 'dialog-stack' },
    el('p', { text }),
    el('div', { class: 'dialog-actions' },
      el('button', { type: 'button', class: 'button button-quiet', text: t('adm_cancel'), on: { click: () => close(false) } }),
      el('button', {
        type: 'button', id: 'confirm-button', class: `button ${danger ? 'button-danger' : 'button-primary'}`,
        text: confirmText, on: { click: () => close(true) },
      })))).then(Boolean);
}

/**
 * A secret shown once (a new token, a generated password): the value as text in
 * a read-only field, a copy button, and the warning that it will not be shown again.
 */
export function secretBox(labelText, value, { id = 'secret-value', warn = true } = {}) {
  const input = el('input', { id, class: 'secret-value', readonly: true, spellcheck: 'false', autocomplete: 'off' });
  input.value = value;
  input.addEventListener('focus', () => input.select());
  const status = el('span', { class: 'copy-status', role: 'status' });
  const copy = el('button', {
    type: 'button', class: 'button button-secondary copy-button', data: { copy: id },
    on: { click: () => copyText(input, status) },
  }, t('adm_copy'));
  return el('div', { class: 'secret-box' },
    el('label', { for: id, class: 'secret-label', text: labelText }),
    el('div', { class: 'secret-row' }, input, copy),
    status,
    warn ? el('p', { class: 'secret-warning', text: t('adm_show_once') }) : null);
}

async function copyText(input, status) {
  input.focus();
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
    status.textContent = t('adm_copied');
  } catch {
    // No clipboard API (plain http on another host): the text stays selected for Ctrl+C.
    status.textContent = t('adm_copy_failed');
  }
}

/** `text` without case or Vietnamese diacritics, for matching ("nga son" finds "Nga Sơn"). */
export function fold(text) {
  return String(text || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '')
    .replace(/đ/g, 'd').replace(/Đ/g, 'D').toLowerCase();
}

/** "27/11/2026 10:05:31": the log's times, to the second. */
export function formatStamp(iso) {
  return stamp(iso, { seconds: true });
}

/** A table with a caption-less header row (`columns`: text keys) and `rows` (<tr>s). */
export function table(columns, rows, { id = null, className = '' } = {}) {
  return el('div', { class: 'table-wrap' },
    el('table', { id, class: `data-table ${className}`.trim() },
      el('thead', {}, el('tr', {}, columns.map((key) => el('th', { scope: 'col', text: key ? t(key) : '' })))),
      el('tbody', {}, rows)));
}

/** A small notice in a section (an empty list, a failure). */
export function notice(text, kind = 'muted') {
  return el('p', { class: `section-notice notice-${kind}`, text });
}

/** The current language's locale for sorting names. */
export function collator() {
  return new Intl.Collator(lang() === 'en' ? 'en' : 'vi', { sensitivity: 'base' });
}

