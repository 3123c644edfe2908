// Alerts: firing, pending and resolved alerts grouped by host or by rule, the
// active silences, acknowledge and silence (operator/admin), live updates and
// optional desktop notifications for newly firing critical and warning alerts.
// #/alerts?tab=firing|pending|resolved|silences&by=host|rule

import * as api from '../api.js';
import * as live from '../live.js';
import * as fmt from '../format.js';
import {h, fill, setText, setAttr, hostHref} from '../dom.js';
import {getSession} from '../app.js';
import {sortAlerts, hostLink, errorNotice, severityBadge, alertValue} from './common.js';

const TABS = [
  ['firing', 'Firing'],
  ['pending', 'Pending'],
  ['resolved', 'Resolved'],
  ['silences', 'Silences'],
];
const SEV_RANK = {critical: 0, warning: 1, info: 2};
const DURATIONS = [[15, '15 min'], [60, '1 h'], [240, '4 h'], [1440, '24 h'], ['custom', 'Custom…']];
const NOTIFY_KEY = 'mirror-notify';
const GROUP_KEY = 'mirror-alerts-group';

// The host screen's series metric for a rule (its `metric=` parameter).
const RULE_METRIC = {
  'cpu-high': 'cpu_percent',
  'cpu-anomaly': 'cpu_percent',
  'memory-high': 'memory_used_percent',
  'swap-high': 'swap_used_percent',
  'disk-full': 'mount_used_percent',
  'disk-critical': 'mount_used_percent',
  'disk-full-soon': 'mount_used_percent',
  'temperature-high': 'temperature_celsius',
};
// The notifier's metric names (a rule's `metric`, when an alert carries it as a label).
const NOTIFIER_METRIC = {
  'cpu.percent': 'cpu_percent',
  'memory.used_percent': 'memory_used_percent',
  'swap.used_percent': 'swap_used_percent',
  'disk.used_percent': 'mount_used_percent',
  'temperature.celsius': 'temperature_celsius',
  'gpu.utilization_percent': 'gpu_utilization_percent',
  'network.utilization_percent': 'network_utilization_percent',
  'load.per_core': 'load1',
};

// A shell glob (*, ?, [...]) as the notifier reads it, whole-string.
export function globMatch(glob, text) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const j = glob.indexOf(']', i + 1);
      if (j < 0) { re += '\\['; continue; }
      let set = glob.slice(i + 1, j).replace(/\\/g, '\\\\');
      if (set.startsWith('!')) set = '^' + set.slice(1);
      re += '[' + set + ']';
      i = j;
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  try { return new RegExp('^' + re + '$').test(text); } catch { return false; }
}

export function chartHref(a) {
  const metric = (a.labels && NOTIFIER_METRIC[a.labels.metric]) || RULE_METRIC[a.rule] || null;
  const q = new URLSearchParams();
  if (metric) q.set('metric', metric);
  if (typeof a.startedAt === 'number') q.set('at', String(a.startedAt));
  const qs = q.toString();
  return hostHref(a.host) + (qs ? '?' + qs : '');
}

function storage(key, value) {
  try {
    if (value === undefined) return localStorage.getItem(key);
    localStorage.setItem(key, value);
  } catch { /* private mode */ }
  return null;
}

let formSeq = 0;

export function alertsScreen(root, params = {}) {
  const session = getSession() || {};
  const roles = session.roles || [];
  const canAct = roles.includes('operator') || roles.includes('admin');
  const active = new Map();       // id -> AlertView (pending, firing)
  const resolved = new Map();     // id -> AlertView (resolved)
  const silences = new Map();     // id -> SilenceView
  const fresh = new Map();        // id -> time it changed live (a short highlight)
  const liveSeen = new Map();     // id -> AlertView that came live while a load was under way
  const offs = [];
  let alive = true;
  let loaded = false;
  let resolvedLoaded = false;
  let tab = TABS.some(([t]) => t === params.tab) ? params.tab : 'firing';
  let groupBy = params.by === 'rule' || params.by === 'host' ? params.by : (storage(GROUP_KEY) === 'rule' ? 'rule' : 'host');
  let filterText = '';
  let openForm = null;            // {id, kind, row}
  let frame = 0;

  // ---- DOM ----
  const tabButtons = TABS.map(([key, label]) => {
    const count = h('span', {class: 'tab-count'});
    const b = h('button', {type: 'button', role: 'tab', class: 'tab', id: `alerts-tab-${key}`, 'data-tab': key,
      'aria-selected': 'false', 'aria-controls': 'alerts-body'}, label, count);
    b._count = count;
    return b;
  });
  const tabBar = h('div', {class: 'tabs', role: 'tablist', 'aria-label': 'Alerts'}, tabButtons);
  const byHost = h('button', {type: 'button', class: 'btn', 'data-group': 'host', 'aria-pressed': 'false'}, 'By host');
  const byRule = h('button', {type: 'button', class: 'btn', 'data-group': 'rule', 'aria-pressed': 'false'}, 'By rule');
  const groupSeg = h('div', {class: 'seg', role: 'group', 'aria-label': 'Group by', id: 'alerts-group'}, byHost, byRule);
  const filterIn = h('input', {type: 'search', class: 'filter', id: 'alerts-filter', placeholder: 'Filter: host, rule or text',
    'aria-label': 'Filter alerts', autocomplete: 'off', spellcheck: 'false'});
  const canNotify = 'Notification' in window;
  const notifyBtn = h('button', {type: 'button', class: 'btn', id: 'alerts-notify', hidden: !canNotify,
    title: 'A desktop notification when a critical or warning alert starts firing, while this screen is open'}, 'Notify me');
  const notifyNote = h('span', {class: 'muted notify-note', role: 'status'});
  const notice = h('div');
  const body = h('div', {id: 'alerts-body', role: 'tabpanel', class: 'alerts-body'});

  fill(root,
    h('div', {class: 'screen-head'}, h('h1', null, 'Alerts'), h('span', {class: 'spacer'}), notifyNote, notifyBtn),
    notice,
    h('div', {class: 'toolbar alerts-toolbar'}, tabBar, filterIn, groupSeg),
    h('section', {class: 'panel'}, body));

  // ---- notifications ----
  function notifyOn() {
    return canNotify && Notification.permission === 'granted' && storage(NOTIFY_KEY) === '1';
  }
  function renderNotify() {
    const on = notifyOn();
    setAttr(notifyBtn, 'aria-pressed', String(on));
    setText(notifyBtn, on ? 'Notifying' : 'Notify me');
  }
  notifyBtn.addEventListener('click', async () => {
    setText(notifyNote, '');
    if (notifyOn()) { storage(NOTIFY_KEY, '0'); renderNotify(); return; }
    if (Notification.permission === 'denied') {
      setText(notifyNote, 'Notifications are blocked for this site in the browser’s settings.');
      return;
    }
    let p = Notification.permission;
    try { if (p !== 'granted') p = await Notification.requestPermission(); } catch { p = 'denied'; }
    if (p === 'granted') storage(NOTIFY_KEY, '1');
    else setText(notifyNote, 'Notifications were not allowed.');
    renderNotify();
  });
  function notify(a) {
    if (!notifyOn()) return;
    try {
      const n = new Notification(`${(a.severity || '').toUpperCase()}: ${a.rule || 'alert'} on ${a.host}`, {
        body: a.summary || '', tag: `mirror-alert-${a.id}`});
      n.onclick = () => { window.focus(); location.hash = hostHref(a.host); n.close(); };
    } catch (e) { console.warn('notification failed', e); }
  }

  // ---- tabs and grouping ----
  function selectTab(t) {
    if (tab === t) return;
    tab = t;
    closeForm();
    keepUrl();
    if (t === 'resolved' && !resolvedLoaded) loadResolved();
    renderNow();
  }
  function keepUrl() {
    const q = new URLSearchParams({tab});
    if (groupBy !== 'host') q.set('by', groupBy);
    history.replaceState(history.state, '', `#/alerts?${q}`);
  }
  tabBar.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-tab]');
    if (b) selectTab(b.getAttribute('data-tab'));
  });
  tabBar.addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
    const i = TABS.findIndex(([t]) => t === tab);
    const next = TABS[(i + (ev.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length][0];
    selectTab(next);
    document.getElementById(`alerts-tab-${next}`).focus();
  });
  groupSeg.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-group]');
    if (!b) return;
    groupBy = b.getAttribute('data-group');
    storage(GROUP_KEY, groupBy);
    keepUrl();
    renderNow();
  });
  filterIn.addEventListener('input', () => {
    filterText = filterIn.value.trim().toLowerCase();
    schedule();
  });

  // ---- rendering ----
  function schedule() {
    if (!frame && alive) frame = requestAnimationFrame(render);
  }
  function renderNow() {
    if (frame) cancelAnimationFrame(frame);
    render();
  }

  function listFor(t) {
    if (t === 'resolved') return [...resolved.values()];
    return [...active.values()].filter((a) => a.state === t);
  }

  function matches(a) {
    if (!filterText) return true;
    return [a.host, a.rule, a.summary, a.severity].some((x) => x && String(x).toLowerCase().includes(filterText));
  }

  function activeSilences() {
    const now = Date.now();
    return [...silences.values()].filter((s) => !(typeof s.endsAt === 'number' && s.endsAt <= now));
  }

  function render() {
    frame = 0;
    if (!alive) return;
    const counts = {firing: listFor('firing').length, pending: listFor('pending').length,
      resolved: resolvedLoaded ? resolved.size : null, silences: activeSilences().length};
    for (const b of tabButtons) {
      const key = b.getAttribute('data-tab');
      setAttr(b, 'aria-selected', String(key === tab));
      b.tabIndex = key === tab ? 0 : -1;
      setText(b._count, counts[key] == null ? '' : String(counts[key]));
      setAttr(b, 'data-count', counts[key] == null ? '' : counts[key]);
    }
    setAttr(byHost, 'aria-pressed', String(groupBy === 'host'));
    setAttr(byRule, 'aria-pressed', String(groupBy === 'rule'));
    groupSeg.hidden = tab === 'silences';
    filterIn.hidden = tab === 'silences';

    // Keep an open inline form (and the caret in it) across the redraw.
    const focused = openForm && openForm.row.contains(document.activeElement) ? document.activeElement : null;
    const sel = focused && typeof focused.selectionStart === 'number' ? [focused.selectionStart, focused.selectionEnd] : null;

    if (tab === 'silences') renderSilences();
    else renderAlerts();

    if (focused && focused.isConnected && document.activeElement !== focused) {
      focused.focus({preventScroll: true});
      if (sel) try { focused.setSelectionRange(sel[0], sel[1]); } catch { /* not a text input */ }
    }
  }

  const ALERT_COLS = ['Severity', 'Alert', 'Host', 'Summary', 'Value', 'Since', 'Acknowledged', 'Silenced until', ''];

  function renderAlerts() {
    if (!loaded) { fill(body, h('p', {class: 'empty'}, 'Loading…')); return; }
    if (tab === 'resolved' && !resolvedLoaded) { fill(body, h('p', {class: 'empty'}, 'Loading the history…')); return; }
    const list = listFor(tab).filter(matches);
    if (!list.length) {
      closeForm();
      const what = {firing: 'No alert is firing.', pending: 'No alert is pending.', resolved: 'No resolved alerts.'}[tab];
      fill(body, h('p', {class: 'empty', id: 'alerts-empty'}, filterText ? 'No alert matches the filter.' : what));
      return;
    }
    // groups: worst severity first, then the name
    const groups = new Map();
    for (const a of list) {
      const key = groupBy === 'rule' ? a.rule || '' : a.host || '';
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(a);
    }
    const ordered = [...groups.entries()].map(([key, items]) => {
      sortAlerts(items);
      if (tab === 'resolved') items.sort((x, y) => (y.resolvedAt || 0) - (x.resolvedAt || 0));
      const worst = Math.min(...items.map((a) => SEV_RANK[a.severity] ?? 3));
      return {key, items, worst};
    }).sort((x, y) => x.worst - y.worst || x.key.localeCompare(y.key));

    const cols = ALERT_COLS.slice();
    cols[5] = tab === 'resolved' ? 'Resolved' : 'Since';
    const rows = [];
    let formStillShown = false;
    for (const g of ordered) {
      rows.push(h('tr', {class: 'group-row', 'data-group': g.key},
        h('th', {colspan: cols.length, scope: 'rowgroup'},
          groupBy === 'host' ? hostLink(g.key) : h('span', {class: 'mono'}, g.key || '—'),
          h('span', {class: 'muted group-count'}, ` ${g.items.length}`))));
      for (const a of g.items) {
        rows.push(alertRow(a, cols));
        if (openForm && openForm.id === a.id) {
          rows.push(openForm.row);
          formStillShown = true;
        }
      }
    }
    if (openForm && !formStillShown) closeForm();
    let tbl = body.querySelector('table.alerts-table');
    if (!tbl) {
      tbl = h('table', {class: 'alerts-table stack-table', id: 'alerts-table'}, h('thead'), h('tbody'));
      fill(body, h('div', {class: 'table-wrap'}, tbl));
    }
    tbl.tHead.replaceChildren(h('tr', null, cols.map((c, i) => h('th', {scope: 'col', class: i === 4 ? 'num' : null}, c))));
    tbl.tBodies[0].replaceChildren(...rows);
  }

  // Until when the active silences mute an alert, matched as the notifier
  // matches (alert id, rule glob, host glob): live updates do not carry it.
  function silencedUntil(a, now) {
    let until = typeof a.silencedUntil === 'number' ? a.silencedUntil : 0;
    for (const s of silences.values()) {
      if (!(s.endsAt > now)) continue;
      if (s.alertId && s.alertId !== a.id) continue;
      if (s.rule && !globMatch(s.rule, a.rule || '')) continue;
      if (s.host && !globMatch(s.host, a.host || '')) continue;
      until = Math.max(until, s.endsAt);
    }
    return until;
  }

  function alertRow(a, cols) {
    const now = Date.now();
    a = {...a, silencedUntil: silencedUntil(a, now) || null};
    const silenced = typeof a.silencedUntil === 'number' && a.silencedUntil > now;
    const isNew = fresh.has(a.id) && now - fresh.get(a.id) < 4000;
    // on a phone the cells stack, each after its column's name; these need none
    const td = (i, content, cls) => h('td', {'data-label': cols[i],
      class: [cls, i <= 3 || i === 8 ? 'no-label' : ''].filter(Boolean).join(' ') || null}, content);
    const actions = [];
    if (canAct && a.state !== 'resolved') {
      if (!a.acknowledged) {
        actions.push(h('button', {type: 'button', class: 'btn btn-small ack-alert', 'data-action': 'ack',
          'aria-expanded': String(!!(openForm && openForm.id === a.id && openForm.kind === 'ack'))}, 'Acknowledge'));
      }
      actions.push(h('button', {type: 'button', class: 'btn btn-small silence-alert', 'data-action': 'silence',
        'aria-expanded': String(!!(openForm && openForm.id === a.id && openForm.kind === 'silence'))}, 'Silence'));
    }
    actions.push(h('a', {href: chartHref(a), class: 'btn btn-small btn-quiet chart-link', title: 'Show on the host’s charts'}, 'Show on chart'));
    const when = tab === 'resolved' ? a.resolvedAt : a.startedAt;
    return h('tr', {'data-alert-id': a.id, 'data-severity': a.severity, 'data-alert-state': a.state,
      'data-host': a.host, class: [isNew ? 'is-new' : '', a.acknowledged ? 'is-acked' : '', silenced ? 'is-silenced' : ''].filter(Boolean).join(' ') || null},
    td(0, severityBadge(a.severity)),
    td(1, h('span', {class: 'mono alert-rule'}, a.rule || '')),
    td(2, a.host ? hostLink(a.host, {class: 'host-link alert-host'}) : '—'),
    td(3, h('span', {class: 'alert-summary', title: a.description || a.summary || ''}, a.summary || '')),
    td(4, alertValue(a) || fmt.NONE, 'num'),
    td(5, h('span', {class: 'nowrap', ...fmt.relTimeAttrs(when), title: tab === 'resolved'
      ? `started ${fmt.dateTime(a.startedAt)}, resolved ${fmt.dateTime(a.resolvedAt)}` : fmt.dateTime(a.startedAt)}, fmt.ago(when))),
    td(6, a.acknowledged ? h('span', {class: 'acked'}, a.acknowledgedBy || 'yes') : h('span', {class: 'muted'}, 'no')),
    td(7, silenced ? h('span', {class: 'nowrap', title: fmt.dateTime(a.silencedUntil)}, fmt.time(a.silencedUntil))
      : h('span', {class: 'muted'}, fmt.NONE)),
    td(8, h('span', {class: 'row-actions'}, actions), 'actions-cell'));
  }

  // ---- inline forms ----
  function closeForm() {
    if (!openForm) return;
    openForm.row.remove();
    openForm = null;
  }

  body.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-action]');
    if (!b) return;
    const tr = b.closest('tr[data-alert-id]');
    const a = tr && active.get(tr.getAttribute('data-alert-id'));
    if (!a) return;
    const kind = b.getAttribute('data-action');
    if (openForm && openForm.id === a.id && openForm.kind === kind) {
      closeForm();
      renderNow();
      b.focus?.();
      return;
    }
    closeForm();
    openForm = {id: a.id, kind, row: kind === 'ack' ? ackForm(a) : silenceForm(a)};
    renderNow();
    const first = openForm.row.querySelector(kind === 'ack' ? '.ack-comment' : '.silence-comment');
    if (first) first.focus();
  });

  function formRow(a, form) {
    return h('tr', {class: 'form-row', 'data-form-for': a.id}, h('td', {colspan: ALERT_COLS.length}, form));
  }

  function ackForm(a) {
    const comment = h('input', {type: 'text', class: 'ack-comment', maxlength: '500', placeholder: 'what you are doing about it (optional)',
      'aria-label': 'Comment'});
    const ok = h('button', {type: 'submit', class: 'btn btn-primary btn-small ack-submit'}, 'Acknowledge');
    const cancel = h('button', {type: 'button', class: 'btn btn-small btn-quiet'}, 'Cancel');
    const error = h('p', {class: 'error', role: 'alert'});
    const form = h('form', {class: 'inline-form ack-form', novalidate: true},
      h('span', {class: 'form-title'}, 'Acknowledge ', h('b', null, a.rule || 'alert'), ' on ', h('b', null, a.host || '')),
      h('div', {class: 'inline-fields'}, comment, ok, cancel),
      error);
    cancel.addEventListener('click', () => { closeForm(); renderNow(); });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      ok.disabled = true;
      try {
        const updated = await api.post(`/api/v1/alerts/${api.enc(a.id)}/ack`, {comment: comment.value.trim()});
        if (!alive) return;
        closeForm();
        upsert(updated && updated.id != null ? updated : {...a, acknowledged: true, acknowledgedBy: session.user || 'you'});
        renderNow();
      } catch (e) {
        if (!alive) return;
        error.textContent = e.status === 403 ? 'The console refused: your role may not acknowledge alerts.' : e.message;
        ok.disabled = false;
      }
    });
    return formRow(a, form);
  }

  function silenceForm(a) {
    const n = ++formSeq;
    const radio = (value, checked) => h('input', {type: 'radio', name: `silence-scope-${n}`, value, checked, class: 'scope-radio'});
    const rAlert = radio('alert', true);
    const rRule = radio('rule', false);
    const rHost = radio('host', false);
    const ruleIn = h('input', {type: 'text', class: 'mono silence-rule', value: a.rule || '', 'aria-label': 'Rule (glob)', spellcheck: 'false'});
    const hostIn = h('input', {type: 'text', class: 'mono silence-host', value: a.host || '', 'aria-label': 'Host (glob)', spellcheck: 'false'});
    const dur = h('select', {class: 'silence-duration', 'aria-label': 'Duration'},
      DURATIONS.map(([v, l]) => h('option', {value: String(v), selected: v === 60}, l)));
    const custom = h('input', {type: 'number', class: 'silence-custom', min: '1', max: '525600', step: '1', value: '120',
      'aria-label': 'Minutes', hidden: true});
    const customUnit = h('span', {class: 'muted', hidden: true}, 'min');
    const comment = h('input', {type: 'text', class: 'silence-comment', maxlength: '500', required: true,
      placeholder: 'why (required)', 'aria-label': 'Comment'});
    const ok = h('button', {type: 'submit', class: 'btn btn-primary btn-small silence-submit'}, 'Silence');
    const cancel = h('button', {type: 'button', class: 'btn btn-small btn-quiet'}, 'Cancel');
    const error = h('p', {class: 'error', role: 'alert'});
    const form = h('form', {class: 'inline-form silence-form', novalidate: true},
      h('fieldset', {class: 'scope'},
        h('legend', null, 'Silence'),
        h('label', {class: 'scope-option'}, rAlert, ' this alert'),
        h('label', {class: 'scope-option'}, rRule, ' rule ', ruleIn),
        h('label', {class: 'scope-option'}, rHost, ' host ', hostIn)),
      h('div', {class: 'inline-fields'},
        h('label', {class: 'inline-label'}, 'for ', dur), custom, customUnit, comment, ok, cancel),
      h('p', {class: 'hint muted'}, 'Rule and host take globs (web-*, disk-*). Notifications stop; the alert stays listed.'),
      error);
    const sync = () => {
      ruleIn.classList.toggle('inactive', !rRule.checked);
      hostIn.classList.toggle('inactive', !rHost.checked);
      custom.hidden = customUnit.hidden = dur.value !== 'custom';
    };
    form.addEventListener('change', sync);
    // typing a glob picks its scope
    ruleIn.addEventListener('focus', () => { rRule.checked = true; sync(); });
    hostIn.addEventListener('focus', () => { rHost.checked = true; sync(); });
    cancel.addEventListener('click', () => { closeForm(); renderNow(); });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      const minutes = dur.value === 'custom' ? Number(custom.value) : Number(dur.value);
      if (!Number.isInteger(minutes) || minutes < 1 || minutes > 525600) {
        error.textContent = 'The duration is a whole number of minutes (1 to 525600).';
        custom.focus();
        return;
      }
      if (!comment.value.trim()) { error.textContent = 'Say why: the comment is kept with the silence.'; comment.focus(); return; }
      const req = {minutes, comment: comment.value.trim()};
      if (rAlert.checked) req.alertId = a.id;
      else if (rRule.checked) {
        if (!ruleIn.value.trim()) { error.textContent = 'Enter the rule (a glob).'; ruleIn.focus(); return; }
        req.rule = ruleIn.value.trim();
      } else {
        if (!hostIn.value.trim()) { error.textContent = 'Enter the host (a glob).'; hostIn.focus(); return; }
        req.host = hostIn.value.trim();
      }
      ok.disabled = true;
      try {
        const s = await api.post('/api/v1/silences', req);
        if (!alive) return;
        if (s && s.id != null) silences.set(String(s.id), s);
        if (req.alertId && s && typeof s.endsAt === 'number') {
          const cur = active.get(a.id);
          if (cur) active.set(a.id, {...cur, silencedUntil: Math.max(cur.silencedUntil || 0, s.endsAt)});
        }
        closeForm();
        renderNow();
        // A rule or host glob may mute other alerts too: the console says which.
        if (!req.alertId) load();
      } catch (e) {
        if (!alive) return;
        error.textContent = e.status === 403 ? 'The console refused: your role may not silence alerts.' : e.message;
        ok.disabled = false;
      }
    });
    sync();
    return formRow(a, form);
  }

  // ---- silences ----
  const SIL_COLS = ['Matches', 'By', 'Comment', 'Created', 'Ends', ''];
  function renderSilences() {
    if (!loaded) { fill(body, h('p', {class: 'empty'}, 'Loading…')); return; }
    const list = activeSilences().sort((x, y) => (x.endsAt || 0) - (y.endsAt || 0));
    if (!list.length) { fill(body, h('p', {class: 'empty', id: 'silences-empty'}, 'No active silences.')); return; }
    const td = (i, content, cls) => h('td', {'data-label': SIL_COLS[i], class: cls || null}, content);
    const rows = list.map((s) => {
      const target = s.alertId ? (active.get(s.alertId) || resolved.get(s.alertId)) : null;
      const matchers = [];
      if (s.alertId) {
        matchers.push(h('span', {class: 'tag matcher', title: `alert ${s.alertId}`}, 'alert ',
          target ? `${target.rule} on ${target.host}` : s.alertId));
      }
      if (s.rule) matchers.push(h('span', {class: 'tag matcher', title: `rule ${s.rule}`}, `rule=${s.rule}`));
      if (s.host) matchers.push(h('span', {class: 'tag matcher', title: `host ${s.host}`}, `host=${s.host}`));
      if (!matchers.length) matchers.push(h('span', {class: 'muted'}, 'everything'));
      return h('tr', {'data-silence-id': s.id},
        td(0, h('span', {class: 'matchers'}, matchers)),
        td(1, s.by || fmt.NONE),
        td(2, h('span', {class: 'silence-comment-text', title: s.comment || ''}, s.comment || '')),
        td(3, h('span', {class: 'nowrap', ...fmt.relTimeAttrs(s.createdAt)}, fmt.ago(s.createdAt))),
        td(4, h('span', {class: 'nowrap', ...fmt.relTimeAttrs(s.endsAt)}, fmt.ago(s.endsAt))),
        td(5, canAct ? h('button', {type: 'button', class: 'btn btn-small end-silence'}, 'End') : null, 'actions-cell'));
    });
    const tbl = h('table', {class: 'silences-table stack-table', id: 'silences-table'},
      h('thead', null, h('tr', null, SIL_COLS.map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', null, rows));
    fill(body, h('div', {class: 'table-wrap'}, tbl));
  }

  body.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button.end-silence');
    if (!b) return;
    const tr = b.closest('tr[data-silence-id]');
    const id = tr && tr.getAttribute('data-silence-id');
    if (!id) return;
    b.disabled = true;
    try {
      await api.post(`/api/v1/silences/${api.enc(id)}/end`);
      if (!alive) return;
      const s = silences.get(id);
      silences.delete(id);
      if (s && s.alertId && active.has(s.alertId)) {
        const a = active.get(s.alertId);
        active.set(a.id, {...a, silencedUntil: null});
      }
      renderNow();
      // The console folds every silence into silencedUntil: read it again.
      load();
    } catch (e) {
      if (!alive) return;
      b.disabled = false;
      notice.replaceChildren(h('div', {class: 'notice', role: 'status'}, `Could not end the silence: ${e.message}`));
    }
  });

  // ---- data ----
  function upsert(a) {
    if (!a || a.id == null) return;
    const id = String(a.id);
    if (a.state === 'resolved') {
      active.delete(id);
      resolved.set(id, a);
    } else {
      resolved.delete(id);
      active.set(id, a);
    }
  }

  let loading = false;
  async function load() {
    loading = true;
    try {
      const d = await api.get('/api/v1/alerts');
      if (!alive) return;
      notice.replaceChildren();
      active.clear();
      for (const a of (d && d.alerts) || []) upsert(a);
      // A change that came live during the request may be newer than the answer.
      for (const a of liveSeen.values()) {
        const cur = active.get(String(a.id)) || resolved.get(String(a.id));
        if (!cur || (a.updatedAt || 0) >= (cur.updatedAt || 0)) upsert(a);
      }
      liveSeen.clear();
      silences.clear();
      for (const s of (d && d.silences) || []) if (s && s.id != null) silences.set(String(s.id), s);
      loaded = true;
      renderNow();
    } catch (e) {
      if (alive && e.status !== 401) notice.replaceChildren(errorNotice(e, 'the alerts'));
    } finally {
      loading = false;
    }
  }

  async function loadResolved() {
    try {
      const d = await api.get('/api/v1/alerts?resolved=1');
      if (!alive) return;
      for (const a of (d && d.alerts) || []) if (a && a.state === 'resolved') resolved.set(String(a.id), a);
      for (const s of (d && d.silences) || []) if (s && s.id != null) silences.set(String(s.id), s);
      resolvedLoaded = true;
      renderNow();
    } catch (e) {
      if (alive && e.status !== 401) notice.replaceChildren(errorNotice(e, 'the resolved alerts'));
    }
  }

  // Live: every alert change, whatever the screen watches.
  function onAlert(m) {
    const a = m && m.alert;
    if (!a || a.id == null) return;
    const prev = active.get(String(a.id)) || resolved.get(String(a.id));
    upsert(a);
    if (loading) liveSeen.set(String(a.id), a);
    const now = Date.now();
    for (const [id, t] of fresh) if (now - t > 5000) fresh.delete(id);
    fresh.set(a.id, now);
    const startsFiring = a.state === 'firing' && (!prev || prev.state !== 'firing');
    const silenced = typeof a.silencedUntil === 'number' && a.silencedUntil > Date.now();
    if (startsFiring && (a.severity === 'critical' || a.severity === 'warning') && !a.acknowledged && !silenced) notify(a);
    schedule();
    setTimeout(schedule, 4100);   // drop the highlight
  }
  offs.push(live.on('alert', onAlert));
  offs.push(live.on('_reconnected', () => { load(); if (resolvedLoaded) loadResolved(); }));

  // Silences run out; "ends in" is kept fresh by the app's ticker, the list here.
  const expiry = setInterval(() => { if (tab === 'silences' || tab === 'firing') schedule(); }, 30000);

  renderNotify();
  render();
  load();
  if (tab === 'resolved') loadResolved();

  return {
    onAlert,   // for tests
    destroy() {
      alive = false;
      clearInterval(expiry);
      if (frame) cancelAnimationFrame(frame);
      offs.forEach((f) => f());
    },
  };
}
