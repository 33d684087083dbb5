// The calendar's two questions, each a modal <dialog> (focus kept inside, Esc backs
// out): which meetings of a series a change or a cancellation applies to, and the
// confirmation and reason of a cancellation.

import { el } from './common.js';
import { t } from './i18n.js';

function modal(id, labelId, ...children) {
  const dialog = el('dialog', { class: 'dialog cal-question', id, 'aria-labelledby': labelId },
    el('div', { class: 'dialog-body' }, ...children));
  document.body.append(dialog);
  return dialog;
}

function settle(dialog, resolve) {
  let done = false;
  const finish = (value) => {
    if (done) return;
    done = true;
    if (dialog.open) dialog.close();
    dialog.remove();
    resolve(value);
  };
  dialog.addEventListener('cancel', (event) => {
    event.preventDefault();
    finish(null);
  });
  return finish;
}

/** "Only this one / this and following" for an occurrence of a series: resolves with
 * 'this', 'following', or null (back). */
export function askScope() {
  return new Promise((resolve) => {
    const only = el('button', { type: 'button', class: 'button button-primary', id: 'cal-scope-this', text: t('cal_scope_this') });
    const following = el('button', { type: 'button', class: 'button button-secondary', id: 'cal-scope-following', text: t('cal_scope_following') });
    const back = el('button', { type: 'button', class: 'button button-quiet', id: 'cal-scope-back', text: t('cal_back') });
    const dialog = modal('cal-scope-dialog', 'cal-scope-title',
      el('h2', { id: 'cal-scope-title', class: 'cal-question-title', text: t('cal_scope_title') }),
      el('p', { text: t('cal_scope_text') }),
      el('div', { class: 'cal-question-choices' }, only, following),
      el('div', { class: 'dialog-actions' }, back));
    const finish = settle(dialog, resolve);
    only.addEventListener('click', () => finish('this'));
    following.addEventListener('click', () => finish('following'));
    back.addEventListener('click', () => finish(null));
    dialog.showModal();
    only.focus();
  });
}

/**
 * Confirm a cancellation and ask its reason (required). `series`: offer "only this one /
 * this and following". Resolves with {reason, scope} or null (back).
 */
export function askCancel({ title, when, series }) {
  return new Promise((resolve) => {
    const reason = el('textarea', {
      id: 'cal-cancel-reason', rows: 3, maxlength: 1000, required: true,
      'aria-describedby': 'cal-cancel-reason-hint cal-cancel-reason-error',
    });
    const error = el('p', { class: 'field-error', id: 'cal-cancel-reason-error', hidden: true, text: t('cal_err_reason') });
    const scopeThis = el('input', { type: 'radio', name: 'cal-cancel-scope', id: 'cal-cancel-scope-this', value: 'this', checked: true });
    const scopeFollowing = el('input', { type: 'radio', name: 'cal-cancel-scope', id: 'cal-cancel-scope-following', value: 'following' });
    const scope = series ? el('fieldset', { class: 'cal-radios' },
      el('legend', { text: t('cal_scope_cancel_text') }),
      el('label', { for: 'cal-cancel-scope-this', class: 'cal-radio' }, scopeThis, t('cal_scope_this')),
      el('label', { for: 'cal-cancel-scope-following', class: 'cal-radio' }, scopeFollowing, t('cal_scope_following'))) : null;
    const confirm = el('button', { type: 'submit', class: 'button button-danger', id: 'cal-cancel-confirm', text: t('cal_cancel_confirm') });
    const back = el('button', { type: 'button', class: 'button button-quiet', id: 'cal-cancel-back', text: t('cal_back') });
    const form = el('form', { class: 'cal-question-form', novalidate: true },
      el('h2', { id: 'cal-cancel-title', class: 'cal-question-title', text: t('cal_cancel_title') }),
      el('p', { text: t('cal_cancel_text', { title, when }) }),
      el('div', { class: 'field' },
        el('label', { for: 'cal-cancel-reason', text: t('cal_cancel_reason') }), reason,
        el('p', { class: 'cal-hint', id: 'cal-cancel-reason-hint', text: t('cal_cancel_reason_hint') }), error),
      scope,
      el('div', { class: 'dialog-actions' }, back, confirm));
    const dialog = modal('cal-cancel-dialog', 'cal-cancel-title', form);
    const finish = settle(dialog, resolve);
    back.addEventListener('click', () => finish(null));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = reason.value.trim();
      if (!text) {
        error.hidden = false;
        reason.setAttribute('aria-invalid', 'true');
        reason.focus();
        return;
      }
      finish({ reason: text, scope: scopeFollowing.checked ? 'following' : 'this' });
    });
    dialog.showModal();
    reason.focus();
  });
}
