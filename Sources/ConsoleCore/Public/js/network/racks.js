// Rack elevations: every rack's front, NetBox style, as an SVG — units
// numbered up the side (the top unit at the top), each racked device a box
// over its units filled with its health colour, its name and its CPU and
// temperature on it; empty units as empty slots. Live updates recolour the
// boxes in place; a device that moved rebuilds only its racks.
// With many racks, a rack's SVG is built when it scrolls near the view.

import {h} from '../dom.js';
import * as fmt from '../format.js';
import {nodeName, kindName, healthName, isHost, textOn} from './model.js';
import {legend, svg} from './ui.js';

const UH = 18;          // px per unit
const RAIL = 28;        // unit numbers column
const INNER = 210;      // device width
const PAD = 6;
const W = RAIL * 2 + INNER;
const LAZY_ABOVE = 24;  // racks: more than this, build when scrolled near

// "cpu 42 % · 51 °C", the short text on a device box.
function metrics(n) {
  const parts = [];
  if (n.cpuPercent !== null) parts.push(`cpu ${n.cpuPercent.toFixed(0)} %`);
  if (n.temperatureCelsius !== null) parts.push(`${n.temperatureCelsius.toFixed(0)} °C`);
  return parts.join(' · ');
}

function span(n, rack) {
  const bottom = n.rackUnit;
  const top = Math.min(rack.heightUnits, bottom + n.rackUnits - 1);
  return [bottom, top];
}

function titleText(n) {
  const lines = [nodeName(n)];
  if (n.label && n.label !== n.id) lines.push(`id: ${n.id}`);
  lines.push(`${kindName(n)}, ${healthName(n)}`);
  const u = n.rackUnits > 1 ? `U${n.rackUnit}–${n.rackUnit + n.rackUnits - 1}` : `U${n.rackUnit}`;
  lines.push(`${u} (${n.rackUnits} U)`);
  if (n.cpuPercent !== null) lines.push(`cpu ${fmt.pct(n.cpuPercent)}`);
  if (n.memoryPercent !== null) lines.push(`memory ${fmt.pct(n.memoryPercent)}`);
  if (n.temperatureCelsius !== null) lines.push(`temperature ${fmt.celsius(n.temperatureCelsius, 1)}`);
  return lines.join('\n');
}

// Cut a name to about what fits in `px` at 11px text.
function fitText(text, px) {
  const max = Math.max(3, Math.floor(px / 6.4));
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

// What the filter matches a rack by: its name, room and devices' names.
function searchText(rack, devices) {
  return [rack.id, rack.room, ...devices.flatMap((n) => [n.id, n.label])].join('\n').toLowerCase();
}

export class RacksView {
  // ctx: {shared: {selected}, open(node), select(id), frame(ms)}
  constructor(container, model, ctx) {
    this.model = model;
    this.ctx = ctx;
    this.visible = false;
    this.filter = h('input', {type: 'search', class: 'filter net-rack-filter', placeholder: 'Filter racks: rack, room or device',
      'aria-label': 'Filter racks', autocomplete: 'off', spellcheck: 'false'});
    this.count = h('span', {class: 'count'});
    this.body = h('div', {class: 'net-racks-body'});
    this.el = h('div', {class: 'net-view net-racks', 'data-view': 'racks'},
      h('div', {class: 'toolbar net-racks-bar'}, this.filter, legend('racks'), this.count),
      this.body);
    container.append(this.el);
    this.cards = new Map();       // rack id -> {fig, svgHost, built}
    this.devices = new Map();     // node id -> {rect, title, name, metrics, key}
    this.dirty = true;
    this.io = null;
    this.byRack = new Map();      // rack id -> its nodes, by unit

    this.onClick = (e) => {
      const t = e.target.closest && e.target.closest('[data-node]');
      if (!t) return;
      const n = this.model.nodes.get(t.getAttribute('data-node'));
      if (!n) return;
      this.ctx.select(n.id);
      if (isHost(n)) this.ctx.open(n);
    };
    this.onKey = (e) => {
      if (e.key !== 'Enter' && e.key !== ' ') return;
      const t = e.target.closest && e.target.closest('[data-node]');
      if (!t) return;
      e.preventDefault();
      this.onClick(e);
    };
    this.body.addEventListener('click', this.onClick);
    this.body.addEventListener('keydown', this.onKey);
    this.filter.addEventListener('input', () => this.applyFilter());
  }

  show() {
    this.el.hidden = false;
    this.visible = true;
    if (this.dirty) this.rebuild();
  }

  hide() {
    this.el.hidden = true;
    this.visible = false;
  }

  destroy() {
    if (this.io) this.io.disconnect();
    this.body.removeEventListener('click', this.onClick);
    this.body.removeEventListener('keydown', this.onKey);
    this.el.remove();
  }

  screenPoint(id) {
    const d = this.devices.get(id);
    if (!d || !this.visible) return null;
    const r = d.rect.getBoundingClientRect();
    return {x: r.left + r.width / 2, y: r.top + r.height / 2};
  }

  colorOf(id) {
    const d = this.devices.get(id);
    if (d) return d.rect.getAttribute('fill');
    const n = this.model.nodes.get(id);
    return n && n.rack ? n.material.colorHex : null;
  }

  // ---- building --------------------------------------------------------------------

  rebuild() {
    const t0 = performance.now();
    this.dirty = false;
    if (this.io) this.io.disconnect();
    this.io = null;
    this.cards.clear();
    this.devices.clear();
    // The devices of every rack, in one pass over the nodes.
    this.byRack = new Map();
    for (const n of this.model.nodes.values()) {
      if (!n.rack) continue;
      if (!this.byRack.has(n.rack)) this.byRack.set(n.rack, []);
      this.byRack.get(n.rack).push(n);
    }
    for (const list of this.byRack.values()) list.sort((a, b) => (a.rackUnit || 0) - (b.rackUnit || 0) || a.id.localeCompare(b.id));
    const racks = this.model.racks;
    const byRoom = new Map();
    for (const r of racks) {
      if (!byRoom.has(r.room)) byRoom.set(r.room, []);
      byRoom.get(r.room).push(r);
    }
    const roomName = new Map(this.model.rooms.map((r) => [r.id, r.name]));
    const lazy = racks.length > LAZY_ABOVE && 'IntersectionObserver' in window;
    if (lazy) {
      this.io = new IntersectionObserver((entries) => {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          const card = this.cards.get(e.target.getAttribute('data-rack'));
          if (card && !card.built) this.buildRack(card);
          this.io.unobserve(e.target);
        }
      }, {root: this.body, rootMargin: '600px'});
    }
    const sections = [];
    const rooms = [...byRoom.keys()].sort((a, b) => a.localeCompare(b));
    for (const room of rooms) {
      const list = byRoom.get(room).sort((a, b) => a.id.localeCompare(b.id, undefined, {numeric: true}));
      const figs = list.map((rack) => {
        const card = this.card(rack);
        if (lazy) this.io.observe(card.fig);
        else this.buildRack(card);
        return card.fig;
      });
      sections.push(h('section', {class: 'net-room', 'data-room': room},
        h('h2', null, roomName.get(room) || room || 'No room'),
        h('div', {class: 'net-rack-row'}, figs)));
    }
    if (!sections.length) sections.push(h('p', {class: 'empty muted'}, 'No racks in the inventory.'));
    this.body.replaceChildren(...sections);
    this.applyFilter();
    this.ctx.frame(performance.now() - t0);
  }

  card(rack) {
    const caption = h('figcaption', null, h('span', {class: 'net-rack-name'}, rack.id),
      h('span', {class: 'muted'}, ` ${rack.heightUnits} U`));
    const svgHost = h('div', {class: 'net-rack-svg'});
    const height = rack.heightUnits * UH + 2 * PAD;
    svgHost.style.height = height + 'px';   // the right size before it is built
    const fig = h('figure', {class: 'net-rack', 'data-rack': rack.id}, caption, svgHost);
    const card = {rack, fig, svgHost, caption, built: false, search: ''};
    this.cards.set(rack.id, card);
    card.search = searchText(rack, this.byRack.get(rack.id) || []);
    return card;
  }

  buildRack(card) {
    const rack = card.rack;
    const units = rack.heightUnits;
    const height = units * UH + 2 * PAD;
    const s = svg('svg', {class: 'rack-svg', viewBox: `0 0 ${W} ${height}`, width: W, height, role: 'group', 'aria-label': `Rack ${rack.id}`});
    s.append(svg('rect', {class: 'rack-frame', x: RAIL - 3, y: PAD - 3, width: INNER + 6, height: units * UH + 6, rx: 3}));
    const yOf = (u) => PAD + (units - u) * UH;   // top edge of unit u
    for (let u = units; u >= 1; u--) {
      const t = svg('text', {class: 'rack-unum', x: RAIL - 7, y: yOf(u) + UH / 2, 'text-anchor': 'end', 'dominant-baseline': 'central'});
      t.textContent = String(u);
      const t2 = svg('text', {class: 'rack-unum', x: RAIL + INNER + 7, y: yOf(u) + UH / 2, 'dominant-baseline': 'central'});
      t2.textContent = String(u);
      s.append(t, t2);
    }
    // Devices, and the units they take.
    const taken = new Uint8Array(units + 2);
    const unplaced = [];
    for (const n of this.byRack.get(rack.id) || []) {
      if (!n.rackUnit || n.rackUnit > units) { unplaced.push(n); continue; }
      const [bottom, top] = span(n, rack);
      for (let u = bottom; u <= top; u++) taken[u] = 1;
      s.append(this.device(n, yOf(top), (top - bottom + 1) * UH));
    }
    // Empty slots under the devices (inserted before them in paint order).
    const firstDevice = s.querySelector('.rack-dev');
    for (let u = units; u >= 1; u--) {
      if (taken[u]) continue;
      const slot = svg('rect', {class: 'rack-slot', x: RAIL + 1, y: yOf(u) + 1, width: INNER - 2, height: UH - 2, rx: 1, 'data-empty-unit': u});
      const title = svg('title');
      title.textContent = `U${u}: empty`;
      slot.append(title);
      s.insertBefore(slot, firstDevice);
    }
    card.svgHost.replaceChildren(s);
    card.svgHost.style.height = '';
    if (unplaced.length) {
      card.svgHost.append(h('p', {class: 'net-rack-unplaced muted'},
        'Not placed: ' + unplaced.map((n) => nodeName(n)).join(', ')));
    }
    card.built = true;
  }

  device(n, y, height) {
    const g = svg('g', {class: 'rack-dev', 'data-kind': kindName(n)});
    const rect = svg('rect', {class: 'rack-dev-box', x: RAIL + 1, y: y + 1, width: INNER - 2, height: height - 2, rx: 2,
      'data-node': n.id, 'data-unit': n.rackUnit, 'data-health': healthName(n)});
    if (isHost(n)) {
      rect.setAttribute('tabindex', '0');
      rect.setAttribute('role', 'link');
    }
    const title = svg('title');
    rect.append(title);
    const cy = y + height / 2;
    const name = svg('text', {class: 'rack-dev-name', x: RAIL + 8, y: cy, 'dominant-baseline': 'central'});
    const m = svg('text', {class: 'rack-dev-metrics', x: RAIL + INNER - 7, y: cy, 'text-anchor': 'end', 'dominant-baseline': 'central'});
    g.append(rect, name, m);
    const entry = {rect, title, name, m, rack: n.rack, unit: n.rackUnit, units: n.rackUnits};
    this.devices.set(n.id, entry);
    this.paint(entry, n);
    return g;
  }

  // Colour and text of a device box from its node.
  paint(d, n) {
    const fill = n.material.colorHex;
    const ink = textOn(fill);
    // Solid, as in the legend: a half-transparent "down" grey would pass for
    // "unknown" on a page (CSS dashes the outline of a down device instead).
    d.rect.setAttribute('fill', fill);
    d.rect.setAttribute('data-health', healthName(n));
    const mtext = metrics(n);
    const name = fitText(nodeName(n), INNER - 16 - mtext.length * 6.2);
    if (d.name.textContent !== name) d.name.textContent = name;
    if (d.m.textContent !== mtext) d.m.textContent = mtext;
    for (const t of [d.name, d.m]) if (t.getAttribute('fill') !== ink) t.setAttribute('fill', ink);
    const tt = titleText(n);
    if (d.title.textContent !== tt) d.title.textContent = tt;
    const sel = this.ctx.shared.selected === n.id;
    if (sel) d.rect.setAttribute('data-selected', 'true');
    else d.rect.removeAttribute('data-selected');
  }

  // ---- live ------------------------------------------------------------------------

  update(changes) {
    if (changes.full || this.dirty) {
      this.dirty = true;
      if (this.visible) this.rebuild();
      return;
    }
    const t0 = performance.now();
    const racks = new Set();
    for (const [id, before, after] of changes.nodes) {
      const d = this.devices.get(id);
      if (before && after && d && after.rack === d.rack && after.rackUnit === d.unit && after.rackUnits === d.units) {
        this.paint(d, after);
        continue;
      }
      if (before && before.rack) racks.add(before.rack);
      if (after && after.rack) racks.add(after.rack);
    }
    for (const id of racks) {
      const card = this.cards.get(id);
      if (!card) {
        // A rack we do not know: the scene changed under us, build again.
        if (this.model.rackById.has(id)) { this.dirty = true; if (this.visible) this.rebuild(); return; }
        continue;
      }
      for (const [nid, d] of this.devices) if (d.rack === id) this.devices.delete(nid);
      const list = this.model.rackDevices(id);
      this.byRack.set(id, list);
      card.search = searchText(card.rack, list);
      if (card.built) this.buildRack(card);
    }
    this.ctx.frame(performance.now() - t0);
  }

  selectionChanged() {
    for (const [id, d] of this.devices) {
      const sel = this.ctx.shared.selected === id;
      if (sel) d.rect.setAttribute('data-selected', 'true');
      else d.rect.removeAttribute('data-selected');
    }
  }

  applyFilter() {
    const q = this.filter.value.trim().toLowerCase();
    let shown = 0;
    for (const card of this.cards.values()) {
      const match = !q || card.search.includes(q);
      card.fig.hidden = !match;
      if (match) shown++;
    }
    for (const sec of this.body.querySelectorAll('.net-room')) {
      sec.hidden = !sec.querySelector('.net-rack:not([hidden])');
    }
    const racks = (n) => `${n} rack${n === 1 ? '' : 's'}`;
    this.count.textContent = q ? `${shown} of ${racks(this.cards.size)}` : racks(this.cards.size);
  }
}
