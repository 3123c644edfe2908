// Host detail: history charts (Dygraphs, synchronised zoom and crosshair) and
// the live state of one host: cores, processes, disks, mounts, interfaces.

import * as api from '../api.js';
import * as live from '../live.js';
import * as fmt from '../format.js';
import {getSession} from '../app.js';
import {h, fill, setText, setAttr, stateBadge, table, fillRows} from '../dom.js';
import {DetailChart, ChartSync, onThemeChange, dygraphsAvailable} from '../charts.js';
import {sortAlerts, cmdState, timeCell, errorNotice, severityBadge, alertValue, level, pctBar} from './common.js';

const RANGES = [
  ['15m', 15 * 60e3],
  ['1h', 3600e3],
  ['6h', 6 * 3600e3],
  ['24h', 24 * 3600e3],
  ['7d', 7 * 86400e3],
  ['30d', 30 * 86400e3],
];
const LIVE_RANGES = new Set(['15m', '1h']);
const REFRESH_MS = 30000;

const pctAxis = (v) => `${fmt.short(v)}%`;
const rateAxis = (v) => `${fmt.short(v)}B/s`;

// label(key, count): the line's name in the legend.
const CHARTS = [
  {name: 'cpu', title: 'CPU', unit: '%', range: [0, 100], fmt: fmt.pct, axis: pctAxis,
    metrics: [['cpu_percent', (k, n) => (n > 1 && k ? k : 'cpu')]]},
  {name: 'load', title: 'Load average', unit: '', fmt: (v) => fmt.num(v, 2), axis: fmt.short,
    metrics: [['load1', (k, n) => (n > 1 && k ? k : 'load1')]]},
  {name: 'memory', title: 'Memory and swap', unit: '%', range: [0, 100], fmt: fmt.pct, axis: pctAxis,
    metrics: [['memory_used_percent', (k, n) => (n > 1 && k ? `memory ${k}` : 'memory')],
      ['swap_used_percent', (k, n) => (n > 1 && k ? `swap ${k}` : 'swap')]]},
  {name: 'disk-usage', title: 'Disk usage', unit: '%', range: [0, 100], fmt: fmt.pct, axis: pctAxis,
    metrics: [['mount_used_percent', (k) => k || 'used']]},
  {name: 'disk-io', title: 'Disk I/O', fmt: fmt.rate, axis: rateAxis,
    metrics: [['disk_read_bytes_per_second', (k) => (k ? `${k} read` : 'read')],
      ['disk_write_bytes_per_second', (k) => (k ? `${k} write` : 'write')]]},
  {name: 'network', title: 'Network', fmt: fmt.rate, axis: rateAxis,
    metrics: [['network_rx_bytes_per_second', (k) => (k ? `${k} rx` : 'rx')],
      ['network_tx_bytes_per_second', (k) => (k ? `${k} tx` : 'tx')]]},
  {name: 'network-util', title: 'Network utilisation', fmt: fmt.pct, axis: pctAxis,
    metrics: [['network_utilization_percent', (k) => k || 'utilisation']]},
  {name: 'temperature', title: 'Temperature', fmt: (v) => fmt.celsius(v, 1), axis: (v) => `${fmt.short(v)}°`,
    metrics: [['temperature_celsius', (k) => k || 'temperature']]},
  {name: 'gpu', title: 'GPU', range: [0, 100], fmt: fmt.pct, axis: pctAxis, hideEmpty: true,
    metrics: [['gpu_utilization_percent', (k) => (k !== '' && k != null ? `GPU ${k}` : 'GPU')]]},
];

// metric name → the chart that draws it (for links to a metric).
const CHART_FOR_METRIC = Object.fromEntries(CHARTS.flatMap((c) => c.metrics.map(([m]) => [m, c.name])));

const PROC_HEADERS = [['PID', 'num'], 'Name', 'User', ['CPU %', 'num'], ['RSS', 'num']];
const MOUNT_HEADERS = ['Mount', 'Device', 'FS', ['Used', 'num'], ['Size', 'num'], ['Use', 'num']];
const SMART_HEADERS = ['Device', 'Model', 'Health', ['Temp', 'num'], ['Power-on hours', 'num'], ['Read', 'num'], ['Write', 'num'], ['Busy', 'num']];
const IF_HEADERS = ['Interface', 'State', ['Speed', 'num'], 'Duplex', ['Receive', 'num'], ['Transmit', 'num'], ['Util', 'num'], ['MTU', 'num'], 'MAC'];
const TEMP_HEADERS = ['Chip', 'Sensor', ['Temp', 'num'], ['High', 'num'], ['Critical', 'num']];
const GPU_HEADERS = [['#', 'num'], 'Name', ['Util', 'num'], ['Memory', 'num'], ['Temp', 'num'], ['Power', 'num'], ['Fan', 'num']];
const ALERT_HEADERS = ['Severity', 'State', 'Alert', ['Value', 'num'], 'Since', 'Acknowledged'];
const CMD_HEADERS = ['Time', 'Requester', 'Action', 'State', ['Exit code', 'num']];

function panel(title, body, attrs = {}, extra = null) {
  return h('section', {class: 'panel', ...attrs},
    h('div', {class: 'panel-head'}, h('h2', null, title), extra),
    body);
}

// params.at (ms, from an alert's "show on chart"): the charts open on the
// hour around that moment; params.metric scrolls to its chart.
// Operators and admins open a shell on the host from its page.
function terminalLink(name) {
  const roles = (getSession() || {}).roles || [];
  if (!roles.includes('operator') && !roles.includes('admin')) return null;
  return h('a', {href: '#/terminal?host=' + encodeURIComponent(name), class: 'button host-terminal', id: 'host-terminal'},
    'Terminal');
}

export function hostScreen(root, name, params = {}) {
  let alive = true;
  const offs = [];
  let detail = {host: null, info: null, latest: null};
  const alerts = new Map();
  let range = {kind: '1h', from: 0, to: 0};
  let refreshTimer = null;
  let loadSeq = 0;

  // ---- header ----
  const title = h('h1', {id: 'host-title'}, h('span', {class: 'host-name'}, name));
  const meta = h('div', {class: 'host-meta', id: 'host-meta'});
  const notice = h('div');
  const errors = h('ul', {class: 'errors', id: 'host-errors'});
  const errorsPanel = panel('Collector errors', errors, {hidden: true});

  // ---- tiles ----
  const tiles = {};
  const tileBox = h('div', {class: 'tiles', id: 'host-tiles'});
  for (const [key, label, id] of [['cpu', 'CPU', 'host-cpu'], ['load', 'Load', 'host-load'], ['memory', 'Memory', 'host-memory'],
    ['swap', 'Swap', 'host-swap'], ['disk', 'Disk (fullest)', 'host-disk'], ['net', 'Network', 'host-net'],
    ['temperature', 'Temperature', 'host-temperature'], ['gpu', 'GPU', 'host-gpu']]) {
    const v = h('span', {class: 'v'}, fmt.NONE);
    const s = h('span', {class: 's'}, '');
    const bar = h('span');
    const el = h('div', {class: 'panel tile', id, 'data-tile': key},
      h('span', {class: 'k'}, label), v, s, h('div', {class: 'meter', 'aria-hidden': 'true'}, bar));
    tiles[key] = {el, v, s, bar};
    tileBox.append(el);
  }

  // ---- range bar ----
  const rangeButtons = RANGES.map(([key]) => h('button', {type: 'button', class: 'btn', 'data-range': key, 'aria-pressed': 'false'}, key));
  const fromInput = h('input', {id: 'range-from', type: 'datetime-local', 'aria-label': 'From'});
  const toInput = h('input', {id: 'range-to', type: 'datetime-local', 'aria-label': 'To'});
  const applyBtn = h('button', {id: 'range-apply', type: 'button', class: 'btn'}, 'Apply');
  const rangeNote = h('span', {class: 'range-note', id: 'range-note'});
  const rangeBar = h('div', {class: 'rangebar', role: 'group', 'aria-label': 'Time range'},
    h('div', {class: 'seg'}, rangeButtons),
    h('span', {class: 'custom-range'}, fromInput, h('span', null, 'to'), toInput, applyBtn),
    rangeNote);

  // ---- charts ----
  const charts = CHARTS.map((def) => {
    const plot = h('div', {class: 'chart-plot'});
    const source = h('span', {class: 'muted source'});
    const empty = h('div', {class: 'chart-empty'}, 'No data in this range.');
    const card = h('div', {class: 'panel chart-card is-empty', 'data-chart': def.name, 'data-points': '0', role: 'figure', 'aria-label': def.title},
      h('div', {class: 'panel-head'}, h('h2', null, def.title), h('span', {class: 'spacer'}), source),
      plot, empty);
    const chart = new DetailChart(card, plot, {valueFormatter: def.fmt, axisFormatter: def.axis, valueRange: def.range || null});
    return {def, card, chart, source, empty};
  });
  const sync = new ChartSync();
  const chartGrid = h('div', {class: 'grid charts', id: 'host-charts'}, charts.map((c) => c.card));

  // ---- live tables ----
  const cores = h('div', {class: 'cores', id: 'host-cores', 'aria-label': 'CPU cores'});
  const coresCount = h('span', {class: 'muted'});
  const procTable = h('table', {id: 'host-processes'},
    h('thead', null, h('tr', null, PROC_HEADERS.map((x) => h('th', {class: Array.isArray(x) ? x[1] : null, scope: 'col'}, Array.isArray(x) ? x[0] : x)))));
  const procCpu = h('tbody', {'data-top': 'cpu'});
  const procMem = h('tbody', {'data-top': 'memory'});
  procTable.append(procCpu, procMem);
  const mountsTable = table({id: 'host-mounts'}, MOUNT_HEADERS, []);
  const smartTable = table({id: 'host-smart'}, SMART_HEADERS, []);
  const ifTable = table({id: 'host-interfaces'}, IF_HEADERS, []);
  const tempTable = table({id: 'host-temps'}, TEMP_HEADERS, []);
  const gpuTable = table({id: 'host-gpus'}, GPU_HEADERS, []);
  const gpuPanel = panel('GPUs', h('div', {class: 'table-wrap'}, gpuTable), {hidden: true});
  const liveGrid = h('div', {class: 'grid live-grid'},
    panel('CPU cores', cores, {class: 'panel wide'}, coresCount),
    panel('Top processes', h('div', {class: 'table-wrap'}, procTable)),
    panel('Mounts', h('div', {class: 'table-wrap'}, mountsTable)),
    panel('Disks (SMART)', h('div', {class: 'table-wrap'}, smartTable), {class: 'panel wide'}),
    panel('Interfaces', h('div', {class: 'table-wrap'}, ifTable), {class: 'panel wide'}),
    panel('Temperatures', h('div', {class: 'table-wrap'}, tempTable)),
    gpuPanel);

  // ---- info, alerts, commands ----
  const info = h('dl', {class: 'info two', id: 'host-info'});
  const alertsTable = table({id: 'host-alerts'}, ALERT_HEADERS, [], 'No alerts.');
  const cmdTable = table({id: 'host-commands'}, CMD_HEADERS, [], 'No commands.');
  const lower = h('div', {class: 'grid live-grid'},
    panel('Alerts', h('div', {class: 'table-wrap'}, alertsTable), {class: 'panel wide'}),
    panel('Commands', h('div', {class: 'table-wrap'}, cmdTable), {class: 'panel wide'}),
    panel('Host', info, {class: 'panel wide'}));

  fill(root,
    h('a', {href: '#/hosts', class: 'back'}, '← Hosts'),
    h('div', {class: 'host-head'}, title, terminalLink(name)),
    meta,
    notice,
    errorsPanel,
    tileBox,
    rangeBar,
    chartGrid,
    liveGrid,
    lower);

  // ---- rendering: header and tiles ----
  function renderTitle() {
    const st = (detail.host && detail.host.state) || 'unknown';
    setAttr(title, 'data-state', st);
    const badge = title.querySelector('.state');
    if (!badge || badge.getAttribute('data-state') !== st) {
      title.replaceChildren(h('span', {class: 'host-name'}, name), ' ', stateBadge(st));
    }
  }

  function renderMeta() {
    const i = detail.info || {};
    const hr = detail.host || {};
    const L = detail.latest;
    const os = [i.osName, i.osVersion].filter(Boolean).join(' ') || hr.os;
    meta.replaceChildren(...[
      os ? h('span', null, os) : null,
      i.kernel ? h('span', null, `kernel ${i.kernel}`) : null,
      i.architecture ? h('span', null, i.architecture) : null,
      L && L.cpu && typeof L.cpu.uptime === 'number' ? h('span', null, `up ${fmt.duration(L.cpu.uptime)}`) : null,
      hr.lastSeen ? h('span', null, 'last report ', h('span', fmt.relTimeAttrs(hr.lastSeen), fmt.ago(hr.lastSeen))) : null,
      hr.online === false ? h('span', null, 'offline') : null,
      (hr.groups || []).length ? h('span', null, (hr.groups || []).map((g) => h('span', {class: 'tag'}, g))) : null,
    ].filter(Boolean));
  }

  function tile(key, value, sub, p) {
    const t = tiles[key];
    setText(t.v, value);
    setText(t.s, sub || '');
    const w = typeof p === 'number' ? Math.max(0, Math.min(100, p)) : 0;
    t.bar.style.width = w + '%';
    setAttr(t.bar, 'data-level', level(p));
  }

  function renderTiles() {
    const hr = detail.host || {};
    const L = detail.latest || {};
    const cpu = L.cpu || {};
    const mem = L.memory || {};
    const cpuPct = typeof cpu.total === 'number' ? cpu.total : hr.cpu;
    const procs = cpu.processes;
    tile('cpu', fmt.pct(cpuPct), typeof procs === 'number' ? `${fmt.int(cpu.running)} running · ${fmt.int(procs)} processes` : '', cpuPct);
    const threads = detail.info && detail.info.cpuThreads;
    const l1 = typeof cpu.load1 === 'number' ? cpu.load1 : hr.load1;
    tile('load', fmt.num(l1, 2), `${fmt.num(cpu.load5, 2)} · ${fmt.num(cpu.load15, 2)}${threads ? ` · ${threads} threads` : ''}`,
      threads && typeof l1 === 'number' ? (l1 / threads) * 100 : null);
    const memPct = typeof mem.percent === 'number' ? mem.percent : hr.memory;
    tile('memory', fmt.pct(memPct), mem.total ? `${fmt.bytes(mem.used)} of ${fmt.bytes(mem.total)} · ${fmt.bytes(mem.available)} free` : '', memPct);
    const swapPct = mem.swapTotal > 0 ? (mem.swapUsed / mem.swapTotal) * 100 : null;
    tile('swap', mem.swapTotal === 0 ? 'none' : fmt.pct(swapPct), mem.swapTotal ? `${fmt.bytes(mem.swapUsed)} of ${fmt.bytes(mem.swapTotal)}` : '', swapPct);
    let fullest = null;
    for (const m of L.mounts || []) if (typeof m.percent === 'number' && (!fullest || m.percent > fullest.percent)) fullest = m;
    tile('disk', fmt.pct(hr.disk ?? (fullest && fullest.percent)), fullest ? fullest.mount : '', hr.disk ?? (fullest && fullest.percent));
    tile('net', `↓ ${fmt.rate(hr.netRx)}`, `↑ ${fmt.rate(hr.netTx)}`, null);
    let hottest = null;
    for (const t of L.temperatures || []) if (typeof t.celsius === 'number' && (!hottest || t.celsius > hottest.celsius)) hottest = t;
    tile('temperature', fmt.celsius(hr.temperature ?? (hottest && hottest.celsius)), hottest ? [hottest.chip, hottest.label].filter(Boolean).join(' ') : '',
      hottest && hottest.critical ? (hottest.celsius / hottest.critical) * 100 : null);
    const gpus = L.gpus || [];
    tiles.gpu.el.hidden = hr.gpu == null && gpus.length === 0;
    tile('gpu', fmt.pct(hr.gpu), gpus.length ? `${gpus.length} GPU${gpus.length > 1 ? 's' : ''}` : '', hr.gpu);
  }

  // ---- rendering: live tables ----
  function renderCores() {
    const list = ((detail.latest && detail.latest.cpu && detail.latest.cpu.cores) || []).slice().sort((a, b) => a.index - b.index);
    setText(coresCount, list.length ? `${list.length}` : '');
    if (!list.length) {
      if (!cores.querySelector('.empty')) cores.replaceChildren(h('p', {class: 'empty'}, 'No per-core data yet.'));
      return;
    }
    if (cores.querySelectorAll('.core').length !== list.length) {
      cores.replaceChildren(...list.map((c) => h('div', {class: 'core', 'data-core': c.index},
        h('span', {class: 'k'}, `cpu${c.index}`), h('span', {class: 'bar'}, h('span')), h('span', {class: 'num'}, ''))));
    }
    list.forEach((c, i) => {
      const el = cores.children[i];
      setAttr(el, 'data-core', c.index);
      el.title = `cpu${c.index}: ${fmt.pct(c.percent)}${c.mhz ? ` at ${fmt.mhz(c.mhz)}` : ''}`;
      const bar = el.children[1].firstChild;
      bar.style.width = (typeof c.percent === 'number' ? Math.max(0, Math.min(100, c.percent)) : 0) + '%';
      setAttr(bar, 'data-level', level(c.percent));
      setText(el.children[2], fmt.pct(c.percent, 0));
    });
  }

  function procRows(tbody, label, list) {
    const rows = [h('tr', {class: 'section'}, h('th', {colspan: PROC_HEADERS.length, scope: 'rowgroup'}, label))];
    for (const p of list || []) {
      rows.push(h('tr', {'data-pid': p.pid},
        h('td', {class: 'num'}, String(p.pid ?? '')),
        h('td', {class: 'ellipsis', title: p.name || ''}, p.name || ''),
        h('td', null, p.user || ''),
        h('td', {class: 'num'}, fmt.pct(p.cpu)),
        h('td', {class: 'num'}, fmt.bytes(p.rss))));
    }
    if (!list || !list.length) rows.push(h('tr', {class: 'empty-row'}, h('td', {colspan: PROC_HEADERS.length, class: 'muted'}, 'No data.')));
    tbody.replaceChildren(...rows);
  }

  function renderTables() {
    const L = detail.latest || {};
    procRows(procCpu, 'By CPU', L.topCpu);
    procRows(procMem, 'By memory', L.topMemory);

    fillRows(mountsTable.tBodies[0], MOUNT_HEADERS, (L.mounts || []).map((m) => ({
      attrs: {'data-mount': m.mount},
      cells: [
        h('span', {class: 'mono'}, m.mount || ''),
        m.device || '',
        m.fs || '',
        fmt.bytes(m.used),
        fmt.bytes(m.total),
        m.error ? h('span', {class: 'muted', title: m.error}, 'error') : h('span', {class: 'nowrap'}, pctBar(m.percent), fmt.pct(m.percent)),
      ],
    })), 'No mounts reported.');

    fillRows(smartTable.tBodies[0], SMART_HEADERS, (L.disks || []).map((d) => {
      const health = d.smart === 'passed' || d.smart === 'failed' ? d.smart : 'unknown';
      return {
        attrs: {'data-device': d.device, 'data-health': health},
        cells: [
          h('span', {class: 'mono'}, d.device || ''),
          h('span', {title: d.serial ? `serial ${d.serial}` : ''}, d.model || '—'),
          h('span', {class: 'health', 'data-health': health}, health),
          fmt.celsius(d.smartTemp),
          fmt.int(d.powerOnHours),
          fmt.rate(d.readBps),
          fmt.rate(d.writeBps),
          fmt.pct(d.busy, 0),
        ],
      };
    }), 'No disks reported.');

    fillRows(ifTable.tBodies[0], IF_HEADERS, (L.interfaces || []).map((n) => ({
      attrs: {'data-interface': n.name},
      cells: [
        h('span', {class: 'mono'}, n.name || '', n.primary ? h('span', {class: 'pill', title: 'primary interface'}, ' primary') : null),
        n.oper || '—',
        fmt.speed(n.speedMbps),
        n.duplex || '—',
        fmt.rate(n.rxBps),
        fmt.rate(n.txBps),
        fmt.pct(n.util),
        n.mtu ? String(n.mtu) : '—',
        h('span', {class: 'mono'}, n.mac || '—'),
      ],
    })), 'No interfaces reported.');

    fillRows(tempTable.tBodies[0], TEMP_HEADERS, (L.temperatures || []).map((t) => [
      t.chip || '', t.label || '', fmt.celsius(t.celsius, 1), fmt.celsius(t.high), fmt.celsius(t.critical),
    ]), 'No sensors reported.');

    const gpus = L.gpus || [];
    gpuPanel.hidden = gpus.length === 0;
    fillRows(gpuTable.tBodies[0], GPU_HEADERS, gpus.map((g) => [
      String(g.index ?? ''), g.name || '', fmt.pct(g.util),
      g.memTotal ? `${fmt.bytes(g.memUsed)} / ${fmt.bytes(g.memTotal)}` : fmt.pct(g.memUtil),
      fmt.celsius(g.temp), typeof g.power === 'number' ? `${g.power.toFixed(0)} W` : fmt.NONE, fmt.pct(g.fan, 0),
    ]));

    const errs = L.errors || [];
    errorsPanel.hidden = errs.length === 0;
    errors.replaceChildren(...errs.map((e) => h('li', null, h('b', null, e.collector || 'collector'), e.message || '')));
  }

  function renderInfo() {
    const i = detail.info;
    const L = detail.latest || {};
    if (!i) {
      info.replaceChildren(h('dt', null, 'Info'), h('dd', {class: 'muted'}, 'The agent has not registered yet.'));
      return;
    }
    const lines = (arr) => arr.length ? arr.map((t) => h('span', {class: 'line'}, t)) : fmt.NONE;
    const nics = (L.interfaces || []).length
      ? L.interfaces.map((n) => [n.name, fmt.speed(n.speedMbps), n.duplex, n.oper, n.mac].filter((x) => x && x !== fmt.NONE).join(' · '))
      : i.primaryInterface ? [[i.primaryInterface, fmt.speed(i.primarySpeedMbps), i.primaryDuplex].filter((x) => x && x !== fmt.NONE).join(' · ')] : [];
    const rows = [
      ['Hostname', i.hostname],
      ['OS', i.osName],
      ['Version', i.osVersion],
      ['Kernel', i.kernel],
      ['Architecture', i.architecture],
      ['CPU', i.cpuModel],
      ['Cores / threads', i.cpuCores || i.cpuThreads ? `${i.cpuCores ?? '—'} / ${i.cpuThreads ?? '—'}` : null],
      ['Memory', i.memoryTotal ? fmt.bytes(i.memoryTotal) : null],
      ['Agent', i.agentVersion],
      ['Addresses', lines((i.addresses || []).map((a) => `${a.interface}: ${a.address}${a.prefix != null ? '/' + a.prefix : ''}`))],
      ['NICs', lines(nics)],
      ['MACs', (L.interfaces || []).length ? null : lines((i.macs || []).map((m) => `${m.interface}: ${m.mac}`))],
      ['Boot ID', i.bootId ? h('span', {class: 'mono'}, i.bootId) : null],
      ['Machine ID', i.machineId ? h('span', {class: 'mono'}, i.machineId) : null],
      ['Labels', Object.keys(i.labels || {}).length ? Object.entries(i.labels).map(([k, v]) => h('span', {class: 'tag', title: `${k}=${v}`}, `${k}=${v}`)) : null],
      ['Registered', i.registeredAt ? fmt.dateTime(i.registeredAt) : null],
    ];
    info.replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined && v !== '')
      .flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
  }

  function renderAlerts() {
    const list = sortAlerts([...alerts.values()]);
    fillRows(alertsTable.tBodies[0], ALERT_HEADERS, list.map((a) => ({
      attrs: {'data-alert-id': a.id, 'data-severity': a.severity, 'data-alert-state': a.state},
      cells: [
        severityBadge(a.severity),
        a.state || '',
        h('span', {title: a.description || ''}, a.summary || a.rule || ''),
        alertValue(a),
        h('span', {...fmt.relTimeAttrs(a.startedAt)}, fmt.ago(a.startedAt)),
        a.acknowledged ? (a.acknowledgedBy ? `yes (${a.acknowledgedBy})` : 'yes') : a.silencedUntil && a.silencedUntil > Date.now() ? 'silenced' : 'no',
      ],
    })), 'No alerts.');
  }

  function renderCommands(cmds) {
    fillRows(cmdTable.tBodies[0], CMD_HEADERS, (cmds || []).map((c) => {
      const mine = (c.hosts || []).find((x) => x.host === name) || {};
      return {
        attrs: {'data-command-id': c.id},
        cells: [
          timeCell(c.submittedAt),
          c.requester || '—',
          h('span', {class: 'cmd-action', title: c.reason ? `${c.action} — ${c.reason}` : c.action || ''}, c.action || '—'),
          cmdState(mine.state || c.state),
          mine.exitCode != null ? String(mine.exitCode) : '—',
        ],
      };
    }), 'No commands.');
  }

  function renderLive() {
    renderTitle();
    renderMeta();
    renderTiles();
    renderCores();
    renderTables();
  }

  // ---- charts ----
  function currentWindow() {
    if (range.kind === 'custom') return [range.from, range.to];
    const span = RANGES.find(([k]) => k === range.kind)[1];
    const to = Date.now();
    return [to - span, to];
  }

  async function fetchMetric(metric, from, to) {
    const q = `metric=${api.enc(metric)}&from=${Math.floor(from)}&to=${Math.ceil(to)}`;
    return api.get(`/api/v1/hosts/${api.enc(name)}/series?${q}`);
  }

  async function loadCharts({resetZoom = false} = {}) {
    const seq = ++loadSeq;
    const [from, to] = currentWindow();
    if (!dygraphsAvailable()) {
      setText(rangeNote, 'Charts unavailable: Dygraphs did not load.');
      return;
    }
    const metrics = [...new Set(CHARTS.flatMap((c) => c.metrics.map(([m]) => m)))];
    const answers = new Map();
    await Promise.all(metrics.map(async (m) => {
      try { answers.set(m, await fetchMetric(m, from, to)); } catch (e) { answers.set(m, {error: e}); }
    }));
    if (!alive || seq !== loadSeq) return;
    sync.detach();
    let source = null, step = null;
    for (const c of charts) {
      const series = [];
      let src = null, failed = null;
      for (const [metric, label] of c.def.metrics) {
        const a = answers.get(metric);
        if (!a || a.error) { failed = a && a.error; continue; }
        if (!src) src = a;
        const list = a.series || [];
        for (const s of list) {
          series.push({label: label(s.key, list.length), points: (s.points || []).map((p) => [p[0], p[1]])});
        }
      }
      if (c.def.hideEmpty) c.card.hidden = series.length === 0;
      let n = 0;
      if (c.card.hidden) c.chart.destroy();
      else n = c.chart.set(series, {resetZoom});
      setAttr(c.card, 'data-points', n);
      setAttr(c.card, 'data-series', series.length);
      if (src) {
        setAttr(c.card, 'data-source', src.source || '');
        setText(c.source, src.source ? `${src.source}${src.stepSeconds ? ` · ${fmtStep(src.stepSeconds)}` : ''}` : '');
        source = source || src.source;
        step = step || src.stepSeconds;
      }
      setText(c.empty, failed && !series.length ? `Could not load: ${failed.message}` : 'No data in this range.');
    }
    sync.update(charts.map((c) => c.chart));
    setText(rangeNote, `${fmt.dateTime(from)} → ${fmt.dateTime(to)}${source ? ` · ${source}` : ''}${step ? `, ${fmtStep(step)} step` : ''} · drag to zoom, double-click to reset`);
  }

  function selectRange(kind, from, to) {
    range = {kind, from, to};
    for (const b of rangeButtons) b.setAttribute('aria-pressed', String(b.getAttribute('data-range') === kind));
    const [f, t] = currentWindow();
    fromInput.value = fmt.localInput(f);
    toInput.value = fmt.localInput(t);
    clearInterval(refreshTimer);
    refreshTimer = null;
    if (LIVE_RANGES.has(kind)) refreshTimer = setInterval(() => loadCharts(), REFRESH_MS);
    loadCharts({resetZoom: true});
  }

  rangeBar.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-range]');
    if (b) selectRange(b.getAttribute('data-range'));
  });
  applyBtn.addEventListener('click', () => {
    const f = new Date(fromInput.value).getTime();
    const t = new Date(toInput.value).getTime();
    if (!Number.isFinite(f) || !Number.isFinite(t) || f >= t) {
      setText(rangeNote, 'Choose a start before the end.');
      return;
    }
    selectRange('custom', f, t);
  });

  offs.push(onThemeChange(() => charts.forEach((c) => c.chart.retheme())));

  // ---- data ----
  async function load() {
    try {
      const d = await api.get(`/api/v1/hosts/${api.enc(name)}`);
      if (!alive) return;
      notice.replaceChildren();
      detail = {host: d.host, info: d.info, latest: d.latest};
      alerts.clear();
      for (const a of d.alerts || []) alerts.set(a.id, a);
      renderLive();
      renderInfo();
      renderAlerts();
      renderCommands(d.commands);
    } catch (e) {
      if (!alive || e.status === 401) return;
      notice.replaceChildren(e.status === 404
        ? h('div', {class: 'notice', role: 'status'}, 'No host with this name is known to the console.')
        : errorNotice(e, 'this host'));
    }
  }

  offs.push(live.on('host', (m) => {
    if (m.host !== name || !m.detail) return;
    if (m.detail.host) detail.host = m.detail.host;
    if (m.detail.latest) detail.latest = m.detail.latest;
    renderLive();
    if (Array.isArray(m.detail.alerts)) {
      // the host's current alerts; keep resolved ones we already show
      for (const a of m.detail.alerts) alerts.set(a.id, a);
      renderAlerts();
    }
  }));
  offs.push(live.on('alert', (m) => {
    const a = m.alert;
    if (!a || a.host !== name || a.id == null) return;
    alerts.set(a.id, a);
    renderAlerts();
  }));
  offs.push(live.on('_reconnected', load));

  live.watch({watch: 'host', host: name});
  renderLive();
  renderInfo();
  renderAlerts();
  load();
  const at = Number(params.at);
  if (Number.isFinite(at) && at > 0) {
    selectRange('custom', at - 30 * 60000, Math.min(at + 30 * 60000, Date.now()));
    const chart = CHART_FOR_METRIC[params.metric];
    const card = chart && root.querySelector(`[data-chart="${chart}"]`);
    if (card) card.scrollIntoView({block: 'center'});
  } else {
    selectRange('1h');
  }

  return {
    destroy() {
      alive = false;
      clearInterval(refreshTimer);
      offs.forEach((f) => f());
      sync.detach();
      charts.forEach((c) => c.chart.destroy());
    },
  };
}

function fmtStep(s) {
  if (s >= 86400) return `${s / 86400} d`;
  if (s >= 3600) return `${s / 3600} h`;
  if (s >= 60) return `${s / 60} min`;
  return `${s} s`;
}
