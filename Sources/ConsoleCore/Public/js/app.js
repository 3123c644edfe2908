// The console's shell: session check, hash router, top navigation, live stream.

import * as api from './api.js';
import * as live from './live.js';
import {refreshRelTimes} from './format.js';
import {setText} from './dom.js';
import {loginScreen} from './screens/login.js';
import {overviewScreen} from './screens/overview.js';
import {hostsScreen} from './screens/hosts.js';
import {hostScreen} from './screens/host.js';

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
const whoami = document.getElementById('whoami');
const liveStatus = document.getElementById('live-status');

let session = null;          // {user, displayName, roles, csrf, expiresAt}
let current = null;          // {destroy()} of the mounted screen
let returnTo = null;         // where to go after logging in
let failures = 0;

export function getSession() { return session; }

// Screens loaded the first time they are opened (the first page stays small):
// route name → [module, export, title, fixed height].
const LAZY = {
  commands: ['./screens/commands.js', 'commandsScreen', 'Commands', false],
  alerts: ['./screens/alerts.js', 'alertsScreen', 'Alerts', false],
  network: ['./screens/network.js', 'networkScreen', 'Network', true],
  users: ['./screens/users.js', 'usersScreen', 'Users', false],
  terminal: ['./screens/terminal.js', 'terminalScreen', 'Terminal', false],
};
let renderCount = 0;    // a lazy screen that arrives after the route changed is not mounted

function parseRoute() {
  const raw = location.hash.replace(/^#/, '');
  const q = raw.indexOf('?');
  const path = (raw.startsWith('/') ? '' : '/') + (q >= 0 ? raw.slice(0, q) : raw);
  const params = Object.fromEntries(new URLSearchParams(q >= 0 ? raw.slice(q + 1) : ''));
  if (path === '/' || path === '/overview') return {name: 'overview'};
  if (path === '/login') return {name: 'login'};
  if (path === '/hosts') return {name: 'hosts', params};
  if (LAZY[path.slice(1)]) return {name: path.slice(1), params};
  if (path.startsWith('/host/')) {
    let host;
    try { host = decodeURIComponent(path.slice(6)); } catch { host = path.slice(6); }
    if (host) return {name: 'host', host, params};
  }
  return {name: 'overview'};
}

function setSession(s) {
  session = s;
  api.setCsrf(s ? s.csrf : null);
  if (s) {
    const roles = Array.isArray(s.roles) && s.roles.length ? ` (${s.roles.join(', ')})` : '';
    setText(whoami, `${s.user}${roles}`);
    whoami.title = s.displayName ? `${s.displayName} — ${s.user}${roles}` : `${s.user}${roles}`;
    topbar.hidden = false;
    document.getElementById('nav-users').hidden = !(Array.isArray(s.roles) && s.roles.includes('admin'));
    live.start();
  } else {
    setText(whoami, '');
    topbar.hidden = true;
    live.stop();
  }
}

function unmount() {
  if (current) {
    try { current.destroy(); } catch (e) { console.error(e); }
    current = null;
  }
  live.watch(null);
  document.body.classList.remove('fixed-height');
  main.replaceChildren();
}

function markNav(route) {
  const active = route.name === 'host' ? 'hosts' : route.name;
  for (const id of ['overview', 'hosts', ...Object.keys(LAZY)]) {
    const a = document.getElementById('nav-' + id);
    if (!a) continue;
    if (id === active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function render() {
  const route = parseRoute();
  if (!session) {
    if (route.name !== 'login') {
      returnTo = location.hash && location.hash !== '#/login' ? location.hash : null;
      location.replace('#/login');
      return;
    }
    unmount();
    document.title = 'Log in — MIRROR STAGE';
    current = loginScreen(main, {onReady: loggedIn});
    return;
  }
  if (route.name === 'login') {
    location.replace('#/overview');
    return;
  }
  unmount();
  renderCount++;
  markNav(route);
  if (route.name === 'overview') {
    document.title = 'Overview — MIRROR STAGE';
    current = overviewScreen(main);
  } else if (route.name === 'hosts') {
    document.title = 'Hosts — MIRROR STAGE';
    document.body.classList.add('fixed-height');
    current = hostsScreen(main, route.params);
  } else if (route.name === 'host') {
    document.title = `${route.host} — MIRROR STAGE`;
    current = hostScreen(main, route.host, route.params);
  } else if (LAZY[route.name]) {
    const [module, name, title, fixed] = LAZY[route.name];
    document.title = `${title} — MIRROR STAGE`;
    if (fixed) document.body.classList.add('fixed-height');
    const mine = ++renderCount;
    import(module).then((m) => {
      if (mine !== renderCount || current) return;
      current = m[name](main, route.params || {});
    }).catch((e) => {
      console.error(e);
      main.textContent = `Could not load the ${title} screen: ${e.message}`;
    });
  }
}

// After a successful login or enrolment.
async function loggedIn(ready) {
  setSession({user: ready.user, roles: ready.roles || [], csrf: ready.csrf});
  try {
    const s = await api.get('/api/v1/session');
    if (s) setSession(s);
  } catch { /* keep what the login answered */ }
  const target = returnTo || '#/overview';
  returnTo = null;
  if (location.hash === target) render();
  else location.hash = target;
}

function lostSession() {
  if (!session) return;
  setSession(null);
  returnTo = location.hash && location.hash !== '#/login' ? location.hash : null;
  sessionStorage.setItem('mirror-login-note', 'Your session ended. Please log in again.');
  if (location.hash === '#/login') render();
  else location.hash = '#/login';
}

api.setUnauthorizedHandler(lostSession);

const logoutButton = document.getElementById('logout');
logoutButton.addEventListener('click', async () => {
  logoutButton.disabled = true;
  // Stop the screen and the live stream first: nothing should ask after the session ends.
  unmount();
  live.stop();
  try {
    await api.post('/api/v1/session/logout', undefined, {auth401: false});
  } catch { /* the session is gone either way */ }
  logoutButton.disabled = false;
  returnTo = null;
  setSession(null);
  if (location.hash === '#/login') render();
  else location.hash = '#/login';
});

live.on('_state', ({state}) => {
  liveStatus.setAttribute('data-live', state);
  liveStatus.title = `Live updates: ${state}`;
  if (state === 'open') failures = 0;
});
// A socket that keeps failing may mean the session ended: ask.
live.on('_retry', () => {
  failures++;
  if (session && failures >= 2) api.get('/api/v1/session').catch(() => {});
});

window.addEventListener('hashchange', render);
setInterval(() => refreshRelTimes(main), 10000);

async function boot() {
  try {
    const s = await api.get('/api/v1/session', {auth401: false});
    setSession(s);
  } catch (e) {
    setSession(null);
    if (e.status && e.status !== 401) sessionStorage.setItem('mirror-login-note', e.message);
  }
  render();
}

boot();
