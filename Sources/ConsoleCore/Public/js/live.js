// One WebSocket per browser to /api/v1/live. It reconnects with backoff,
// re-sends the current watch after every (re)connect and hands messages to
// subscribers by their "type".

const subs = new Map();        // type -> Set<fn>
let ws = null;
let wanted = false;
let watching = null;           // the last watch message
let delay = 1000;
let timer = null;
let opened = 0;                // successful opens so far
let state = 'closed';

function emit(type, msg) {
  const set = subs.get(type);
  if (!set) return;
  for (const fn of [...set]) {
    try { fn(msg); } catch (e) { console.error('live subscriber failed', e); }
  }
}

function setState(s) {
  if (state === s) return;
  state = s;
  emit('_state', {type: '_state', state: s});
}

function url() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/api/v1/live`;
}

function connect() {
  clearTimeout(timer);
  timer = null;
  if (!wanted || ws) return;
  setState('connecting');
  let sock;
  try {
    sock = new WebSocket(url());
  } catch (e) {
    schedule();
    return;
  }
  ws = sock;
  sock.onopen = () => {
    if (ws !== sock) return;
    delay = 1000;
    setState('open');
    if (watching) sock.send(JSON.stringify(watching));
    opened++;
    if (opened > 1) emit('_reconnected', {type: '_reconnected'});
  };
  sock.onmessage = (ev) => {
    if (ws !== sock) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg && typeof msg.type === 'string') {
      emit(msg.type, msg);
      emit('*', msg);
    }
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    if (wanted) schedule();
    else setState('closed');
  };
  sock.onerror = () => { /* onclose follows */ };
}

function schedule() {
  setState('reconnecting');
  const wait = delay * (0.75 + Math.random() * 0.5);
  delay = Math.min(delay * 2, 30000);
  emit('_retry', {type: '_retry', wait});
  timer = setTimeout(connect, wait);
}

export function start() {
  wanted = true;
  if (!ws && !timer) connect();
}

export function stop() {
  wanted = false;
  clearTimeout(timer);
  timer = null;
  watching = null;
  opened = 0;
  if (ws) {
    const s = ws;
    ws = null;
    s.close(1000);
  }
  setState('closed');
}

// Tell the console what the screen shows; kept and re-sent after a reconnect.
// watch(null): nothing (the console stops sending the last screen's topic).
export function watch(msg) {
  watching = msg || {watch: 'none'};
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(watching));
}

// Subscribe to a message type; returns the unsubscribe function.
// Special types: '*' (all), '_state' ({state}), '_reconnected', '_retry'.
export function on(type, fn) {
  if (!subs.has(type)) subs.set(type, new Set());
  subs.get(type).add(fn);
  return () => subs.get(type).delete(fn);
}

export function liveState() { return state; }
