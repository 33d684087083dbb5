// The home page (/): the login form when nobody is logged in, then each role
// to its own home (admin and booker: the calendar; operator: its endpoint's
// page; IT: the dashboard). Which pages a role has is site_nav.js.

import {
  el, fill, runPage, signIn,
} from './common.js';
import { t } from './i18n.js';
import { homeFor } from './site_nav.js';

const app = document.getElementById('app');

async function main() {
  const me = await signIn(app, 'home_sub', 'home_login_intro');
  const home = homeFor(me);
  if (!home) {
    fill(app, el('div', { class: 'center-stage' }, el('div', { class: 'card notice-card', role: 'alert' },
      el('p', { text: t('home_no_page') }))));
    return;
  }
  fill(app, el('p', { class: 'center-stage muted', role: 'status', text: t('home_going', { page: t(home.key) }) }));
  // replace(): "back" from the home page returns to where the user was, not to `/`.
  location.replace(home.path);
}

runPage(main);
