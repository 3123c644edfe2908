// The twin's scene as the browser holds it: nodes and links by id, rooms and
// racks, the sequence number, and the diffs of visualization.updates applied
// to it (docs/twin.md, "Outputs"). Everything in it is untrusted text: the
// views draw names with textContent or canvas text, never as HTML.

import * as fmt from '../format.js';

export const U = 0.04445;                 // one rack unit in metres
const GREY = '#9e9e9e';                   // the contract's "unknown" colour
const HEX = /^#[0-9a-fA-F]{6}$/;

export const KIND_NAMES = {
  NODE_KIND_HOST: 'host',
  NODE_KIND_SWITCH: 'switch',
  NODE_KIND_ROUTER: 'router',
  NODE_KIND_ACCESS_POINT: 'access point',
  NODE_KIND_OTHER: 'other',
};

export const HEALTH_NAMES = {
  HEALTH_OK: 'ok',
  HEALTH_WARNING: 'warning',
  HEALTH_CRITICAL: 'critical',
  HEALTH_DOWN: 'down',
  HEALTH_UNKNOWN: 'unknown',
};

export const kindName = (n) => KIND_NAMES[n.kind] || 'other';
export const healthName = (n) => HEALTH_NAMES[n.health] || 'unknown';
export const isHost = (n) => !!n && n.kind === 'NODE_KIND_HOST';
export const nodeName = (n) => (n.label && n.label !== n.id ? n.label : n.id);

const num = (v, d = 0) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const str = (v) => (typeof v === 'string' ? v : v == null ? '' : String(v));

function vec(v, d) {
  if (!v || typeof v !== 'object') return {x: d, y: d, z: d};
  return {x: num(v.x), y: num(v.y), z: num(v.z)};
}

function material(m) {
  const colorHex = m && typeof m.colorHex === 'string' && HEX.test(m.colorHex) ? m.colorHex.toLowerCase() : GREY;
  return {
    colorHex,
    emissiveIntensity: Math.min(1, Math.max(0, num(m && m.emissiveIntensity))),
    opacity: Math.min(1, Math.max(0, num(m && m.opacity, 1))),
  };
}

// One node as the views use it: every field present and of its type, so
// drawing code never checks for absent values. `rack` is null when not racked
// (the JSON may say "" or leave it out).
export function normNode(n) {
  const rackUnit = num(n.rackUnit, 0);
  return {
    id: str(n.id),
    kind: str(n.kind) || 'NODE_KIND_OTHER',
    label: str(n.label),
    health: str(n.health) || 'HEALTH_UNKNOWN',
    position: vec(n.position, 0),
    size: n.size ? vec(n.size, 0.4) : {x: 0.4, y: 0.4, z: 0.4},
    x2d: num(n.x2d),
    y2d: num(n.y2d),
    cpuPercent: typeof n.cpuPercent === 'number' ? n.cpuPercent : null,
    memoryPercent: typeof n.memoryPercent === 'number' ? n.memoryPercent : null,
    temperatureCelsius: typeof n.temperatureCelsius === 'number' ? n.temperatureCelsius : null,
    material: material(n.material),
    room: str(n.room),
    rack: str(n.rack) || null,
    rackUnit: rackUnit >= 1 ? Math.floor(rackUnit) : null,
    rackUnits: Math.max(1, Math.floor(num(n.rackUnits, 1)) || 1),
    pinned: !!n.pinned,
  };
}

export function normLink(l) {
  return {
    id: str(l.id),
    sourceNode: str(l.sourceNode),
    sourcePort: str(l.sourcePort),
    targetNode: str(l.targetNode),
    targetPort: str(l.targetPort),
    speedMbps: typeof l.speedMbps === 'number' ? l.speedMbps : null,
    rxBitsPerSecond: num(l.rxBitsPerSecond),
    txBitsPerSecond: num(l.txBitsPerSecond),
    utilizationPercent: typeof l.utilizationPercent === 'number' ? l.utilizationPercent : null,
    thickness: num(l.thickness, 0.005),
    material: material(l.material),
    waypoints: Array.isArray(l.waypoints) ? l.waypoints.map((p) => vec(p, 0)) : [],
  };
}

function normRoom(r) {
  return {id: str(r.id), name: str(r.name) || str(r.id), origin: vec(r.origin, 0), size: vec(r.size, 0)};
}

function normRack(r) {
  return {
    id: str(r.id), room: str(r.room), position: vec(r.position, 0),
    rotationDegrees: num(r.rotationDegrees), heightUnits: Math.max(1, Math.floor(num(r.heightUnits, 42))),
  };
}

// A change set handed to the views: `full` after a (re)load, otherwise the
// nodes and links that changed as [id, before, after] (before null: added;
// after null: removed).
export class SceneModel {
  constructor() {
    this.sequence = null;
    this.generatedAtUnixMs = 0;
    this.nodes = new Map();
    this.links = new Map();
    this.rooms = [];
    this.racks = [];
    this.rackById = new Map();
  }

  get loaded() { return this.sequence !== null; }

  // Replace everything with a full scene.
  load(scene) {
    const s = scene || {};
    this.sequence = num(s.sequence);
    this.generatedAtUnixMs = num(s.generatedAtUnixMs);
    this.nodes = new Map();
    for (const raw of Array.isArray(s.nodes) ? s.nodes : []) {
      const n = normNode(raw);
      if (n.id) this.nodes.set(n.id, n);
    }
    this.links = new Map();
    for (const raw of Array.isArray(s.links) ? s.links : []) {
      const l = normLink(raw);
      if (l.id) this.links.set(l.id, l);
    }
    this.rooms = (Array.isArray(s.rooms) ? s.rooms : []).map(normRoom);
    this.racks = (Array.isArray(s.racks) ? s.racks : []).map(normRack);
    this.rackById = new Map(this.racks.map((r) => [r.id, r]));
    return {full: true, nodes: [], links: []};
  }

  // Whether a diff can be applied here: 'apply', 'stale' (already included:
  // its sequence is not past ours) or 'refetch' (a gap, or rooms/racks changed).
  check(diff) {
    if (!diff || !this.loaded) return 'refetch';
    if (diff.fullRefresh) return 'refetch';
    if (num(diff.baseSequence, -1) === this.sequence) return 'apply';
    const seq = num(diff.sequence, -1);
    // Far behind ours: the twin started its numbering again (its stored
    // scene was lost), so ours is the stale one.
    if (seq >= 0 && seq + 10 < this.sequence) return 'refetch';
    if (seq <= this.sequence) return 'stale';
    return 'refetch';
  }

  // Apply a diff whose base is our sequence; returns the change set.
  applyDiff(diff) {
    const changes = {full: false, nodes: [], links: []};
    for (const id of diff.removedNodes || []) {
      const before = this.nodes.get(id);
      if (!before) continue;
      this.nodes.delete(id);
      changes.nodes.push([id, before, null]);
    }
    for (const raw of diff.upsertedNodes || []) {
      const n = normNode(raw);
      if (!n.id) continue;
      changes.nodes.push([n.id, this.nodes.get(n.id) || null, n]);
      this.nodes.set(n.id, n);
    }
    for (const id of diff.removedLinks || []) {
      const before = this.links.get(id);
      if (!before) continue;
      this.links.delete(id);
      changes.links.push([id, before, null]);
    }
    for (const raw of diff.upsertedLinks || []) {
      const l = normLink(raw);
      if (!l.id) continue;
      changes.links.push([l.id, this.links.get(l.id) || null, l]);
      this.links.set(l.id, l);
    }
    this.sequence = num(diff.sequence, this.sequence + 1);
    if (diff.generatedAtUnixMs) this.generatedAtUnixMs = num(diff.generatedAtUnixMs);
    return changes;
  }

  // The devices of a rack, by their lowest unit.
  rackDevices(rackId) {
    const out = [];
    for (const n of this.nodes.values()) if (n.rack === rackId) out.push(n);
    out.sort((a, b) => (a.rackUnit || 0) - (b.rackUnit || 0) || a.id.localeCompare(b.id));
    return out;
  }
}

// ---- text for tooltips and titles ------------------------------------------

// Bits per second: "940 Mb/s", "1.2 Gb/s".
export function bits(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return fmt.NONE;
  const units = ['b/s', 'kb/s', 'Mb/s', 'Gb/s', 'Tb/s'];
  let x = Math.abs(v);
  let i = 0;
  while (x >= 1000 && i < units.length - 1) { x /= 1000; i++; }
  return (i === 0 ? x.toFixed(0) : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0)) + ' ' + units[i];
}

// [label, value] rows describing a node; the title is nodeName(n).
export function nodeRows(n, model) {
  const rows = [['kind', kindName(n)], ['health', healthName(n)]];
  if (n.label && n.label !== n.id) rows.push(['id', n.id]);
  if (n.cpuPercent !== null) rows.push(['cpu', fmt.pct(n.cpuPercent)]);
  if (n.memoryPercent !== null) rows.push(['memory', fmt.pct(n.memoryPercent)]);
  if (n.temperatureCelsius !== null) rows.push(['temperature', fmt.celsius(n.temperatureCelsius, 1)]);
  const where = [];
  if (n.room) where.push(n.room);
  if (n.rack) {
    const units = n.rackUnits > 1 ? `U${n.rackUnit}–${n.rackUnit + n.rackUnits - 1}` : `U${n.rackUnit}`;
    where.push(n.rackUnit ? `${n.rack} ${units}` : n.rack);
  }
  if (where.length) rows.push(['location', where.join(' · ')]);
  if (model && isHost(n)) rows.push(['', 'click to open']);
  return rows;
}

function end(model, id, port) {
  const n = model.nodes.get(id);
  const name = n ? nodeName(n) : id;
  return port ? `${name}:${port}` : name;
}

export function linkTitle(l, model) {
  return `${end(model, l.sourceNode, l.sourcePort)} ↔ ${end(model, l.targetNode, l.targetPort)}`;
}

export function linkRows(l) {
  const rows = [
    ['from', l.sourcePort ? `${l.sourceNode} port ${l.sourcePort}` : l.sourceNode],
    ['to', l.targetPort ? `${l.targetNode} port ${l.targetPort}` : l.targetNode],
    ['rx', bits(l.rxBitsPerSecond)],
    ['tx', bits(l.txBitsPerSecond)],
    ['utilisation', l.utilizationPercent === null ? 'unknown' : fmt.pct(l.utilizationPercent)],
  ];
  if (l.speedMbps) rows.push(['speed', fmt.speed(l.speedMbps)]);
  return rows;
}

// ---- colours -----------------------------------------------------------------

export function rgb(hex) {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

// Dark or light text on a fill: whichever contrasts more (WCAG luminance).
export function textOn(hex) {
  const lin = (c) => { const s = c / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
  const [r, g, b] = rgb(hex);
  const L = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  return (L + 0.05) / 0.05 >= 1.05 / (L + 0.05) ? '#111111' : '#ffffff';
}

export function toHex(r, g, b) {
  const c = (v) => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, '0');
  return '#' + c(r) + c(g) + c(b);
}
