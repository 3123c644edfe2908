// Users (admin only): the console's accounts, their role, state, TOTP and
// sessions; add, change the role, disable/enable, reset TOTP, remove, end sessions.

import * as api from '../api.js';
import * as fmt from '../format.js';
import {h, fill, setText} from '../dom.js';
import {getSession} from '../app.js';
import {errorNotice} from './common.js';

const ROLES = ['viewer', 'operator', 'admin'];
const COLS = ['Name', 'Display name', 'Role', 'State', 'TOTP', 'Last login', 'Sessions', ''];

function topRole(roles) {
  for (const r of ['admin', 'operator', 'viewer']) if ((roles || []).includes(r)) return r;
  return (roles && roles[0]) || 'viewer';
}

// 20 characters from a 57-letter alphabet without look-alikes: about 116 bits.
function generatePassword() {
  const alphabet = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const out = [];
  const buf = new Uint8Array(64);
  while (out.length < 20) {
    crypto.getRandomValues(buf);
    for (const b of buf) {
      if (b < 228 && out.length < 20) out.push(alphabet[b % 57]);   // 228 = 4 × 57: no bias
    }
  }
  return out.join('');
}

export function usersScreen(root) {
  const session = getSession() || {};
  const me = session.user || '';
  const isAdmin = (session.roles || []).includes('admin');

  if (!isAdmin) {
    fill(root,
      h('div', {class: 'screen-head'}, h('h1', null, 'Users')),
      h('p', {class: 'notice', role: 'status', id: 'users-forbidden'}, 'User administration is for administrators.'));
    return {destroy() {}};
  }

  const users = new Map();        // name -> user
  const expanded = new Set();     // names whose sessions are shown
  const confirming = new Map();   // name -> 'remove' | 'reset'
  let alive = true;
  let loaded = false;

  const notice = h('div', {id: 'users-notice'});
  const count = h('span', {class: 'sub', id: 'users-count'});
  const tbody = h('tbody');
  const tbl = h('table', {id: 'users-table', class: 'users-table stack-table'},
    h('thead', null, h('tr', null, COLS.map((c) => h('th', {scope: 'col'}, c)))), tbody);

  // ---- the add form ----
  const nameIn = h('input', {id: 'new-user-name', type: 'text', required: true, autocomplete: 'off', autocapitalize: 'none',
    spellcheck: 'false', maxlength: '64', pattern: '[A-Za-z0-9._-]+', placeholder: 'alice'});
  const displayIn = h('input', {id: 'new-user-display', type: 'text', autocomplete: 'off', maxlength: '128', placeholder: 'Alice Martin'});
  const roleIn = h('select', {id: 'new-user-role'}, ROLES.map((r) => h('option', {value: r}, r)));
  const pwIn = h('input', {id: 'new-user-password', type: 'password', required: true, autocomplete: 'new-password', minlength: '12'});
  const genBtn = h('button', {type: 'button', class: 'btn btn-quiet', id: 'new-user-generate'}, 'Generate');
  const addBtn = h('button', {type: 'submit', class: 'btn btn-primary', id: 'add-user-submit'}, 'Add user');
  const addError = h('p', {class: 'error', role: 'alert'});
  const addDone = h('div', {class: 'add-done', role: 'status'});
  let generated = null;
  const addForm = h('form', {id: 'add-user', class: 'add-user-form', novalidate: true},
    h('label', {class: 'field', for: 'new-user-name'}, 'User name', nameIn),
    h('label', {class: 'field', for: 'new-user-display'}, 'Display name', displayIn),
    h('label', {class: 'field', for: 'new-user-role'}, 'Role', roleIn),
    h('label', {class: 'field', for: 'new-user-password'}, 'Initial password',
      h('span', {class: 'pw-row'}, pwIn, genBtn)),
    h('div', {class: 'field add-submit'}, addBtn),
    addError);
  genBtn.addEventListener('click', () => {
    generated = generatePassword();
    pwIn.type = 'text';
    pwIn.value = generated;
    pwIn.select();
  });
  pwIn.addEventListener('input', () => { if (pwIn.value !== generated) generated = null; });
  addForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    addError.textContent = '';
    addDone.replaceChildren();
    const name = nameIn.value.trim();
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
      addError.textContent = 'A user name is letters, digits, dot, dash or underscore.';
      nameIn.focus();
      return;
    }
    if (users.has(name)) { addError.textContent = 'There is a user with that name already.'; nameIn.focus(); return; }
    if (pwIn.value.length < 12) { addError.textContent = 'The password needs at least 12 characters.'; pwIn.focus(); return; }
    addBtn.disabled = true;
    try {
      const u = await api.post('/api/v1/users', {name, displayName: displayIn.value.trim(), role: roleIn.value, password: pwIn.value});
      if (!alive) return;
      users.set(u && u.name ? u.name : name, u && u.name ? u : {name, displayName: displayIn.value.trim(), roles: [roleIn.value], sessions: []});
      addDone.replaceChildren(h('p', {class: 'ok-note'}, `Added ${name}. They set up their authenticator at their first login.`),
        generated ? h('p', null, 'Password to hand over: ', h('code', {class: 'enrol-uri inline-secret'}, generated)) : null);
      nameIn.value = displayIn.value = pwIn.value = '';
      pwIn.type = 'password';
      roleIn.value = 'viewer';
      generated = null;
      render();
    } catch (e) {
      if (!alive) return;
      addError.textContent = e.status === 409 ? 'There is a user with that name already.' : e.message;
    } finally {
      addBtn.disabled = false;
    }
  });

  fill(root,
    h('div', {class: 'screen-head'}, h('h1', null, 'Users'), count),
    notice,
    h('section', {class: 'panel', id: 'users-panel'},
      h('div', {class: 'panel-head'}, h('h2', null, 'Accounts')),
      h('div', {class: 'table-wrap'}, tbl)),
    h('section', {class: 'panel add-user-panel'},
      h('div', {class: 'panel-head'}, h('h2', null, 'Add a user')),
      h('div', {class: 'panel-body'}, addForm, addDone)));

  // ---- rendering ----
  function render() {
    if (!loaded) {
      tbody.replaceChildren(h('tr', {class: 'empty-row'}, h('td', {colspan: COLS.length, class: 'muted'}, 'Loading…')));
      return;
    }
    const list = [...users.values()].sort((a, b) => a.name.localeCompare(b.name));
    setText(count, `${list.length} user${list.length === 1 ? '' : 's'}`);
    const rows = [];
    for (const u of list) {
      rows.push(userRow(u));
      if (expanded.has(u.name)) rows.push(sessionsRow(u));
    }
    if (!rows.length) rows.push(h('tr', {class: 'empty-row'}, h('td', {colspan: COLS.length, class: 'muted'}, 'No users.')));
    tbody.replaceChildren(...rows);
  }

  function userRow(u) {
    const self = u.name === me;
    const td = (i, content, cls) => h('td', {'data-label': COLS[i],
      class: [cls, i === 0 || i === 7 ? 'no-label' : ''].filter(Boolean).join(' ') || null}, content);
    const role = topRole(u.roles);
    const roleSel = h('select', {class: 'user-role', 'aria-label': `Role of ${u.name}`, disabled: self,
      title: self ? 'You cannot change your own role' : null}, ROLES.map((r) => h('option', {value: r, selected: r === role}, r)));
    if (!ROLES.includes(role)) roleSel.append(h('option', {value: role, selected: true}, role));
    const locked = typeof u.lockedUntil === 'number' && u.lockedUntil > Date.now();
    const sessions = u.sessions || [];
    const state = h('span', {class: 'user-state', 'data-user-state': u.disabled ? 'disabled' : 'enabled'}, u.disabled ? 'disabled' : 'enabled');

    let actions;
    const c = confirming.get(u.name);
    if (c) {
      actions = h('span', {class: 'row-actions confirm'},
        h('span', {class: 'confirm-text'}, c === 'remove' ? `Remove ${u.name}?` : `Reset ${u.name}’s TOTP? They enrol again at their next login.`),
        h('button', {type: 'button', class: `btn btn-small btn-danger ${c === 'remove' ? 'confirm-remove' : 'confirm-reset'}`, 'data-act': `confirm-${c}`},
          c === 'remove' ? 'Remove' : 'Reset TOTP'),
        h('button', {type: 'button', class: 'btn btn-small btn-quiet cancel-confirm', 'data-act': 'cancel'}, 'Cancel'));
    } else {
      actions = h('span', {class: 'row-actions'},
        h('button', {type: 'button', class: 'btn btn-small toggle-user', 'data-act': u.disabled ? 'enable' : 'disable', disabled: self && !u.disabled,
          title: self && !u.disabled ? 'You cannot disable yourself' : null}, u.disabled ? 'Enable' : 'Disable'),
        h('button', {type: 'button', class: 'btn btn-small reset-totp', 'data-act': 'reset', disabled: !u.totpEnrolled,
          title: u.totpEnrolled ? 'They enrol a new authenticator at their next login' : 'Not enrolled'}, 'Reset TOTP'),
        h('button', {type: 'button', class: 'btn btn-small btn-quiet remove-user', 'data-act': 'remove', disabled: self,
          title: self ? 'You cannot remove yourself' : null}, 'Remove'));
    }
    return h('tr', {'data-user': u.name, class: u.disabled ? 'is-disabled' : null},
      td(0, h('span', {class: 'user-name'}, u.name, self ? h('span', {class: 'pill you'}, 'you') : null)),
      td(1, u.displayName || h('span', {class: 'muted'}, fmt.NONE)),
      td(2, roleSel),
      td(3, h('span', {class: 'nowrap'}, state, locked ? h('span', {class: 'pill locked', title: fmt.dateTime(u.lockedUntil)},
        `locked until ${fmt.time(u.lockedUntil)}`) : null)),
      td(4, h('span', {class: u.totpEnrolled ? 'totp-yes' : 'totp-no muted'}, u.totpEnrolled ? 'enrolled' : 'not enrolled')),
      td(5, u.lastLoginAt ? h('span', {class: 'nowrap', ...fmt.relTimeAttrs(u.lastLoginAt)}, fmt.ago(u.lastLoginAt)) : h('span', {class: 'muted'}, 'never')),
      td(6, h('button', {type: 'button', class: 'btn btn-small btn-quiet toggle-sessions', 'data-act': 'sessions',
        'aria-expanded': String(expanded.has(u.name)), disabled: sessions.length === 0},
      `${sessions.length} session${sessions.length === 1 ? '' : 's'}`)),
      td(7, actions, 'actions-cell'));
  }

  function sessionsRow(u) {
    const list = (u.sessions || []).slice().sort((a, b) => (b.lastSeenAt || 0) - (a.lastSeenAt || 0));
    return h('tr', {class: 'sessions-row', 'data-sessions-for': u.name},
      h('td', {colspan: COLS.length},
        list.length ? h('ul', {class: 'session-list'}, list.map((s) => h('li', {'data-session-id': s.id},
          h('span', {class: 'session-agent', title: s.userAgent || ''}, s.userAgent || 'unknown browser'),
          h('span', {class: 'muted mono'}, s.address || ''),
          h('span', {class: 'muted'}, 'since ', h('span', {title: fmt.dateTime(s.createdAt)}, fmt.time(s.createdAt))),
          h('span', {class: 'muted'}, 'seen ', h('span', fmt.relTimeAttrs(s.lastSeenAt), fmt.ago(s.lastSeenAt))),
          s.current ? h('span', {class: 'pill'}, 'this browser') : null,
          h('button', {type: 'button', class: 'btn btn-small end-session', 'data-session-id': s.id, disabled: !!s.current,
            title: s.current ? 'Use Log out to end your own session' : null}, 'End session'))))
          : h('p', {class: 'muted'}, 'No sessions.')));
  }

  // ---- actions ----
  function showError(what, e) {
    notice.replaceChildren(h('div', {class: 'notice', role: 'status'}, `Could not ${what}: ${e.message}`));
  }

  async function change(name, body, what) {
    try {
      const u = await api.post(`/api/v1/users/${api.enc(name)}`, body);
      if (!alive) return;
      notice.replaceChildren();
      if (u && u.name) users.set(u.name, u);
      else users.set(name, {...users.get(name), ...body, ...(body.role ? {roles: [body.role]} : {})});
    } catch (e) {
      if (alive) showError(what, e);
    }
    render();
  }

  tbody.addEventListener('change', (ev) => {
    const sel = ev.target.closest('select.user-role');
    if (!sel) return;
    const name = sel.closest('tr[data-user]').getAttribute('data-user');
    sel.disabled = true;
    change(name, {role: sel.value}, `change ${name}’s role`);
  });

  tbody.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button');
    if (!b || b.disabled) return;
    if (b.classList.contains('end-session')) {
      const id = b.getAttribute('data-session-id');
      const name = b.closest('tr[data-sessions-for]').getAttribute('data-sessions-for');
      b.disabled = true;
      try {
        await api.post(`/api/v1/sessions/${api.enc(id)}/end`);
        if (!alive) return;
        const u = users.get(name);
        if (u) users.set(name, {...u, sessions: (u.sessions || []).filter((s) => String(s.id) !== id)});
        notice.replaceChildren();
      } catch (e) {
        if (alive) showError('end the session', e);
      }
      render();
      return;
    }
    const tr = b.closest('tr[data-user]');
    if (!tr) return;
    const name = tr.getAttribute('data-user');
    const act = b.getAttribute('data-act');
    if (act === 'sessions') {
      if (expanded.has(name)) expanded.delete(name); else expanded.add(name);
      render();
      return;
    }
    if (act === 'remove' || act === 'reset') {
      confirming.set(name, act);
      render();
      tbody.querySelector(`tr[data-user="${CSS.escape(name)}"] .btn-danger`)?.focus();
      return;
    }
    if (act === 'cancel') {
      confirming.delete(name);
      render();
      return;
    }
    b.disabled = true;
    if (act === 'enable' || act === 'disable') {
      await change(name, {disabled: act === 'disable'}, `${act} ${name}`);
    } else if (act === 'confirm-reset') {
      try {
        const u = await api.post(`/api/v1/users/${api.enc(name)}/reset-totp`);
        if (!alive) return;
        confirming.delete(name);
        users.set(name, u && u.name ? u : {...users.get(name), totpEnrolled: false});
        notice.replaceChildren();
      } catch (e) {
        if (alive) showError(`reset ${name}’s TOTP`, e);
      }
      render();
    } else if (act === 'confirm-remove') {
      try {
        await api.post(`/api/v1/users/${api.enc(name)}/remove`);
        if (!alive) return;
        confirming.delete(name);
        expanded.delete(name);
        users.delete(name);
        notice.replaceChildren();
      } catch (e) {
        if (alive) showError(`remove ${name}`, e);
      }
      render();
    }
  });

  async function load() {
    try {
      const d = await api.get('/api/v1/users');
      if (!alive) return;
      users.clear();
      for (const u of (d && d.users) || []) if (u && u.name) users.set(u.name, u);
      loaded = true;
      notice.replaceChildren();
      render();
    } catch (e) {
      if (!alive || e.status === 401) return;
      notice.replaceChildren(e.status === 403
        ? h('p', {class: 'notice', role: 'status'}, 'User administration is for administrators.')
        : errorNotice(e, 'the users'));
    }
  }

  render();
  load();
  return {destroy() { alive = false; }};
}
