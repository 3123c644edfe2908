// Commands: run one (operator/admin, signed in this browser with its own
// Ed25519 key), watch its output per host as it streams, and the history.
// #/commands          the run form (if the role allows) and the history
// #/commands?id=ID    one command: who, why, per-host state and its stored output

import * as api from '../api.js';
import * as live from '../live.js';
import * as fmt from '../format.js';
import * as keys from '../keys.js';
import {h, fill, setText, setAttr, table, fillRows} from '../dom.js';
import {getSession} from '../app.js';
import {cmdState, timeCell, hostLink, errorNotice} from './common.js';

// A terminal's recording: played in a terminal under the button, or saved as a .cast file.
function replayButton(id) {
  const box = h('div', {class: 'replay-box'});
  const play = h('button', {type: 'button', class: 'replay-play'}, 'Replay');
  play.addEventListener('click', async () => {
    play.disabled = true;
    try {
      const m = await import('./terminal.js');
      await m.replay(box, await m.fetchCast(id));
    } catch (e) {
      box.textContent = `Cannot replay: ${e.message}`;
    } finally { play.disabled = false; }
  });
  return h('span', null, play, ' ', h('a', {href: `/api/v1/commands/${encodeURIComponent(id)}/cast`, download: `${id}.cast`}, 'asciicast'), box);
}

const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'rejected', 'denied', 'expired']);
const HISTORY_STATES = ['pending', 'dispatched', 'running', 'succeeded', 'failed', 'timed_out', 'rejected', 'denied', 'expired'];
const MAX_PANE_CHARS = 1 << 20;          // text kept per host in the page
const POLL_MS = 2000;
const LIVE_QUIET_MS = 8000;              // no live message this long: read the stored state
const HIST_HEADERS = ['Time', 'User', 'Action', ['Hosts', 'num'], 'State', 'Reason'];

const TARGETS = [
  ['hosts', 'Hosts'],
  ['group', 'Group'],
  ['selector', 'Label selector'],
  ['all', 'All hosts'],
];
const ACTIONS = [
  ['argv', 'Command'],
  ['shell', 'Shell line'],
  ['restart_service', 'Restart service'],
  ['wake_on_lan', 'Wake-on-LAN'],
  ['collect_now', 'Collect now'],
];

// ---- small helpers -------------------------------------------------------------

// Split a command line into argv: whitespace separates; '…' keeps everything
// literally; "…" keeps spaces (\" \\ \$ \` escape); a backslash outside quotes escapes one character.
export function splitArgs(line) {
  const out = [];
  let cur = '';
  let has = false;
  let q = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q === "'") {
      if (c === "'") q = null; else cur += c;
      continue;
    }
    if (q === '"') {
      if (c === '"') q = null;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) cur += line[++i];
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') { q = c; has = true; continue; }
    if (c === '\\' && i + 1 < line.length) { cur += line[++i]; has = true; continue; }
    if (/\s/.test(c)) {
      if (has) { out.push(cur); cur = ''; has = false; }
      continue;
    }
    cur += c;
    has = true;
  }
  if (q) throw new Error(`The command has an unclosed ${q === "'" ? 'single' : 'double'} quote.`);
  if (has) out.push(cur);
  return out;
}

function fmtMs(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return fmt.NONE;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return fmt.duration(ms / 1000);
}

function actionText(a) {
  if (!a) return '';
  if (a.argv) return 'argv:' + a.argv.join(' ');
  if (a.shell != null) return 'shell:' + a.shell;
  if (a.builtin === 'restart_service') return `builtin:restart_service ${a.service || ''}`.trim();
  if (a.builtin === 'wake_on_lan') return `builtin:wake_on_lan ${a.mac || ''}`.trim();
  return 'builtin:' + (a.builtin || '?');
}

const isWrongCode = (e) => e && (e.code === 'invalid_totp' || e.code === 'invalid_credentials' || e.code === 'invalid_code' ||
  e.code === 'totp_required');

// A request that carries a TOTP code: a 401 there may be a wrong code, not a lost session.
async function postWithCode(path, body) {
  try {
    return await api.post(path, body, {auth401: false});
  } catch (e) {
    if (e.status === 401 && !isWrongCode(e)) api.get('/api/v1/session').catch(() => {});
    throw e;
  }
}

function codeInput(id) {
  return h('input', {id, type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}',
    maxlength: '6', placeholder: '123456', class: 'code-input', required: true, 'aria-label': 'Authenticator code'});
}

function readCode(input) {
  const c = input.value.replace(/\s+/g, '');
  return /^[0-9]{6}$/.test(c) ? c : null;
}

// ---- the run view ------------------------------------------------------------------
// Per-host panes (or one interleaved <pre>), each with its state, exit code and
// duration, and a live summary. Output chunks are deduplicated by host and seq.

function createRun(commandId) {
  const panes = new Map();        // host -> pane
  const all = [];                 // every chunk, in arrival order
  const partial = new Map();      // interleaved: host\0stream -> {host, stream, text, at}
  let interleaved = false;
  let width = 0;                  // host name column in the interleaved view
  let rebuildQueued = false;
  let flushTimer = null;
  let expected = 0;               // hosts the command was sent to
  let commandFinal = null;        // {state, reason} once the command as a whole has ended

  const summary = h('p', {id: 'command-summary', class: 'run-summary', 'aria-live': 'polite'});
  const toggle = h('button', {type: 'button', class: 'btn', id: 'interleave-output', 'aria-pressed': 'false',
    title: 'One stream, every line prefixed with its host'}, 'Interleave');
  const panesBox = h('div', {class: 'run-panes'});
  const interPre = h('pre', {class: 'output interleaved', hidden: true, tabindex: '0', 'aria-label': 'Output of all hosts'});
  const info = h('dl', {class: 'info two run-info'});
  const el = h('div', {class: 'run', 'data-command-id': commandId},
    info,
    h('div', {class: 'run-bar'}, summary, h('span', {class: 'spacer'}), toggle),
    panesBox,
    interPre);

  toggle.addEventListener('click', () => setInterleaved(!interleaved));

  function pane(host) {
    let p = panes.get(host);
    if (p) return p;
    const state = h('span', {class: 'cmd-state host-state', 'data-cmd-state': 'pending'}, 'pending');
    const exit = h('span', {class: 'exit-code'}, fmt.NONE);
    const dur = h('span', {class: 'duration'}, fmt.NONE);
    const note = h('span', {class: 'host-reason'});
    const pre = h('pre', {class: 'output', tabindex: '0', 'aria-label': `Output of ${host}`});
    const sec = h('section', {class: 'run-pane', 'data-host': host, 'data-state': 'pending'},
      h('div', {class: 'run-pane-head'},
        h('h3', {class: 'run-host'}, hostLink(host)),
        state,
        h('span', {class: 'kv'}, 'exit ', exit),
        h('span', {class: 'kv'}, dur),
        note),
      pre);
    p = {host, sec, state, exit, dur, note, pre, chunks: new Map(), maxSeq: -1, size: 0, capped: false, st: {state: 'pending'}};
    panes.set(host, p);
    panesBox.append(sec);
    if (host.length > width) width = Math.min(host.length, 20);
    return p;
  }

  function renderHead(p) {
    const st = p.st;
    const s = st.state || 'pending';
    setText(p.state, s);            // the API's name, as cmdState() shows it
    setAttr(p.state, 'data-cmd-state', s);
    setAttr(p.sec, 'data-state', s);
    setText(p.exit, st.exitCode != null ? String(st.exitCode) : st.signal ? `signal ${st.signal}` : fmt.NONE);
    const d = st.startedAt && st.finishedAt ? fmtMs(st.finishedAt - st.startedAt)
      : st.startedAt && !FINAL.has(s) ? 'running' : fmt.NONE;
    setText(p.dur, d);
    if (st.startedAt) p.dur.title = `started ${fmt.dateTime(st.startedAt)}${st.finishedAt ? `, finished ${fmt.dateTime(st.finishedAt)}` : ''}`;
    const notes = [st.reason, st.truncated ? 'output truncated by the host' : ''].filter(Boolean).join(' · ');
    setText(p.note, notes);
    p.note.title = notes;
  }

  // Take a host's state unless it would turn a final state back into a running one.
  function setHost(host, st) {
    const p = pane(host);
    const cur = p.st.state;
    if (FINAL.has(cur) && !FINAL.has(st.state)) return;
    const next = {...p.st};
    for (const [k, v] of Object.entries(st)) if (v !== undefined && v !== null) next[k] = v;
    p.st = next;
    renderHead(p);
    if (FINAL.has(next.state) && interleaved) flushPartials((x) => x.host === host);
  }

  function updateSummary() {
    const n = {succeeded: 0, failed: 0, timed_out: 0, rejected: 0, denied: 0, expired: 0, active: 0};
    for (const p of panes.values()) {
      const s = p.st.state;
      if (Object.prototype.hasOwnProperty.call(n, s) && s !== 'active') n[s]++;
      else n.active++;
    }
    if (!commandFinal) n.active += Math.max(0, expected - panes.size);
    if (panes.size === 0 && commandFinal) {
      // refused as a whole (e.g. denied by the router's rules): no host ran it
      setText(summary, `The command was ${commandFinal.state.replace(/_/g, ' ')}${commandFinal.reason ? `: ${commandFinal.reason}` : '.'}`);
      setAttr(summary, 'data-done', 'true');
      setAttr(summary, 'data-command-state', commandFinal.state);
      return;
    }
    const parts = [`${n.succeeded} succeeded`, `${n.failed} failed`, `${n.timed_out} timed out`, `${n.rejected} rejected`];
    if (n.denied) parts.push(`${n.denied} denied`);
    if (n.expired) parts.push(`${n.expired} expired`);
    if (n.active) parts.push(`${n.active} running`);
    setText(summary, parts.join(' · '));
    for (const [k, v] of Object.entries(n)) setAttr(summary, `data-${k.replace('_', '-')}`, v);
    setAttr(summary, 'data-done', String(done()));
  }

  function done() {
    if (commandFinal) {
      for (const p of panes.values()) if (!FINAL.has(p.st.state)) return false;
      return true;
    }
    if (panes.size === 0 || panes.size < expected) return false;
    for (const p of panes.values()) if (!FINAL.has(p.st.state)) return false;
    return true;
  }

  // ---- output ----
  function atBottom(pre) { return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8; }

  function appendPane(p, c) {
    if (p.capped) return;
    if (p.size + c.text.length > MAX_PANE_CHARS) {
      p.capped = true;
      p.pre.append(h('span', {class: 'output-note'}, '\n… more output is not shown here (over 1 MiB).\n'));
      return;
    }
    p.size += c.text.length;
    const stick = atBottom(p.pre);
    p.pre.append(c.stream === 'stderr' ? h('span', {class: 'stderr'}, c.text) : document.createTextNode(c.text));
    if (stick) p.pre.scrollTop = p.pre.scrollHeight;
  }

  function interLine(host, stream, line, target = interPre) {
    target.append(h('span', {class: stream === 'stderr' ? 'line stderr' : 'line', 'data-host': host},
      h('span', {class: 'prefix'}, host.padEnd(width) + ' │ '), line + '\n'));
  }

  function interAppend(c, target = interPre) {
    const k = c.host + '\0' + c.stream;
    const text = (partial.has(k) ? partial.get(k).text : '') + c.text;
    const lines = text.split('\n');
    const rest = lines.pop();
    for (const line of lines) interLine(c.host, c.stream, line, target);
    if (rest) partial.set(k, {host: c.host, stream: c.stream, text: rest, at: Date.now()});
    else partial.delete(k);
    if (partial.size && !flushTimer) flushTimer = setTimeout(flushStale, 1000);
  }

  // A line without its newline for a second is shown as it is.
  function flushStale() {
    flushTimer = null;
    const now = Date.now();
    const stick = atBottom(interPre);
    flushPartials((x) => now - x.at >= 900);
    if (stick) interPre.scrollTop = interPre.scrollHeight;
    if (partial.size) flushTimer = setTimeout(flushStale, 1000);
  }

  function flushPartials(pred, target = interPre) {
    for (const [k, x] of [...partial]) {
      if (!pred(x)) continue;
      partial.delete(k);
      interLine(x.host, x.stream, x.text, target);
    }
  }

  function ordered() {
    const hostOrder = new Map([...panes.keys()].map((n, i) => [n, i]));
    return all.slice().sort((a, b) => (a.at || 0) - (b.at || 0) ||
      (hostOrder.get(a.host) ?? 0) - (hostOrder.get(b.host) ?? 0) || a.seq - b.seq);
  }

  function rebuild() {
    rebuildQueued = false;
    for (const p of panes.values()) {
      if (!p.dirty) continue;
      p.dirty = false;
      p.pre.replaceChildren();
      p.size = 0;
      p.capped = false;
      for (const seq of [...p.chunks.keys()].sort((a, b) => a - b)) appendPane(p, p.chunks.get(seq));
      p.pre.scrollTop = p.pre.scrollHeight;
    }
    if (interleaved) rebuildInterleaved();
  }

  function rebuildInterleaved() {
    partial.clear();
    const frag = document.createDocumentFragment();
    for (const c of ordered()) interAppend(c, frag);
    flushPartials((x) => FINAL.has(pane(x.host).st.state), frag);
    interPre.replaceChildren(frag);
    interPre.scrollTop = interPre.scrollHeight;
  }

  function queueRebuild() {
    if (!rebuildQueued) {
      rebuildQueued = true;
      queueMicrotask(rebuild);
    }
  }

  function addChunk(c) {
    if (!c || typeof c.host !== 'string' || typeof c.text !== 'string') return;
    if (c.stream === 'input' || c.stream === 'resize') return;   // a terminal's recording: the replay shows it
    const seq = typeof c.seq === 'number' ? c.seq : Number(c.seq) || 0;
    const p = pane(c.host);
    if (p.chunks.has(seq)) return;
    const chunk = {host: c.host, seq, stream: c.stream === 'stderr' ? 'stderr' : 'stdout', text: c.text, at: c.at || Date.now()};
    p.chunks.set(seq, chunk);
    all.push(chunk);
    if (!FINAL.has(p.st.state) && p.st.state !== 'running') setHost(c.host, {state: 'running'});
    if (seq < p.maxSeq || p.dirty) {
      p.dirty = true;      // came out of order: redo this pane in seq order
      queueRebuild();
      return;
    }
    p.maxSeq = seq;
    appendPane(p, chunk);
    if (interleaved && !rebuildQueued) {
      const stick = atBottom(interPre);
      interAppend(chunk);
      if (stick) interPre.scrollTop = interPre.scrollHeight;
    }
  }

  function setInterleaved(on) {
    interleaved = on;
    setAttr(toggle, 'aria-pressed', String(on));
    panesBox.classList.toggle('compact', on);
    interPre.hidden = !on;
    if (on) rebuildInterleaved();
    else { interPre.replaceChildren(); partial.clear(); }
  }

  function setInfo(cmd) {
    const rows = [
      ['Command', h('span', {class: 'mono'}, cmd.id || commandId)],
      ['Requested by', cmd.requester || fmt.NONE],
      ['Submitted', cmd.submittedAt ? h('span', {title: fmt.dateTime(cmd.submittedAt)}, fmt.dateTime(cmd.submittedAt)) : fmt.NONE],
      ['Action', h('code', {class: 'mono cmd-action-full'}, cmd.action || fmt.NONE)],
      ['State', cmdState(cmd.state)],
      ['Reason', h('span', {class: 'run-reason'}, cmd.reason || fmt.NONE)],
    ];
    if ((cmd.action || '').startsWith('shell (interactive)')) rows.push(['Recording', replayButton(cmd.id || commandId)]);
    info.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
  }

  // The command's own state: once final, a host with no result of its own shares it.
  function setCommandState(state, reason) {
    if (!FINAL.has(state)) return;
    commandFinal = {state, reason: reason || ''};
    for (const p of panes.values()) if (!FINAL.has(p.st.state)) setHost(p.host, {state, reason: reason || undefined});
    updateSummary();
  }

  return {
    el,
    setInfo,
    setCommandState,
    expect(hosts) {
      for (const n of hosts || []) pane(n);
      expected = Math.max(expected, (hosts || []).length);
      updateSummary();
    },
    output(m) { addChunk(m); updateSummary(); },
    result(m) {
      if (!m || typeof m.host !== 'string') return;
      setHost(m.host, {state: m.state, exitCode: m.exitCode, signal: m.signal, startedAt: m.startedAt,
        finishedAt: m.finishedAt, truncated: m.truncated || undefined, reason: m.reason});
      updateSummary();
    },
    // GET /api/v1/commands/{id}: {command: CommandSummary, output: [...]}
    stored(d) {
      if (!d) return;
      const cmd = d.command;
      if (cmd) {
        setInfo(cmd);
        expected = Math.max(expected, (cmd.hosts || []).length);
        for (const x of cmd.hosts || []) {
          setHost(x.host, {state: x.state, exitCode: x.exitCode, signal: x.signal, startedAt: x.startedAt,
            finishedAt: x.finishedAt, reason: x.reason, truncated: x.truncated || undefined});
        }
      }
      for (const c of d.output || []) addChunk(c);
      // (cmd.reason is the requester's why, not the router's word: no reason here)
      if (cmd) setCommandState(cmd.state, '');
      updateSummary();
    },
    done,
    destroy() { clearTimeout(flushTimer); },
  };
}

// ---- the screen ------------------------------------------------------------------

export function commandsScreen(root, params = {}) {
  const session = getSession() || {};
  const user = session.user || '';
  const roles = session.roles || [];
  const canRun = roles.includes('operator') || roles.includes('admin');
  const offs = [];
  let alive = true;

  // The command shown in the run view, and how it is kept fresh.
  let watched = null;             // {id, run, lastLive, lastFetch, fetching, finalFetched}
  let pollTimer = null;

  // ---- live ----
  offs.push(live.on('output', (m) => {
    if (!watched || m.commandId !== watched.id) return;
    watched.lastLive = Date.now();
    watched.run.output(m);
  }));
  offs.push(live.on('result', (m) => {
    if (!watched || m.commandId !== watched.id) return;
    watched.lastLive = Date.now();
    watched.run.result(m);
    if (watched.run.done()) tick();
  }));
  offs.push(live.on('_reconnected', () => {
    if (watched) fetchStored();
    if (!params.id) loadHistory();
  }));

  async function fetchStored() {
    const w = watched;
    if (!w || w.fetching) return;
    w.fetching = true;
    w.lastFetch = Date.now();
    try {
      const d = await api.get(`/api/v1/commands/${api.enc(w.id)}`);
      if (!alive || watched !== w) return;
      w.run.stored(d);
      w.error.replaceChildren();
      // Every host has its result in the stored copy, so its output is all there too.
      if (w.run.done()) finish(w);
    } catch (e) {
      if (alive && watched === w && e.status !== 401) {
        w.error.replaceChildren(e.status === 404
          ? h('div', {class: 'notice', role: 'status'}, 'The console knows no command with this id (yet).')
          : errorNotice(e, 'the command'));
      }
    } finally {
      w.fetching = false;
    }
  }

  // Live messages carry the output; the stored copy fills what came before the
  // watch, and stands in for the live stream while it is down or quiet.
  function tick() {
    const w = watched;
    if (!w || !alive || w.finalFetched) return;
    // All results are in: read the stored copy once more for what came before the watch.
    if (w.run.done()) { fetchStored(); return; }
    const quiet = Date.now() - Math.max(w.lastLive, w.lastFetch);
    if (live.liveState() !== 'open' || quiet > LIVE_QUIET_MS) fetchStored();
  }

  function finish(w) {
    if (w.finalFetched) return;
    w.finalFetched = true;
    clearInterval(pollTimer);
    pollTimer = null;
    live.watch(null);
    if (!params.id) loadHistory();
  }

  function watchCommand(id, run, errorBox) {
    clearInterval(pollTimer);
    if (watched) watched.run.destroy();
    watched = {id, run, lastLive: 0, lastFetch: 0, fetching: false, finalFetched: false, error: errorBox};
    live.watch({watch: 'command', id});
    fetchStored();
    pollTimer = setInterval(tick, POLL_MS);
  }

  // ---- one command (#/commands?id=) ----
  if (params.id) {
    const id = params.id;
    const run = createRun(id);
    const err = h('div');
    run.setInfo({id});
    fill(root,
      h('a', {href: '#/commands', class: 'back'}, '← Commands'),
      h('div', {class: 'screen-head'}, h('h1', null, 'Command')),
      err,
      h('section', {class: 'panel run-panel', id: 'command-run'}, h('div', {class: 'panel-body'}, run.el)));
    watchCommand(id, run, err);
    return {
      destroy() {
        alive = false;
        clearInterval(pollTimer);
        run.destroy();
        offs.forEach((f) => f());
      },
    };
  }

  // ---- the list screen ----
  const hostsList = [];           // HostRow from /api/v1/hosts, for suggestions and estimates
  const hostsData = h('datalist', {id: 'command-hosts-list'});
  const hostNames = h('datalist', {id: 'command-host-names'});
  const groupsData = h('datalist', {id: 'command-groups-list'});
  const labelsData = h('datalist', {id: 'command-labels-list'});

  const runPanel = h('section', {class: 'panel', id: 'command-form-panel'});
  const runBox = h('section', {class: 'panel run-panel', id: 'command-run', hidden: true});
  const historyPanel = h('section', {class: 'panel', id: 'command-history-panel'});

  fill(root,
    h('div', {class: 'screen-head'}, h('h1', null, 'Commands')),
    hostsData, hostNames, groupsData, labelsData,
    canRun ? runPanel : null,
    runBox,
    historyPanel);

  // ---- key panel and run form ----
  let keyRec = null;

  async function showRunPanel(message) {
    const problem = keys.supportProblem();
    if (problem) {
      fill(runPanel,
        h('div', {class: 'panel-head'}, h('h2', null, 'Run a command')),
        h('div', {class: 'panel-body'}, h('p', {class: 'notice', role: 'status'}, `${problem} Use mirrorctl exec instead.`)));
      return;
    }
    keyRec = await keys.ensureKey(user);
    if (!alive) return;
    if (keyRec) fill(runPanel, ...runForm());
    else fill(runPanel, ...keyPanel(message));
  }

  function keyPanel(message) {
    const code = codeInput('key-code');
    const btn = h('button', {type: 'submit', class: 'btn btn-primary', id: 'register-key'}, 'Enable commands');
    const error = h('p', {class: 'error', role: 'alert'});
    const form = h('form', {class: 'key-form', id: 'enable-commands', novalidate: true},
      message ? h('p', {class: 'notice', role: 'status'}, message) : null,
      h('p', {class: 'muted'}, 'Commands are signed in this browser with a key of your own that never leaves it ' +
        '(the console cannot read it). To make and register one, confirm with a fresh code from your authenticator.'),
      h('div', {class: 'inline-fields'},
        h('label', {class: 'field', for: 'key-code'}, 'Authenticator code', code),
        btn),
      error);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      const c = readCode(code);
      if (!c) { error.textContent = 'Enter the 6-digit code your app shows.'; code.focus(); return; }
      btn.disabled = true;
      try {
        keyRec = await keys.registerKey(user, c);
        if (!alive) return;
        fill(runPanel, ...runForm());
      } catch (e) {
        if (!alive) return;
        error.textContent = isWrongCode(e) || e.status === 401 ? 'That code is wrong or was used already. Wait for the next one.'
          : e.status === 403 ? 'The console refused: your role may not register a key.'
            : e.message || String(e);
        code.value = '';
        code.focus();
      } finally {
        btn.disabled = false;
      }
    });
    return [
      h('div', {class: 'panel-head'}, h('h2', null, 'Enable commands in this browser')),
      h('div', {class: 'panel-body'}, form),
    ];
  }

  function runForm() {
    const kind = h('select', {id: 'target-kind', 'aria-label': 'Target'}, TARGETS.map(([v, l]) => h('option', {value: v}, l)));
    const hostsIn = h('input', {id: 'target-hosts', type: 'text', list: 'command-hosts-list', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'web-01, web-02', 'aria-label': 'Host names, separated by commas'});
    const groupIn = h('input', {id: 'target-group', type: 'text', list: 'command-groups-list', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'group name', 'aria-label': 'Group', hidden: true});
    const selIn = h('input', {id: 'target-selector', type: 'text', list: 'command-labels-list', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'role=web,env=prod', 'aria-label': 'Label selector', hidden: true});
    const allNote = h('span', {class: 'muted target-all', hidden: true}, 'every host the registry knows');
    const estimate = h('span', {class: 'muted target-estimate', 'aria-live': 'polite'});

    const action = h('select', {id: 'action-kind', 'aria-label': 'Action'}, ACTIONS.map(([v, l]) => h('option', {value: v}, l)));
    const argvIn = h('input', {id: 'action-argv', type: 'text', class: 'mono', autocomplete: 'off', spellcheck: 'false',
      placeholder: "uptime   (quotes: grep -c 'a b' /etc/hosts)", 'aria-label': 'Command and arguments'});
    const shellIn = h('input', {id: 'action-shell', type: 'text', class: 'mono', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'df -h | head', 'aria-label': 'Shell line', hidden: true});
    const serviceIn = h('input', {id: 'action-service', type: 'text', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'nginx', 'aria-label': 'Service name', hidden: true});
    const macIn = h('input', {id: 'action-mac', type: 'text', class: 'mono', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'MAC (empty: the registry’s)', 'aria-label': 'MAC address', hidden: true});
    const bcastIn = h('input', {id: 'action-broadcast', type: 'text', class: 'mono', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'broadcast, e.g. 192.168.1.255', 'aria-label': 'Broadcast address', hidden: true});
    const actionNote = h('span', {class: 'muted', hidden: true}, 'the hosts send their metrics now');

    const reason = h('input', {id: 'command-reason', type: 'text', required: true, autocomplete: 'off',
      placeholder: 'why (kept in the audit)', maxlength: '500'});
    const timeout = h('input', {id: 'command-timeout', type: 'number', min: '1', max: '3600', step: '1', value: '30', required: true});
    const runBtn = h('button', {id: 'run-command', type: 'submit', class: 'btn btn-primary'}, 'Run');
    const error = h('p', {class: 'error', id: 'command-error', role: 'alert'});
    const keyNote = h('span', {class: 'muted key-note'},
      'Signing key: ', h('span', {title: keyRec ? `key ${keyRec.keyId}` : ''}, keyRec ? keyRec.label || keyRec.keyId : ''));
    const forgetBtn = h('button', {type: 'button', class: 'btn btn-quiet btn-small', id: 'forget-key',
      title: 'Revoke this browser’s key; you can make a new one with a code'}, 'Disable in this browser');

    const form = h('form', {class: 'run-form', id: 'command-form', novalidate: true},
      h('div', {class: 'run-row'},
        h('label', {class: 'field-label', for: 'target-kind'}, 'Target'),
        h('div', {class: 'form-fields'}, kind, hostsIn, groupIn, selIn, allNote, estimate)),
      h('div', {class: 'run-row'},
        h('label', {class: 'field-label', for: 'action-kind'}, 'Action'),
        h('div', {class: 'form-fields'}, action, argvIn, shellIn, serviceIn, macIn, bcastIn, actionNote)),
      h('div', {class: 'run-row'},
        h('label', {class: 'field-label', for: 'command-reason'}, 'Reason'),
        h('div', {class: 'form-fields'}, reason,
          h('label', {class: 'timeout-field', for: 'command-timeout'}, 'Timeout', timeout, 's'))),
      h('div', {class: 'run-row form-actions'},
        h('span', {class: 'field-label'}),
        h('div', {class: 'form-fields'}, runBtn, keyNote, forgetBtn)),
      error);

    function syncTarget() {
      const k = kind.value;
      hostsIn.hidden = k !== 'hosts';
      groupIn.hidden = k !== 'group';
      selIn.hidden = k !== 'selector';
      allNote.hidden = k !== 'all';
      updateEstimate();
    }
    function syncAction() {
      const a = action.value;
      argvIn.hidden = a !== 'argv';
      shellIn.hidden = a !== 'shell';
      serviceIn.hidden = a !== 'restart_service';
      macIn.hidden = a !== 'wake_on_lan';
      bcastIn.hidden = a !== 'wake_on_lan';
      actionNote.hidden = a !== 'collect_now';
    }
    function updateEstimate() {
      const n = estimateHosts(readTarget(true));
      setText(estimate, n == null ? '' : `${n} host${n === 1 ? '' : 's'}`);
    }
    kind.addEventListener('change', syncTarget);
    action.addEventListener('change', syncAction);
    for (const i of [hostsIn, groupIn, selIn]) i.addEventListener('input', updateEstimate);
    hostsIn.addEventListener('input', () => suggestHosts(hostsIn.value));
    hostsIn.addEventListener('focus', () => suggestHosts(hostsIn.value));

    forgetBtn.addEventListener('click', async () => {
      forgetBtn.disabled = true;
      try {
        await keys.revokeKey(user);
      } catch (e) {
        error.textContent = `Could not revoke the key: ${e.message}`;
        forgetBtn.disabled = false;
        return;
      }
      if (alive) showRunPanel('This browser’s key was revoked and forgotten.');
    });

    function readTarget(quiet) {
      const k = kind.value;
      if (k === 'all') return {kind: 'all'};
      if (k === 'hosts') {
        const list = [...new Set(hostsIn.value.split(',').map((s) => s.trim()).filter(Boolean))];
        if (!list.length && !quiet) throw fieldError(hostsIn, 'Name at least one host.');
        return {kind: 'hosts', hosts: list};
      }
      if (k === 'group') {
        const g = groupIn.value.trim();
        if (!g && !quiet) throw fieldError(groupIn, 'Name a group.');
        return {kind: 'group', group: g};
      }
      const s = selIn.value.trim().replace(/\s*,\s*/g, ',').replace(/\s*=\s*/g, '=');
      if (!quiet && !/^[^=,\s]+=[^=,]*(,[^=,\s]+=[^=,]*)*$/.test(s)) throw fieldError(selIn, 'A selector is key=value, separated by commas.');
      return {kind: 'selector', selector: s};
    }

    function readAction() {
      const a = action.value;
      if (a === 'argv') {
        const argv = splitArgs(argvIn.value);
        if (!argv.length) throw fieldError(argvIn, 'Enter the command to run.');
        return {argv};
      }
      if (a === 'shell') {
        if (!shellIn.value.trim()) throw fieldError(shellIn, 'Enter the shell line.');
        return {shell: shellIn.value};
      }
      if (a === 'restart_service') {
        const s = serviceIn.value.trim();
        if (!s) throw fieldError(serviceIn, 'Name the service to restart.');
        return {builtin: 'restart_service', service: s};
      }
      if (a === 'wake_on_lan') {
        const mac = macIn.value.trim();
        const b = bcastIn.value.trim();
        if (mac && !/^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i.test(mac)) throw fieldError(macIn, 'A MAC is six hex pairs, e.g. aa:bb:cc:dd:ee:ff.');
        if (b && !/^(\d{1,3}\.){3}\d{1,3}$/.test(b)) throw fieldError(bcastIn, 'The broadcast address is an IPv4 address.');
        const out = {builtin: 'wake_on_lan'};
        if (mac) out.mac = mac.toLowerCase().replace(/-/g, ':');
        if (b) out.broadcast = b;
        return out;
      }
      return {builtin: 'collect_now'};
    }

    function fieldError(input, msg) {
      const e = new Error(msg);
      e.input = input;
      return e;
    }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      let body;
      try {
        const target = readTarget(false);
        const act = readAction();
        if (!reason.value.trim()) throw fieldError(reason, 'Give a reason: it is kept with the command.');
        const t = Number(timeout.value);
        if (!Number.isInteger(t) || t < 1 || t > 3600) throw fieldError(timeout, 'The timeout is 1 to 3600 seconds.');
        body = {target, action: act, reason: reason.value.trim(), timeoutSeconds: t};
      } catch (e) {
        error.textContent = e.message;
        if (e.input) e.input.focus();
        return;
      }
      runBtn.disabled = true;
      try {
        await submit(body, null, {error});
      } finally {
        runBtn.disabled = false;
      }
    });

    syncTarget();
    syncAction();
    return [
      h('div', {class: 'panel-head'}, h('h2', null, 'Run a command')),
      h('div', {class: 'panel-body'}, form),
    ];
  }

  // ---- submit: prepare (code if the scope is dangerous), sign, send ----
  async function submit(body, code, ui) {
    const rec = keyRec || await keys.ensureKey(user);
    if (!alive) return false;
    if (!rec) { showRunPanel('Enable commands in this browser first.'); return false; }
    const req = {...body, keyId: rec.keyId};
    if (code) req.code = code;
    let prep;
    try {
      prep = code ? await postWithCode('/api/v1/commands/prepare', req) : await api.post('/api/v1/commands/prepare', req);
    } catch (e) {
      if (!alive) return false;
      if (e.code === 'totp_required') {
        if (code) throw e;                       // the dialog says the code was wrong
        confirmDangerous(body);
        return false;
      }
      if (keys.isUnknownKey(e)) return keyGone();
      if (ui && ui.error) ui.error.textContent = explain(e);
      else throw e;
      return false;
    }
    let signature;
    try {
      signature = await keys.sign(rec.privateKey, prep.request);
    } catch (e) {
      const msg = `This browser could not sign the command: ${e.message || e.name}`;
      if (ui && ui.error) { ui.error.textContent = msg; return false; }
      throw new Error(msg);
    }
    let ans;
    try {
      ans = await api.post('/api/v1/commands', {request: prep.request, signature});
    } catch (e) {
      if (!alive) return false;
      if (keys.isUnknownKey(e)) return keyGone();
      if (ui && ui.error) { ui.error.textContent = explain(e); return false; }
      throw e;
    }
    if (!alive) return true;
    showRun(ans, prep, body);
    return true;
  }

  async function keyGone() {
    await keys.forgetKey(user);
    keyRec = null;
    if (alive) showRunPanel('The console no longer accepts this browser’s key (revoked or unknown). Register it again with a code.');
    return false;
  }

  function explain(e) {
    if (e.code === 'forbidden' || e.status === 403) return e.message && e.code !== 'forbidden' ? e.message : 'The console refused: your role may not run this command.';
    if (e.status === 0) return 'The console did not answer. Nothing was sent.';
    return e.message || `The console refused the command (HTTP ${e.status}).`;
  }

  // ---- the confirm dialog for a dangerous scope ----
  let dialog = null;
  function confirmDangerous(body) {
    if (dialog) dialog.remove();
    const t = body.target;
    let scope;
    if (t.kind === 'all') scope = 'ALL hosts';
    else if (t.kind === 'hosts') scope = `${t.hosts.length} hosts`;
    else {
      const n = estimateHosts(t);
      scope = n ? `${n} hosts (${t.kind === 'group' ? `group ${t.group}` : `selector ${t.selector}`})`
        : t.kind === 'group' ? `every host of group ${t.group}` : `every host matching ${t.selector}`;
    }
    const code = codeInput('confirm-code');
    const ok = h('button', {type: 'submit', class: 'btn btn-primary btn-danger', id: 'confirm-run'}, `Run on ${scope}`);
    const cancel = h('button', {type: 'button', class: 'btn', id: 'confirm-cancel'}, 'Cancel');
    const error = h('p', {class: 'error', role: 'alert'});
    const form = h('form', {method: 'dialog', class: 'confirm-form', novalidate: true},
      h('h2', {id: 'confirm-title'}, `Run on ${scope}?`),
      h('p', null, 'This command reaches ', h('b', {class: 'confirm-scope'}, scope), '. To go on, enter a fresh code from your authenticator.'),
      h('dl', {class: 'info'},
        h('dt', null, 'Action'), h('dd', null, h('code', {class: 'mono'}, actionText(body.action))),
        h('dt', null, 'Reason'), h('dd', null, body.reason)),
      h('label', {class: 'field', for: 'confirm-code'}, 'Authenticator code', code),
      error,
      h('div', {class: 'dialog-actions'}, cancel, ok));
    dialog = h('dialog', {id: 'confirm-command', class: 'dialog', 'aria-labelledby': 'confirm-title'}, form);
    root.append(dialog);
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => { if (dialog) { dialog.remove(); dialog = null; } });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      const c = readCode(code);
      if (!c) { error.textContent = 'Enter the 6-digit code your app shows.'; code.focus(); return; }
      ok.disabled = true;
      cancel.disabled = true;
      try {
        await submit(body, c, null);
        // Sent, or the key is gone (the run panel then says so).
        if (dialog) dialog.close();
      } catch (e) {
        error.textContent = isWrongCode(e) ? 'That code is wrong or was used already. Wait for the next one.' : explain(e);
        code.value = '';
        code.focus();
      } finally {
        ok.disabled = false;
        cancel.disabled = false;
      }
    });
    dialog.showModal();
    code.focus();
  }

  // ---- the run we started ----
  function showRun(ans, prep, body) {
    const id = ans.commandId || prep.id;
    const run = createRun(id);
    const err = h('div');
    run.setInfo({id, requester: user, submittedAt: Date.now(), action: actionText(body.action), state: ans.state, reason: body.reason});
    run.expect(ans.hosts && ans.hosts.length ? ans.hosts : prep.hosts);
    run.setCommandState(ans.state, ans.reason);   // refused at once: denied, rejected
    runBox.hidden = false;
    fill(runBox,
      h('div', {class: 'panel-head'}, h('h2', null, 'Run'),
        h('span', {class: 'spacer'}),
        h('a', {href: `#/commands?id=${api.enc(id)}`, class: 'muted'}, 'link to this command')),
      err,
      h('div', {class: 'panel-body'}, run.el));
    watchCommand(id, run, err);
    runBox.scrollIntoView({block: 'start', behavior: 'smooth'});
    loadHistory();
  }

  // ---- hosts for suggestions ----
  function suggestHosts(value) {
    // Suggest completions of the last name in a comma-separated list.
    const i = value.lastIndexOf(',');
    const head = i >= 0 ? value.slice(0, i + 1).replace(/,\s*$/, ', ') : '';
    const last = (i >= 0 ? value.slice(i + 1) : value).trim().toLowerCase();
    const chosen = new Set(value.split(',').map((s) => s.trim()));
    const opts = [];
    for (const r of hostsList) {
      if (opts.length >= 60) break;
      if (chosen.has(r.name) || (last && !r.name.toLowerCase().includes(last))) continue;
      opts.push(h('option', {value: head + r.name}));
    }
    hostsData.replaceChildren(...opts);
  }

  function estimateHosts(t) {
    if (!hostsList.length) return null;
    if (t.kind === 'all') return hostsList.length;
    if (t.kind === 'hosts') return t.hosts.length || null;
    if (t.kind === 'group') return t.group ? hostsList.filter((r) => (r.groups || []).includes(t.group)).length : null;
    const pairs = (t.selector || '').split(',').map((p) => p.split('=')).filter((p) => p.length === 2 && p[0]);
    if (!pairs.length) return null;
    return hostsList.filter((r) => pairs.every(([k, v]) => r.labels && String(r.labels[k.trim()]) === v.trim())).length;
  }

  async function loadHosts() {
    try {
      const d = await api.get('/api/v1/hosts');
      if (!alive) return;
      hostsList.splice(0, hostsList.length, ...((d && d.hosts) || []).sort((a, b) => a.name.localeCompare(b.name)));
      const groups = new Set();
      const labels = new Set();
      for (const r of hostsList) {
        for (const g of r.groups || []) groups.add(g);
        for (const [k, v] of Object.entries(r.labels || {})) labels.add(`${k}=${v}`);
      }
      groupsData.replaceChildren(...[...groups].sort().map((g) => h('option', {value: g})));
      labelsData.replaceChildren(...[...labels].sort().slice(0, 300).map((l) => h('option', {value: l})));
      hostNames.replaceChildren(...hostsList.slice(0, 500).map((r) => h('option', {value: r.name})));
      suggestHosts(document.getElementById('target-hosts')?.value || '');
    } catch { /* suggestions only */ }
  }

  // ---- history ----
  const fHost = h('input', {id: 'history-host', type: 'search', list: 'command-host-names', placeholder: 'host', 'aria-label': 'Host',
    autocomplete: 'off', spellcheck: 'false'});
  const fUser = h('input', {id: 'history-user', type: 'search', placeholder: 'user', 'aria-label': 'User', autocomplete: 'off', spellcheck: 'false'});
  const fState = h('select', {id: 'history-state', 'aria-label': 'State'},
    h('option', {value: ''}, 'Any state'), HISTORY_STATES.map((s) => h('option', {value: s}, s.replace(/_/g, ' '))));
  const fSince = h('input', {id: 'history-since', type: 'datetime-local', 'aria-label': 'Since'});
  const fUntil = h('input', {id: 'history-until', type: 'datetime-local', 'aria-label': 'Until'});
  const fClear = h('button', {type: 'button', class: 'btn btn-quiet', id: 'history-clear'}, 'Clear');
  const histCount = h('span', {class: 'muted', id: 'history-count'});
  const histNotice = h('div');
  const histTable = table({id: 'command-history', class: 'history-table'}, HIST_HEADERS, [], 'Loading…');
  const histBody = histTable.tBodies[0];

  fill(historyPanel,
    h('div', {class: 'panel-head'}, h('h2', null, 'History'), histCount),
    h('div', {class: 'toolbar history-filters'},
      fHost, fUser, fState,
      h('label', {class: 'range-field'}, 'since', fSince),
      h('label', {class: 'range-field'}, 'until', fUntil),
      fClear),
    histNotice,
    h('div', {class: 'table-wrap'}, histTable));

  let histSeq = 0;
  let histTimer = null;
  async function loadHistory() {
    const seq = ++histSeq;
    const q = new URLSearchParams();
    if (fHost.value.trim()) q.set('host', fHost.value.trim());
    if (fUser.value.trim()) q.set('user', fUser.value.trim());
    if (fState.value) q.set('state', fState.value);
    const since = fSince.value ? new Date(fSince.value).getTime() : NaN;
    const until = fUntil.value ? new Date(fUntil.value).getTime() : NaN;
    if (Number.isFinite(since)) q.set('since', String(since));
    if (Number.isFinite(until)) q.set('until', String(until + 59999));   // the whole minute
    q.set('limit', '200');
    try {
      const d = await api.get('/api/v1/commands?' + q.toString());
      if (!alive || seq !== histSeq) return;
      histNotice.replaceChildren();
      const cmds = (d && d.commands) || [];
      setText(histCount, cmds.length >= 200 ? 'newest 200' : `${cmds.length}`);
      fillRows(histBody, HIST_HEADERS, cmds.map((c) => ({
        attrs: {'data-command-id': c.id, class: 'clickable', tabindex: '-1'},
        cells: [
          h('a', {href: `#/commands?id=${api.enc(c.id)}`, class: 'nowrap', title: fmt.dateTime(c.submittedAt)}, fmt.time(c.submittedAt)),
          c.requester || fmt.NONE,
          h('span', {class: 'cmd-action', title: c.action || ''}, c.action || fmt.NONE),
          String((c.hosts || []).length),
          cmdState(c.state),
          h('span', {class: 'history-reason', title: c.reason || ''}, c.reason || ''),
        ],
      })), q.toString() === 'limit=200' ? 'No commands yet.' : 'No command matches.');
    } catch (e) {
      if (alive && seq === histSeq && e.status !== 401) histNotice.replaceChildren(errorNotice(e, 'the history'));
    }
  }
  function historySoon() {
    clearTimeout(histTimer);
    histTimer = setTimeout(loadHistory, 300);
  }
  for (const i of [fHost, fUser]) i.addEventListener('input', historySoon);
  for (const i of [fState, fSince, fUntil]) i.addEventListener('change', loadHistory);
  fClear.addEventListener('click', () => {
    fHost.value = fUser.value = fState.value = fSince.value = fUntil.value = '';
    loadHistory();
  });
  histBody.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) return;
    const tr = ev.target.closest('tr[data-command-id]');
    if (tr && !window.getSelection().toString()) location.hash = `#/commands?id=${api.enc(tr.getAttribute('data-command-id'))}`;
  });

  if (canRun) showRunPanel();
  loadHosts();
  loadHistory();

  return {
    destroy() {
      alive = false;
      clearInterval(pollTimer);
      clearTimeout(histTimer);
      if (watched) watched.run.destroy();
      if (dialog && dialog.open) dialog.close();
      offs.forEach((f) => f());
    },
  };
}
