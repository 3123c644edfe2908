// Pieces shared by several screens.

import {h, hostHref, severityBadge} from '../dom.js';
import * as fmt from '../format.js';

const SEV_ORDER = {critical: 0, warning: 1, info: 2};
const ALERT_STATE_ORDER = {firing: 0, pending: 1, resolved: 2};

export function sortAlerts(list) {
  return list.sort((a, b) =>
    (ALERT_STATE_ORDER[a.state] ?? 3) - (ALERT_STATE_ORDER[b.state] ?? 3) ||
    (SEV_ORDER[a.severity] ?? 3) - (SEV_ORDER[b.severity] ?? 3) ||
    (b.startedAt || 0) - (a.startedAt || 0));
}

export function cmdState(state) {
  return h('span', {class: 'cmd-state', 'data-cmd-state': state || 'unknown'}, state || '—');
}

export function timeCell(ms) {
  return h('span', {class: 'nowrap', title: fmt.dateTime(ms)}, fmt.time(ms));
}

export function hostLink(name, attrs = {}) {
  return h('a', {href: hostHref(name), class: 'host-link', ...attrs}, name);
}

export function errorNotice(e, what) {
  const msg = e && e.message ? e.message : String(e);
  return h('div', {class: 'notice', role: 'status'}, `Could not load ${what}: ${msg}`);
}

export function alertValue(a) {
  if (typeof a.value !== 'number') return '';
  const t = typeof a.threshold === 'number' ? ` (threshold ${fmt.num(a.threshold, 1)})` : '';
  return `${fmt.num(a.value, 1)}${t}`;
}

export {severityBadge};

// Percent to a level for meters: ≥90 critical, ≥75 warning.
export function level(p) {
  return typeof p === 'number' ? (p >= 90 ? 'critical' : p >= 75 ? 'warning' : 'ok') : 'ok';
}

export function pctBar(p) {
  const s = h('span', {'data-level': level(p)});
  s.style.width = (typeof p === 'number' ? Math.max(0, Math.min(100, p)) : 0) + '%';
  return h('span', {class: 'pctbar', 'aria-hidden': 'true'}, s);
}
