// Terminal: a shell on one host (a PTY there, over NATS), in term.js from Debian's
// libjs-term.js (its libjs-xterm is a stub that loads nothing). Opening one needs this
// browser's command key and a fresh code; what is typed and shown is recorded with the
// command, and `replay` plays a recording back.

import * as api from '../api.js';
import * as keys from '../keys.js';
import {h, fill, setText} from '../dom.js';
import {getSession} from '../app.js';

let loading = null;

// term.js as a classic script (it sets window.Terminal), once; its row drawing replaced by
// one that builds nodes and sets styles through the CSSOM (the CSP forbids inline styles).
export function loadTermJs() {
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/vendor/term.js/term.js';
      s.onload = () => {
        if (!window.Terminal) { reject(new Error('term.js did not load')); return; }
        window.Terminal.prototype.refresh = drawRows;
        resolve(window.Terminal);
      };
      s.onerror = () => reject(new Error('term.js is not installed (Debian package libjs-term.js)'));
      document.head.append(s);
    });
  }
  return loading;
}

// Rows start..end of the screen: runs of cells with one attribute become one text node or span.
function drawRows(start, end) {
  if (!this.children || !this.lines) return;
  end = Math.min(end, this.lines.length - 1, this.children.length - 1);
  for (let y = start; y <= end; y++) {
    const line = this.lines[y + this.ydisp];
    if (!line) continue;
    const cursor = y === this.y && this.cursorState && (this.ydisp === this.ybase || this.selectMode) && !this.cursorHidden
      ? this.x : -1;
    const row = document.createDocumentFragment();
    let text = '';
    let attr = this.defAttr;
    const flush = () => { if (text) row.append(cell(this, attr, text)); text = ''; };
    for (let x = 0; x < this.cols; x++) {
      const a = x === cursor ? -1 : line[x][0];
      if (a !== attr) { flush(); attr = a; }
      const ch = line[x][1];
      text += ch <= ' ' ? '\u00a0' : ch;
    }
    flush();
    this.children[y].replaceChildren(row);
  }
}

function cell(term, attr, text) {
  if (attr === term.defAttr) return document.createTextNode(text);
  const span = document.createElement('span');
  span.textContent = text;
  if (attr === -1) { span.className = 'terminal-cursor'; return span; }
  const flags = attr >> 18;
  let bg = attr & 0x1ff;
  let fg = (attr >> 9) & 0x1ff;
  if (flags & 8) [bg, fg] = [fg, bg];           // inverse
  if (flags & 1) { span.style.fontWeight = 'bold'; if (fg < 8) fg += 8; }
  if (flags & 2) span.style.textDecoration = 'underline';
  if (flags & 16) span.style.visibility = 'hidden';
  if (bg !== 256 && term.colors[bg]) span.style.backgroundColor = term.colors[bg];
  if (fg !== 257 && term.colors[fg]) span.style.color = term.colors[fg];
  return span;
}

// Columns that fit `box` (13 px monospace is about 7.8 px a character).
function fitColumns(box) {
  return Math.max(40, Math.min(200, Math.floor(((box.clientWidth || 800) - 16) / 7.8)));
}

export async function fetchCast(id) {
  const r = await fetch(`/api/v1/commands/${encodeURIComponent(id)}/cast`, {credentials: 'same-origin'});
  if (!r.ok) throw new Error(r.status === 403 ? 'only admins and the one who typed it may replay it' : `HTTP ${r.status}`);
  return r.text();
}

// Plays an asciicast v2 recording into a terminal in `box` (pauses over a second are cut to one).
export async function replay(box, cast) {
  const Terminal = await loadTermJs();
  const lines = cast.split('\n').filter(Boolean);
  const head = JSON.parse(lines[0]);
  const term = new Terminal({cols: head.width || 80, rows: head.height || 24, useStyle: false, useFocus: false,
    useEvents: false, cursorBlink: false});
  box.replaceChildren();
  term.open(box);
  box.classList.add('replaying');
  let clock = 0;
  let last = 0;
  for (const l of lines.slice(1)) {
    let e;
    try { e = JSON.parse(l); } catch { continue; }
    const [t, kind, data] = e;
    clock += Math.min(1, Math.max(0, t - last));
    last = t;
    if (kind === 'o') setTimeout(() => term.write(data), clock * 1000);
    else if (kind === 'r') {
      const [c, r] = String(data).split('x').map(Number);
      if (c && r) setTimeout(() => term.resize(c, r), clock * 1000);
    }
  }
  await new Promise((resolve) => setTimeout(resolve, clock * 1000 + 50));
  box.classList.remove('replaying');
  box.dataset.replayed = 'true';
  return term;
}

export function terminalScreen(root, params = {}) {
  const session = getSession() || {};
  const user = session.user || '';
  let alive = true;
  let socket = null;
  let term = null;

  const hostInput = h('input', {id: 'terminal-host', type: 'text', value: params.host || '', required: true,
    autocomplete: 'off', spellcheck: 'false'});
  const reason = h('input', {id: 'terminal-reason', type: 'text', required: true, maxlength: '500',
    placeholder: 'why (kept in the audit trail)'});
  const code = h('input', {id: 'terminal-code', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code',
    pattern: '[0-9]{6}', maxlength: '6', placeholder: '123456', class: 'code-input', required: true,
    'aria-label': 'Authenticator code'});
  const error = h('p', {class: 'error', role: 'alert', id: 'terminal-error'});
  const openButton = h('button', {type: 'submit', id: 'terminal-open'}, 'Open terminal');
  const form = h('form', {class: 'terminal-form', id: 'terminal-form'},
    h('label', {class: 'field', for: 'terminal-host'}, 'Host', hostInput),
    h('label', {class: 'field', for: 'terminal-reason'}, 'Reason', reason),
    h('label', {class: 'field', for: 'terminal-code'}, 'Authenticator code', code),
    openButton, error);
  const status = h('p', {class: 'terminal-status', id: 'terminal-status', role: 'status'},
    'A shell where the host’s policy allows one. Everything typed and shown is recorded with the command.');
  const box = h('div', {class: 'terminal-box', id: 'terminal-box'});
  const hangUp = h('button', {type: 'button', id: 'terminal-hangup', hidden: true}, 'Hang up');
  const history = h('a', {id: 'terminal-history', hidden: true}, 'This session in the history');
  hangUp.addEventListener('click', () => socket && socket.readyState === 1 && socket.send(JSON.stringify({end: true})));

  fill(root,
    h('div', {class: 'screen-head'}, h('h1', null, 'Terminal')),
    h('section', {class: 'panel'}, h('div', {class: 'panel-body'}, form, status, h('div', null, hangUp, ' ', history))),
    box);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const host = hostInput.value.trim();
    const c = code.value.replace(/\s+/g, '');
    if (!host || !reason.value.trim()) { error.textContent = 'A host and a reason.'; return; }
    if (!/^[0-9]{6}$/.test(c)) { error.textContent = 'Enter the 6-digit code your app shows.'; code.focus(); return; }
    openButton.disabled = true;
    try {
      await open(host, c);
    } catch (e) {
      if (alive) error.textContent = explain(e);
    } finally {
      openButton.disabled = false;
      code.value = '';
    }
  });

  function explain(e) {
    if (e.code === 'totp_required' || e.code === 'invalid_totp' || e.code === 'invalid_code') {
      return 'That code is wrong or was used already. Wait for the next one.';
    }
    if (keys.isUnknownKey(e)) return 'This browser’s key is not registered: enable commands on the Commands screen first.';
    return e.message || String(e);
  }

  async function open(host, c) {
    const Terminal = await loadTermJs();
    const rec = await keys.ensureKey(user);
    if (!rec) throw new Error('Enable commands in this browser first (Commands screen), then open a terminal.');
    const cols = fitColumns(box);
    const rows = 30;
    const prep = await api.post('/api/v1/commands/prepare', {
      target: {kind: 'hosts', hosts: [host]}, action: {builtin: 'shell', cols, rows},
      reason: reason.value.trim(), keyId: rec.keyId, code: c}, {auth401: false});
    const signature = await keys.sign(rec.privateKey, prep.request);
    const ans = await api.post('/api/v1/commands', {request: prep.request, signature});
    if (ans.state !== 'dispatched' && ans.state !== 'running') {
      throw new Error(`Refused (${ans.state}): ${ans.reason}`);
    }
    if (!alive) return;
    form.hidden = true;
    history.href = `#/commands?id=${encodeURIComponent(ans.commandId)}`;
    history.hidden = false;
    setText(status, `Connecting to ${host}…`);
    term = new Terminal({cols, rows, useStyle: false, screenKeys: false, cursorBlink: true});
    box.replaceChildren();
    term.open(box);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    socket = new WebSocket(`${proto}//${location.host}/api/v1/terminals/${encodeURIComponent(ans.commandId)}`);
    term.on('data', (d) => socket.readyState === 1 && socket.send(JSON.stringify({i: d})));
    socket.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m.type === 'output') term.write(m.text);
      else if (m.type === 'ready') {
        setText(status, `Connected to ${host} (session ${ans.commandId.slice(0, 8)}).`);
        hangUp.hidden = false;
        box.dataset.state = 'ready';
        term.focus();
      } else if (m.type === 'end') {
        const how = m.exitCode != null ? `exit ${m.exitCode}` : (m.state || 'ended');
        setText(status, `Session ended: ${how}${m.reason ? ' — ' + m.reason : ''}.`);
        box.dataset.state = 'ended';
        hangUp.hidden = true;
      }
    };
    socket.onclose = () => {
      if (alive && box.dataset.state !== 'ended') {
        setText(status, 'Disconnected.');
        box.dataset.state = 'ended';
        hangUp.hidden = true;
      }
    };
  }

  return {
    destroy() {
      alive = false;
      if (socket) socket.close();
      if (term && term.destroy) { try { term.destroy(); } catch { /* already gone */ } }
    },
  };
}
