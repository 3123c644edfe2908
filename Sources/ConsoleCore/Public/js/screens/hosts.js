// Hosts: a filterable, sortable, virtually scrolled table with live values and
// 15-minute sparklines. Only the visible rows (plus an overscan) exist in the DOM.

import * as api from '../api.js';
import * as live from '../live.js';
import * as fmt from '../format.js';
import {h, setText, setAttr, hostHref, stateBadge} from '../dom.js';
import {sparkCanvas, drawSpark, onThemeChange} from '../charts.js';
import {errorNotice} from './common.js';

const SPARK_KEYS = ['cpu', 'memory', 'load1', 'disk', 'netRx', 'netTx', 'temperature', 'gpu'];
const SPARK_MAX = 180;
const OVERSCAN = 8;
const SPARK_BATCH = 50;
const STATE_RANK = {critical: 0, warning: 1, down: 2, up: 3};

const nb = (t) => t.replace(/ /g, '\u00a0');
// Two rates that wrap onto two lines at the space between them.
const netText = (r) => (r.netRx == null && r.netTx == null ? fmt.NONE : `↓${nb(fmt.rate(r.netRx))} ↑${nb(fmt.rate(r.netTx))}`);

const COLS = [
  {key: 'state', label: 'State', col: 'c-state'},
  {key: 'name', label: 'Name', col: 'c-name'},
  {key: 'cpu', label: 'CPU', col: 'c-m', text: (r) => fmt.pct(r.cpu), spark: {key: 'cpu', max: 100}},
  {key: 'memory', label: 'Memory', col: 'c-m', text: (r) => fmt.pct(r.memory), spark: {key: 'memory', max: 100}},
  {key: 'load1', label: 'Load', col: 'c-load', text: (r) => fmt.num(r.load1, 2), spark: {key: 'load1'}},
  {key: 'disk', label: 'Disk', col: 'c-m', text: (r) => fmt.pct(r.disk), spark: {key: 'disk', max: 100}},
  {key: 'net', label: 'Network', col: 'c-net', text: netText, spark: {key: 'netRx', key2: 'netTx'}},
  {key: 'temperature', label: 'Temp', col: 'c-temp', text: (r) => fmt.celsius(r.temperature), spark: {key: 'temperature', auto: true}},
  {key: 'gpu', label: 'GPU', col: 'c-m', text: (r) => fmt.pct(r.gpu), spark: {key: 'gpu', max: 100}},
];

function sortValue(r, key) {
  switch (key) {
    case 'name': return r.name;
    case 'state': return STATE_RANK[r.state] ?? 4;
    case 'net': return r.netRx == null && r.netTx == null ? null : (r.netRx || 0) + (r.netTx || 0);
    default: return typeof r[key] === 'number' ? r[key] : null;
  }
}

function searchBlob(r) {
  const parts = [r.name];
  for (const g of r.groups || []) parts.push(g);
  for (const [k, v] of Object.entries(r.labels || {})) parts.push(k, String(v), `${k}=${v}`);
  return parts.join('\n').toLowerCase();
}

function parseFilter(text) {
  const words = [];
  const labels = [];
  for (const tok of text.trim().toLowerCase().split(/\s+/)) {
    if (!tok) continue;
    const i = tok.indexOf('=');
    if (i > 0) labels.push([tok.slice(0, i), tok.slice(i + 1)]);
    else words.push(tok);
  }
  return {words, labels};
}

export function hostsScreen(root, params = {}) {
  const entries = new Map();      // name -> {row, ver, blob, labels(lowercased)}
  const sparks = new Map();       // name -> {cpu: [...], ...}
  const sparkVer = new Map();     // name -> counter, bumped on change
  const sparkPending = new Set();
  const sparkQueue = new Set();
  const sparkFailed = new Map();  // name -> time of failure
  let sparkTimer = null;
  let view = [];
  let viewDirty = true;
  let sort = {key: null, dir: 1};
  let filter = {words: [], labels: []};
  let stateFilter = ['up', 'warning', 'critical', 'down'].includes(params.state) ? params.state : 'all';
  let groupFilter = params.group || 'all';
  let rowH = 34;
  let measured = false;
  let frame = 0;
  let rendered = new Map();       // name -> tr
  let renderedOrder = [];
  let loaded = false;
  let queued = [];                // live rows that came before the first load
  let alive = true;
  const offs = [];

  // ---- DOM ----
  const filterInput = h('input', {id: 'hosts-filter', class: 'filter', type: 'search', placeholder: 'Filter: name, group, label or key=value',
    'aria-label': 'Filter hosts', autocomplete: 'off', spellcheck: 'false', value: params.q || ''});
  const stateSelect = h('select', {id: 'hosts-state', 'aria-label': 'State'},
    [['all', 'All states'], ['up', 'Up'], ['warning', 'Warning'], ['critical', 'Critical'], ['down', 'Down']]
      .map(([v, label]) => h('option', {value: v}, label)));
  stateSelect.value = stateFilter;
  const groupSelect = h('select', {id: 'hosts-group', 'aria-label': 'Group'}, h('option', {value: 'all'}, 'All groups'));
  const count = h('span', {id: 'hosts-count', class: 'count', 'aria-live': 'polite'}, '');
  const notice = h('div');

  const colgroup = h('colgroup', null, COLS.map((c) => h('col', {class: c.col})));
  const headRow = h('tr', null, COLS.map((c) =>
    h('th', {scope: 'col', 'data-sort': c.key, class: c.spark ? 'num' : null, title: `Sort by ${c.label.toLowerCase()}`},
      h('button', {type: 'button'}, c.label))));
  const topSpacer = h('tr', {class: 'spacer', 'aria-hidden': 'true'}, h('td', {colspan: COLS.length}));
  const bottomSpacer = h('tr', {class: 'spacer', 'aria-hidden': 'true'}, h('td', {colspan: COLS.length}));
  const tbody = h('tbody', null, topSpacer, bottomSpacer);
  const tableEl = h('table', {id: 'hosts-table', class: 'hosts-table', 'aria-label': 'Hosts'}, colgroup, h('thead', null, headRow), tbody);
  const emptyNote = h('p', {class: 'empty', hidden: true}, 'No host matches.');
  const scroller = h('div', {class: 'vscroll', id: 'hosts-scroll', tabindex: '0'}, tableEl, emptyNote);

  root.append(
    h('div', {class: 'screen-head'}, h('h1', null, 'Hosts')),
    notice,
    h('div', {class: 'toolbar'}, filterInput, stateSelect, groupSelect, count),
    scroller);

  if (filterInput.value) filter = parseFilter(filterInput.value);

  // ---- data ----
  function put(row) {
    if (!row || typeof row.name !== 'string') return false;
    const old = entries.get(row.name);
    const labels = Object.entries(row.labels || {}).map(([k, v]) => [k.toLowerCase(), String(v).toLowerCase()]);
    entries.set(row.name, {row, ver: old ? old.ver + 1 : 1, blob: searchBlob(row), labels});
    return !old;
  }

  function appendSparks(row) {
    const s = sparks.get(row.name);
    if (!s) return;
    for (const k of SPARK_KEYS) {
      const arr = s[k] || (s[k] = []);
      arr.push(typeof row[k] === 'number' ? row[k] : null);
      if (arr.length > SPARK_MAX) arr.splice(0, arr.length - SPARK_MAX);
    }
    sparkVer.set(row.name, (sparkVer.get(row.name) || 0) + 1);
  }

  function refreshGroups() {
    const groups = new Set();
    for (const e of entries.values()) for (const g of e.row.groups || []) groups.add(g);
    const sorted = [...groups].sort((a, b) => a.localeCompare(b));
    const have = [...groupSelect.options].slice(1).map((o) => o.value);
    if (have.length === sorted.length && have.every((g, i) => g === sorted[i])) return;
    const keep = groupSelect.value;
    groupSelect.replaceChildren(h('option', {value: 'all'}, 'All groups'), ...sorted.map((g) => h('option', {value: g}, g)));
    if (groupFilter !== 'all' && !groups.has(groupFilter)) groupSelect.append(h('option', {value: groupFilter}, groupFilter));
    groupSelect.value = groupFilter !== 'all' ? groupFilter : keep;
  }

  function matches(e) {
    const r = e.row;
    if (stateFilter !== 'all' && r.state !== stateFilter) return false;
    if (groupFilter !== 'all' && !(r.groups || []).includes(groupFilter)) return false;
    for (const w of filter.words) if (!e.blob.includes(w)) return false;
    for (const [k, v] of filter.labels) {
      if (!e.labels.some(([lk, lv]) => lk === k && (v === '' || lv === v))) return false;
    }
    return true;
  }

  function compare(a, b) {
    const ra = a.row, rb = b.row;
    if (!sort.key) {
      return (STATE_RANK[ra.state] ?? 4) - (STATE_RANK[rb.state] ?? 4) || ra.name.localeCompare(rb.name);
    }
    const va = sortValue(ra, sort.key), vb = sortValue(rb, sort.key);
    if (va === null || vb === null) {
      if (va === null && vb !== null) return 1;       // missing values last, either way
      if (vb === null && va !== null) return -1;
      return ra.name.localeCompare(rb.name);
    }
    const c = typeof va === 'string' ? va.localeCompare(vb) : va - vb;
    return c * sort.dir || ra.name.localeCompare(rb.name);
  }

  function rebuildView() {
    view = [];
    for (const e of entries.values()) if (matches(e)) view.push(e);
    view.sort(compare);
    viewDirty = false;
    setText(count, `${view.length} of ${entries.size} hosts`);
    emptyNote.hidden = view.length > 0 || !loaded;
    tableEl.setAttribute('aria-rowcount', String(view.length + 1));
  }

  // ---- rows ----
  function createRow() {
    const tr = h('tr', {class: 'row'});
    tr._cells = {};
    for (const c of COLS) {
      const td = h('td', {'data-col': c.key, class: c.spark ? (c.key === 'net' ? 'metric net' : 'metric') : null});
      const cell = {td};
      if (c.spark) {
        cell.canvas = sparkCanvas();
        cell.text = h('span', {class: 'v'});
        td.append(h('div', {class: 'mc'}, cell.canvas, cell.text));
      }
      tr._cells[c.key] = cell;
      tr.append(td);
    }
    tr._ver = -1;
    tr._sparkVer = -1;
    return tr;
  }

  function updateRow(tr, e) {
    const r = e.row;
    if (tr._ver !== e.ver) {
      tr._ver = e.ver;
      const state = r.state || 'unknown';
      setAttr(tr, 'data-host', r.name);
      setAttr(tr, 'data-state', state);
      const sc = tr._cells.state.td;
      if (sc.firstChild?.getAttribute?.('data-state') !== state) sc.replaceChildren(stateBadge(state));
      const nc = tr._cells.name.td;
      if (!nc.firstChild) {
        nc.append(h('a', {href: hostHref(r.name), class: 'host-link'}, r.name));
      }
      const tip = [r.name, r.os, (r.groups || []).join(', '),
        Object.entries(r.labels || {}).map(([k, v]) => `${k}=${v}`).join(' ')].filter(Boolean).join('\n');
      if (nc.title !== tip) nc.title = tip;
      for (const c of COLS) if (c.spark) setText(tr._cells[c.key].text, c.text(r));
    }
    const sv = sparkVer.get(r.name) || 0;
    if (tr._sparkVer !== sv) {
      tr._sparkVer = sv;
      const s = sparks.get(r.name);
      for (const c of COLS) {
        if (!c.spark) continue;
        drawSpark(tr._cells[c.key].canvas, s ? s[c.spark.key] : [], {
          max: c.spark.max, auto: c.spark.auto, values2: c.spark.key2 && s ? s[c.spark.key2] : null});
      }
    }
  }

  function schedule() {
    if (!frame && alive) frame = requestAnimationFrame(render);
  }

  // User actions (sort, filter) render at once; scrolling and live updates once per frame.
  function renderNow() {
    if (frame) cancelAnimationFrame(frame);
    render();
  }

  function render() {
    frame = 0;
    if (!alive) return;
    if (viewDirty) rebuildView();
    const headH = headRow.offsetHeight || 36;
    const top = scroller.scrollTop;
    const height = Math.max(scroller.clientHeight - headH, rowH);
    const start = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
    const end = Math.min(view.length, Math.ceil((top + height) / rowH) + OVERSCAN);
    topSpacer.firstChild.style.height = start * rowH + 'px';
    bottomSpacer.firstChild.style.height = (view.length - end) * rowH + 'px';

    const next = new Map();
    const order = [];
    const want = [];
    for (let i = start; i < end; i++) {
      const e = view[i];
      const name = e.row.name;
      let tr = rendered.get(name);
      if (!tr) tr = createRow();
      tr.setAttribute('aria-rowindex', String(i + 2));
      updateRow(tr, e);
      next.set(name, tr);
      order.push(tr);
      if (!sparks.has(name)) want.push(name);
    }
    rendered = next;
    if (order.length !== renderedOrder.length || order.some((tr, i) => tr !== renderedOrder[i])) {
      tbody.replaceChildren(topSpacer, ...order, bottomSpacer);
      renderedOrder = order;
    }
    if (!measured && order.length) {
      const real = order[0].getBoundingClientRect().height;
      measured = true;
      if (real > 0 && Math.abs(real - rowH) > 0.5) {
        rowH = real;
        schedule();
      }
    }
    if (want.length) requestSparks(want);
  }

  // ---- sparks ----
  function requestSparks(names) {
    const now = Date.now();
    for (const n of names) {
      if (sparkPending.has(n) || sparks.has(n)) continue;
      const failed = sparkFailed.get(n);
      if (failed && now - failed < 30000) continue;
      sparkQueue.add(n);
    }
    if (sparkQueue.size && !sparkTimer) sparkTimer = setTimeout(flushSparks, 120);
  }

  async function flushSparks() {
    sparkTimer = null;
    // only what is still visible
    const names = [...sparkQueue].filter((n) => rendered.has(n));
    sparkQueue.clear();
    for (let i = 0; i < names.length; i += SPARK_BATCH) {
      const batch = names.slice(i, i + SPARK_BATCH);
      batch.forEach((n) => sparkPending.add(n));
      fetchSparks(batch);
    }
  }

  async function fetchSparks(batch) {
    try {
      const d = await api.get('/api/v1/sparks?hosts=' + batch.map(api.enc).join(','));
      if (!alive) return;
      const got = (d && d.hosts) || {};
      for (const n of batch) {
        const s = Object.prototype.hasOwnProperty.call(got, n) ? got[n] : null;
        const entry = {};
        for (const k of SPARK_KEYS) entry[k] = s && Array.isArray(s[k]) ? s[k].slice(-SPARK_MAX) : [];
        sparks.set(n, entry);
        sparkVer.set(n, (sparkVer.get(n) || 0) + 1);
      }
      schedule();
    } catch (e) {
      const now = Date.now();
      for (const n of batch) sparkFailed.set(n, now);
    } finally {
      for (const n of batch) sparkPending.delete(n);
    }
  }

  // ---- events ----
  function setSort(key) {
    if (sort.key === key) sort.dir = -sort.dir;
    else sort = {key, dir: key === 'name' || key === 'state' ? 1 : -1};
    for (const th of headRow.children) {
      if (th.getAttribute('data-sort') === sort.key) th.setAttribute('aria-sort', sort.dir === 1 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
    viewDirty = true;
    scroller.scrollTop = 0;
    renderNow();
  }

  headRow.addEventListener('click', (ev) => {
    const th = ev.target.closest('th[data-sort]');
    if (th) setSort(th.getAttribute('data-sort'));
  });

  // Filtering 1,000 rows takes a millisecond or two: apply on every keystroke.
  const applyFilter = () => {
    const next = parseFilter(filterInput.value);
    if (JSON.stringify(next) === JSON.stringify(filter)) return;
    filter = next;
    viewDirty = true;
    scroller.scrollTop = 0;
    renderNow();
  };
  for (const ev of ['input', 'change', 'search']) filterInput.addEventListener(ev, applyFilter);
  stateSelect.addEventListener('change', () => {
    stateFilter = stateSelect.value;
    viewDirty = true;
    scroller.scrollTop = 0;
    renderNow();
  });
  groupSelect.addEventListener('change', () => {
    groupFilter = groupSelect.value;
    viewDirty = true;
    scroller.scrollTop = 0;
    renderNow();
  });
  scroller.addEventListener('scroll', schedule, {passive: true});
  const ro = new ResizeObserver(schedule);
  ro.observe(scroller);
  offs.push(onThemeChange(() => {
    for (const tr of rendered.values()) tr._sparkVer = -1;
    schedule();
  }));

  function applyRows(rows) {
    let added = false;
    for (const r of rows || []) {
      if (put(r)) added = true;
      appendSparks(r);
    }
    if (added) refreshGroups();
    viewDirty = true;
    schedule();
  }

  offs.push(live.on('hosts', (m) => {
    if (!loaded) { queued.push(m.rows || []); return; }
    applyRows(m.rows);
  }));
  offs.push(live.on('_reconnected', () => load()));

  async function load() {
    try {
      const d = await api.get('/api/v1/hosts');
      if (!alive) return;
      notice.replaceChildren();
      const fresh = new Set();
      for (const r of (d && d.hosts) || []) { put(r); fresh.add(r.name); }
      for (const n of [...entries.keys()]) if (!fresh.has(n)) entries.delete(n);
      loaded = true;
      for (const rows of queued) applyRows(rows);
      queued = [];
      refreshGroups();
      viewDirty = true;
      renderNow();
    } catch (e) {
      if (alive && e.status !== 401) notice.replaceChildren(errorNotice(e, 'the hosts'));
    }
  }

  live.watch({watch: 'hosts'});
  setText(count, 'Loading…');
  load();

  return {
    destroy() {
      alive = false;
      offs.forEach((f) => f());
      ro.disconnect();
      clearTimeout(sparkTimer);
      if (frame) cancelAnimationFrame(frame);
    },
  };
}
