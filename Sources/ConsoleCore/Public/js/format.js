// Number, size and time formatting. Every function takes null and answers "—".

export const NONE = '—';

const ok = (v) => typeof v === 'number' && Number.isFinite(v);

export function pct(v, digits = 1) {
  return ok(v) ? v.toFixed(digits) + ' %' : NONE;
}

export function num(v, digits = 2) {
  return ok(v) ? v.toFixed(digits) : NONE;
}

export function int(v) {
  return ok(v) ? Math.round(v).toLocaleString('en-US') : NONE;
}

export function celsius(v, digits = 0) {
  return ok(v) ? v.toFixed(digits) + ' °C' : NONE;
}

const BIN = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
const DEC = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

function scaled(v, base, units) {
  let i = 0;
  let x = Math.abs(v);
  while (x >= base && i < units.length - 1) { x /= base; i++; }
  const s = v < 0 ? -x : x;
  const d = i === 0 ? 0 : x < 10 ? 2 : x < 100 ? 1 : 0;
  return s.toFixed(d) + ' ' + units[i];
}

// Sizes (memory, disks): binary units.
export function bytes(v) {
  return ok(v) ? scaled(v, 1024, BIN) : NONE;
}

// Rates in bytes per second: decimal units.
export function rate(v) {
  return ok(v) ? scaled(v, 1000, DEC) + '/s' : NONE;
}

// Short axis label: "1.2M", "340k".
export function short(v) {
  if (!ok(v)) return '';
  const a = Math.abs(v);
  if (a >= 1e12) return (v / 1e12).toFixed(a >= 1e13 ? 0 : 1) + 'T';
  if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + 'k';
  return a >= 10 || a === 0 ? v.toFixed(0) : v.toFixed(1);
}

export function mhz(v) {
  return ok(v) ? (v >= 1000 ? (v / 1000).toFixed(2) + ' GHz' : v.toFixed(0) + ' MHz') : NONE;
}

export function speed(mbps) {
  if (!ok(mbps) || mbps <= 0) return NONE;
  return mbps >= 1000 ? (mbps / 1000) + ' Gb/s' : mbps + ' Mb/s';
}

// Seconds → "3 d 4 h", "5 h 12 min", "40 s".
export function duration(sec) {
  if (!ok(sec)) return NONE;
  const s = Math.max(0, Math.floor(sec));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${hh} h`;
  if (hh > 0) return `${hh} h ${m} min`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

// Unix ms → "5 s ago", "3 min ago", "in 2 h".
export function ago(ms, now = Date.now()) {
  if (!ok(ms)) return NONE;
  const diff = Math.round((now - ms) / 1000);
  const a = Math.abs(diff);
  let t;
  if (a < 5) return 'just now';
  if (a < 60) t = a + ' s';
  else if (a < 3600) t = Math.floor(a / 60) + ' min';
  else if (a < 86400) t = Math.floor(a / 3600) + ' h';
  else t = Math.floor(a / 86400) + ' d';
  return diff >= 0 ? t + ' ago' : 'in ' + t;
}

const pad = (n) => String(n).padStart(2, '0');

// Unix ms → "14:03:07" today, else "2024-05-02 14:03".
export function time(ms, now = Date.now()) {
  if (!ok(ms)) return NONE;
  const d = new Date(ms);
  const today = new Date(now);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === today.toDateString()) return `${hm}:${pad(d.getSeconds())}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

export function dateTime(ms) {
  if (!ok(ms)) return NONE;
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// Value for <input type="datetime-local">, local time.
export function localInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// An element whose text is kept as relative time by the app's ticker.
export function relTimeAttrs(ms) {
  return ok(ms) ? {'data-reltime': String(ms), title: dateTime(ms)} : {};
}

export function refreshRelTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('[data-reltime]')) {
    const t = ago(Number(el.getAttribute('data-reltime')), now);
    if (el.textContent !== t) el.textContent = t;
  }
}
