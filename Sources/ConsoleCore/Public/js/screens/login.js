// Login: user, password and TOTP code; the first time, the TOTP enrolment.

import * as api from '../api.js';
import {h} from '../dom.js';

function errorText(e) {
  if (e.status === 401 && e.code === 'invalid_totp') return 'That code is wrong or has expired. Enter the current 6-digit code.';
  if (e.status === 401 && e.code === 'invalid_credentials') return 'Wrong user name or password.';
  if (e.status === 401) return e.message && e.code !== null ? e.message : 'Wrong user name, password or code.';
  if (e.status === 423) return 'This account is locked after too many failed logins. Try again later.';
  if (e.status === 429) return 'Too many login attempts from this address. Wait a minute and try again.';
  if (e.status === 403) return 'The console refused the request (origin or CSRF check). Reload the page and try again.';
  if (e.status === 0) return 'The console did not answer. Check the connection and try again.';
  return e.message || `Login failed (HTTP ${e.status}).`;
}

export function loginScreen(root, {onReady}) {
  const note = sessionStorage.getItem('mirror-login-note');
  sessionStorage.removeItem('mirror-login-note');

  const error = h('p', {id: 'login-error', class: 'error', role: 'alert', 'aria-live': 'assertive'});
  if (note) error.textContent = note;

  const user = h('input', {id: 'login-user', name: 'user', type: 'text', autocomplete: 'username',
    autocapitalize: 'none', spellcheck: 'false', required: true});
  const password = h('input', {id: 'login-password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true});
  const code = h('input', {id: 'login-code', name: 'code', type: 'text', inputmode: 'numeric',
    autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6', placeholder: '123456', class: 'code-input',
    'aria-describedby': 'login-code-hint'});
  const submit = h('button', {id: 'login-submit', type: 'submit', class: 'btn btn-primary'}, 'Log in');

  const form = h('form', {class: 'panel login', id: 'login-form', novalidate: true},
    h('h1', null, h('span', {class: 'brand-mark', 'aria-hidden': 'true'}), 'MIRROR STAGE'),
    h('label', {class: 'field', for: 'login-user'}, 'User name', user),
    h('label', {class: 'field', for: 'login-password'}, 'Password', password),
    h('label', {class: 'field', for: 'login-code'}, 'Authenticator code', code,
      h('span', {class: 'hint', id: 'login-code-hint'}, 'Six digits from your app. Leave empty on your first login.')),
    error,
    submit);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    if (!user.value.trim() || !password.value) {
      error.textContent = 'Enter your user name and password.';
      (user.value.trim() ? password : user).focus();
      return;
    }
    const c = code.value.replace(/\s+/g, '');
    if (c && !/^[0-9]{6}$/.test(c)) {
      error.textContent = 'The code has six digits.';
      code.focus();
      return;
    }
    submit.disabled = true;
    try {
      const ans = await api.post('/api/v1/session', {user: user.value.trim(), password: password.value, code: c},
        {auth401: false});
      if (ans && ans.stage === 'enrol') {
        password.value = '';
        showEnrolment(ans);
      } else if (ans && ans.stage === 'ready') {
        onReady(ans);
      } else {
        error.textContent = 'Unexpected answer from the console.';
      }
    } catch (e) {
      error.textContent = errorText(e);
      if (e.code === 'invalid_totp') { code.value = ''; code.focus(); } else if (e.status === 401) password.select();
    } finally {
      submit.disabled = false;
    }
  });

  function showEnrolment(ans) {
    // The enrolment's errors go to the same #login-error element.
    const enrolError = error;
    const enrolCode = h('input', {id: 'enrol-code', name: 'code', type: 'text', inputmode: 'numeric',
      autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6', placeholder: '123456',
      class: 'code-input', required: true});
    const enrolSubmit = h('button', {id: 'enrol-submit', type: 'submit', class: 'btn btn-primary'}, 'Confirm');
    const qr = h('img', {id: 'enrol-qr', class: 'enrol-qr', src: '/api/v1/session/enrolment.svg',
      alt: 'QR code of the authenticator secret', width: '220', height: '220'});
    const uri = h('code', {id: 'enrol-uri', class: 'enrol-uri'}, ans.otpauth || '');
    const enrolForm = h('form', {class: 'panel login', id: 'enrol-form', novalidate: true},
      h('h1', null, h('span', {class: 'brand-mark', 'aria-hidden': 'true'}), 'Set up your authenticator'),
      h('p', {class: 'muted'}, 'Scan this code with an authenticator app (6 digits, 30 s), or paste the URI below into it. Then enter one code to confirm.'),
      qr,
      uri,
      h('label', {class: 'field', for: 'enrol-code'}, 'Code from the app', enrolCode),
      enrolError,
      enrolSubmit);
    error.textContent = '';
    enrolForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      enrolError.textContent = '';
      const c = enrolCode.value.replace(/\s+/g, '');
      if (!/^[0-9]{6}$/.test(c)) {
        enrolError.textContent = 'Enter the 6-digit code your app shows.';
        enrolCode.focus();
        return;
      }
      enrolSubmit.disabled = true;
      try {
        const ready = await api.post('/api/v1/session/enrol', {code: c}, {csrf: ans.csrf, auth401: false});
        onReady({...ready, csrf: (ready && ready.csrf) || ans.csrf});
      } catch (e) {
        enrolError.textContent = e.status === 401 && e.code !== 'invalid_totp' && e.code !== 'invalid_credentials'
          ? 'The enrolment expired. Log in again.' : errorText(e);
        enrolCode.value = '';
        enrolCode.focus();
      } finally {
        enrolSubmit.disabled = false;
      }
    });
    wrap.replaceChildren(enrolForm);
    enrolCode.focus();
  }

  const wrap = h('div', {class: 'login-wrap'}, form);
  root.append(wrap);
  user.focus();
  return {destroy() {}};
}
