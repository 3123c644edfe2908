// Overview: counts by state, firing alerts, busiest hosts, fleet charts, recent commands.

import * as api from '../api.js';
import * as live from '../live.js';
import * as fmt from '../format.js';
import {h, fill, setText, setAttr, table, fillRows} from '../dom.js';
import {TimeChart} from '../charts.js';
import {sortAlerts, cmdState, timeCell, hostLink, errorNotice, severityBadge} from './common.js';

const STATES = [
  ['total', 'Hosts'],
  ['up', 'Up'],
  ['warning', 'Warning'],
  ['critical', 'Critical'],
  ['down', 'Down'],
];

const BUSIEST = [
  ['cpu', 'CPU', fmt.pct],
  ['memory', 'Memory', fmt.pct],
  ['disk', 'Disk', fmt.pct],
  ['temperature', 'Temperature', (v) => fmt.celsius(v)],
  ['gpu', 'GPU', fmt.pct],
];

const CMD_HEADERS = ['Time', 'Requester', 'Action', 'State', 'Hosts'];

export function overviewScreen(root) {
  const firing = new Map();
  const offs = [];

  const updated = h('span', {class: 'sub'});
  const notice = h('div');

  const counts = h('div', {class: 'counts', id: 'overview-counts'}, STATES.map(([key, label]) =>
    h('a', {class: 'panel count-card', 'data-state': key, href: key === 'total' ? '#/hosts' : `#/hosts?state=${key}`, 'data-zero': 'true'},
      h('span', {class: 'count-value', 'data-count': key}, '—'),
      h('span', {class: 'count-label muted'}, key === 'total' ? label : h('span', {class: 'state', 'data-state': key}, label)))));

  const alertList = h('ul', {class: 'alert-list', id: 'overview-alerts', 'aria-label': 'Firing alerts'});
  const alertEmpty = h('p', {class: 'empty', hidden: true}, 'No alerts are firing.');
  const alertCount = h('span', {class: 'muted'});

  const busiest = h('div', {class: 'busiest', id: 'overview-busiest'});
  const busiestLists = {};
  for (const [key, label] of BUSIEST) {
    const ol = h('ol');
    busiestLists[key] = ol;
    busiest.append(h('section', {'data-busiest': key}, h('h3', null, label), ol));
  }

  const cpuBox = h('div', {class: 'timechart', id: 'fleet-cpu', role: 'img', 'aria-label': 'Fleet CPU, last hour'});
  const netBox = h('div', {class: 'timechart', id: 'fleet-net', role: 'img', 'aria-label': 'Fleet network, last hour'});
  const cpuNow = h('span', {class: 'chart-now'});
  const netNow = h('span', {class: 'chart-now'});

  const cmdTable = table({id: 'recent-commands'}, CMD_HEADERS, [], 'No commands yet.');
  const cmdBody = cmdTable.tBodies[0];

  fill(root,
    h('div', {class: 'screen-head'}, h('h1', null, 'Overview'), updated),
    notice,
    counts,
    h('div', {class: 'grid overview-grid'},
      h('section', {class: 'panel'},
        h('div', {class: 'panel-head'}, h('h2', null, 'Firing alerts'), alertCount),
        alertList, alertEmpty),
      h('div', {class: 'stack'},
        h('section', {class: 'panel'},
          h('div', {class: 'panel-head'}, h('h2', null, 'Fleet CPU'), h('span', {class: 'muted'}, 'average, last hour'),
            h('span', {class: 'spacer'}), cpuNow),
          h('div', {class: 'panel-body'}, cpuBox)),
        h('section', {class: 'panel'},
          h('div', {class: 'panel-head'}, h('h2', null, 'Fleet network'),
            h('span', {class: 'muted'}, h('span', {class: 'legend-dot c1'}), 'rx', h('span', {class: 'legend-dot c2'}), 'tx'),
            h('span', {class: 'spacer'}), netNow),
          h('div', {class: 'panel-body'}, netBox))),
      h('section', {class: 'panel wide'},
        h('div', {class: 'panel-head'}, h('h2', null, 'Busiest hosts')),
        busiest),
      h('section', {class: 'panel wide'},
        h('div', {class: 'panel-head'}, h('h2', null, 'Recent commands')),
        h('div', {class: 'table-wrap'}, cmdTable))));

  const cpuChart = new TimeChart(cpuBox, {yMax: 100, yFormat: (v) => v.toFixed(0) + '%', valueFormat: fmt.pct});
  const netChart = new TimeChart(netBox, {valueFormat: fmt.rate, yFormat: (v) => fmt.short(v) + 'B/s'});

  function renderAlerts() {
    const list = sortAlerts([...firing.values()]);
    alertList.replaceChildren(...list.map((a) =>
      h('li', {'data-alert-id': a.id, 'data-severity': a.severity, 'data-host': a.host},
        severityBadge(a.severity),
        hostLink(a.host, {class: 'alert-host'}),
        h('span', {class: 'alert-summary', title: a.description || a.summary || ''}, a.summary || a.rule || ''),
        h('span', {class: 'alert-since', ...fmt.relTimeAttrs(a.startedAt)}, fmt.ago(a.startedAt)))));
    alertEmpty.hidden = list.length > 0;
    setText(alertCount, list.length ? String(list.length) : '');
  }

  function renderBusiest(b) {
    for (const [key, , f] of BUSIEST) {
      const rows = (b && b[key]) || [];
      const ol = busiestLists[key];
      if (rows.length === 0) {
        ol.replaceChildren(h('li', {class: 'muted'}, '—'));
        continue;
      }
      ol.replaceChildren(...rows.map((r) => {
        const bar = h('span');
        const pctv = typeof r.value === 'number' ? Math.max(0, Math.min(100, r.value)) : 0;
        bar.style.width = pctv + '%';
        return h('li', {'data-host': r.host},
          hostLink(r.host),
          h('span', {class: 'num'}, f(r.value)),
          h('span', {class: 'bar', 'aria-hidden': 'true'}, bar));
      }));
    }
  }

  function renderFleet(fl) {
    if (!fl) return;
    const cpu = fl.cpu || [];
    const rx = fl.rx || [];
    const tx = fl.tx || [];
    cpuChart.set([{label: 'CPU', points: cpu}]);
    netChart.set([{label: 'rx', points: rx}, {label: 'tx', points: tx}]);
    setAttr(cpuBox, 'data-points', cpu.length);
    setAttr(netBox, 'data-points', rx.length + tx.length);
    const last = (a) => (a.length ? a[a.length - 1][1] : null);
    setText(cpuNow, fmt.pct(last(cpu)));
    setText(netNow, `↓ ${fmt.rate(last(rx))}  ↑ ${fmt.rate(last(tx))}`);
  }

  function renderCommands(cmds) {
    fillRows(cmdBody, CMD_HEADERS, (cmds || []).map((c) => ({
      attrs: {'data-command-id': c.id},
      cells: [
        timeCell(c.submittedAt),
        c.requester || '—',
        h('span', {class: 'cmd-action', title: c.reason ? `${c.action} — ${c.reason}` : c.action || ''}, c.action || '—'),
        cmdState(c.state),
        commandHosts(c.hosts || []),
      ],
    })), 'No commands yet.');
  }

  function apply(d) {
    if (!d) return;
    if (d.counts) {
      for (const [key] of STATES) {
        const el = counts.querySelector(`[data-count="${key}"]`);
        const v = d.counts[key];
        setText(el, typeof v === 'number' ? String(v) : '—');
        setAttr(el.parentElement, 'data-zero', v ? 'false' : 'true');
      }
    }
    if (Array.isArray(d.firing)) {
      firing.clear();
      for (const a of d.firing) firing.set(a.id, a);
      renderAlerts();
    }
    if (d.busiest) renderBusiest(d.busiest);
    if (d.fleet) renderFleet(d.fleet);
    if (Array.isArray(d.commands)) renderCommands(d.commands);
    if (d.generatedAt) {
      updated.setAttribute('data-reltime', d.generatedAt);
      updated.title = fmt.dateTime(d.generatedAt);
      setText(updated, fmt.ago(d.generatedAt));
    }
  }

  let alive = true;
  async function load() {
    try {
      const d = await api.get('/api/v1/overview');
      if (!alive) return;
      notice.replaceChildren();
      apply(d);
    } catch (e) {
      if (alive && e.status !== 401) notice.replaceChildren(errorNotice(e, 'the overview'));
    }
  }

  offs.push(live.on('overview', (m) => apply(m)));
  offs.push(live.on('alert', (m) => {
    const a = m.alert;
    if (!a || a.id == null) return;
    if (a.state === 'firing') firing.set(a.id, a);
    else firing.delete(a.id);
    renderAlerts();
  }));
  offs.push(live.on('_reconnected', load));
  live.watch({watch: 'overview'});
  renderAlerts();
  renderBusiest(null);
  load();

  return {
    destroy() {
      alive = false;
      offs.forEach((f) => f());
      cpuChart.destroy();
      netChart.destroy();
    },
  };
}

function commandHosts(hosts) {
  if (hosts.length === 0) return '—';
  const shown = hosts.slice(0, 3).map((x, i) => [i ? ', ' : '', hostLink(x.host, {title: x.state || ''})]);
  const more = hosts.length > 3 ? h('span', {class: 'muted'}, ` +${hosts.length - 3}`) : null;
  return h('span', {class: 'nowrap'}, shown, more);
}
