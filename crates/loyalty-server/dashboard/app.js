// The dashboard's shell: sign-in, the views the credential may use, navigation by the URL's
// hash (a reload stays on the view), sign-out.
import {
  ApiProblem, capabilities, credential, forgetCredential, loadLocale, locale, storeCredential,
} from './api.js';
import * as views from './views.js';

const VIEWS = [
  { id: 'liability', title: 'Liability & breakage', may: (c) => c.audit, render: views.liability },
  { id: 'flows', title: 'Issued, redeemed, expired', may: (c) => c.audit, render: views.flows },
  { id: 'tiers', title: 'Tiers', may: (c) => c.tiers, render: views.tiers },
  { id: 'cohorts', title: 'Retention by cohort', may: (c) => c.analytics, render: views.cohorts },
  { id: 'concentration', title: 'Concentration', may: (c) => c.analytics, render: views.concentration },
  { id: 'at-risk', title: 'At-risk members', may: (c) => c.analytics, render: views.atRisk },
  { id: 'member', title: 'Member', may: (c) => c.readMembers, render: views.member },
  { id: 'log', title: 'Event log', may: (c) => c.audit, render: views.log },
];

const $ = (id) => document.getElementById(id);
let caps = null;
let ticket = 0;

function allowedViews() {
  return caps ? VIEWS.filter((v) => v.may(caps)) : [];
}

function showSignIn(message) {
  caps = null;
  views.destroyCharts();
  $('sign-in').hidden = false;
  $('nav').hidden = true;
  $('view').hidden = true;
  $('view').replaceChildren();
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('locale-note').textContent = '';
  $('sign-in-error').replaceChildren(...(message ? [message] : []));
  $('credential').value = '';
}

function buildNav() {
  const list = $('nav-list');
  list.replaceChildren(...allowedViews().map((v) => {
    const a = views.h('a', { href: `#${v.id}`, testid: `nav-${v.id}` }, v.title);
    return views.h('li', {}, a);
  }));
}

async function signIn(value) {
  $('sign-in-error').textContent = '';
  $('main').setAttribute('aria-busy', 'true');
  try {
    caps = await capabilities(value);
  } catch (err) {
    $('main').removeAttribute('aria-busy');
    forgetCredential();
    showSignIn(err instanceof ApiProblem ? `${err.title}: ${err.detail}` : String(err));
    return;
  }
  storeCredential(value);
  views.resetCache();
  await loadLocale();
  $('main').removeAttribute('aria-busy');
  $('sign-in').hidden = true;
  $('sign-out').hidden = false;
  $('who').textContent = caps.role === 'member'
    ? `Signed in with a member token for ${caps.member}`
    : `Signed in with a key of role ${caps.role}`;
  $('who').dataset.role = caps.role;
  $('locale-note').textContent = locale.note;
  if (!allowedViews().length) {
    $('view').hidden = false;
    $('view').replaceChildren(views.h('p', { class: 'problem', role: 'alert' },
      'This credential may not read any of the dashboard\'s views.'));
    return;
  }
  buildNav();
  $('nav').hidden = false;
  await route();
}

async function route() {
  if (!caps) return;
  // A hand-typed hash may not be valid percent-encoding: read it as it is then.
  let hash = location.hash.slice(1);
  try {
    hash = decodeURIComponent(hash);
  } catch {
    // kept as typed
  }
  const [id, ...rest] = hash.split('/');
  const available = allowedViews();
  const view = available.find((v) => v.id === id) || available[0];
  if (!view) return;
  const arg = rest.join('/');
  for (const a of document.querySelectorAll('#nav-list a')) {
    if (a.getAttribute('href') === `#${view.id}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  views.destroyCharts();
  const mine = ++ticket;
  const container = views.h('div', { class: 'view-body', testid: 'view', 'data-view': view.id });
  $('view').hidden = false;
  $('view').replaceChildren(container);
  $('main').setAttribute('aria-busy', 'true');
  document.title = `${view.title}: loyalty dashboard`;
  try {
    await view.render(container, caps, arg);
  } catch (err) {
    container.append(views.problem(err));
  }
  if (mine !== ticket) return;
  $('main').removeAttribute('aria-busy');
  // Tests and assistive technology alike wait for this: the view is complete.
  container.dataset.ready = 'true';
}

function start() {
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = $('credential').value.trim();
    if (value) signIn(value);
  });
  $('sign-out').addEventListener('click', () => {
    forgetCredential();
    views.resetCache();
    history.replaceState(null, '', location.pathname);
    showSignIn('');
    $('credential').focus();
  });
  window.addEventListener('hashchange', () => {
    route().then(() => {
      const title = document.querySelector('#view .view-title');
      if (title) title.focus({ preventScroll: true });
    });
  });
  const saved = credential();
  if (saved) signIn(saved);
  else showSignIn('');
}

start();
