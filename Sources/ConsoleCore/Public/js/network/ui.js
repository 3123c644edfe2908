// Pieces the network views share: the legend (health and utilisation colours
// from the API contract, kinds by shape), the kind shapes themselves (canvas
// and SVG), and the hover tooltip. Text goes in with textContent only.

import {h} from '../dom.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

// The twin's colours (docs/twin.md via the console's API contract). The views
// draw each node's and link's own material; these are for the legend.
export const HEALTH_LEGEND = [
  ['ok', '#2ecc71'],
  ['warning', '#f1c40f'],
  ['critical', '#e74c3c'],
  ['down', '#555b61'],
  ['unknown', '#9e9e9e'],
];

export const LINK_LEGEND = [
  ['< 50 %', '#4aa3df'],
  ['< 80 %', '#e67e22'],
  ['≥ 80 %', '#c0392b'],
  ['unknown', '#7f8c8d'],
];

export const KIND_SHAPES = [
  ['NODE_KIND_HOST', 'host', 'circle'],
  ['NODE_KIND_SWITCH', 'switch', 'square'],
  ['NODE_KIND_ROUTER', 'router', 'diamond'],
  ['NODE_KIND_ACCESS_POINT', 'access point', 'triangle'],
  ['NODE_KIND_OTHER', 'other', 'hexagon'],
];

// Shape index by kind: 0 circle, 1 square, 2 diamond, 3 triangle, 4 hexagon.
export function shapeOf(kind) {
  switch (kind) {
    case 'NODE_KIND_HOST': return 0;
    case 'NODE_KIND_SWITCH': return 1;
    case 'NODE_KIND_ROUTER': return 2;
    case 'NODE_KIND_ACCESS_POINT': return 3;
    default: return 4;
  }
}

const HEX_ANGLES = [0, 1, 2, 3, 4, 5].map((i) => [Math.cos(Math.PI / 3 * i + Math.PI / 6), Math.sin(Math.PI / 3 * i + Math.PI / 6)]);

// Add one node's outline to the current canvas path (radius r about x, y).
export function shapePath(ctx, shape, x, y, r) {
  switch (shape) {
    case 0:
      ctx.moveTo(x + r, y);
      ctx.arc(x, y, r, 0, Math.PI * 2);
      break;
    case 1: {
      const s = r * 0.88;
      ctx.rect(x - s, y - s, 2 * s, 2 * s);
      break;
    }
    case 2: {
      const s = r * 1.2;
      ctx.moveTo(x, y - s);
      ctx.lineTo(x + s, y);
      ctx.lineTo(x, y + s);
      ctx.lineTo(x - s, y);
      ctx.closePath();
      break;
    }
    case 3: {
      const s = r * 1.25;
      ctx.moveTo(x, y - s);
      ctx.lineTo(x + s * 0.92, y + s * 0.62);
      ctx.lineTo(x - s * 0.92, y + s * 0.62);
      ctx.closePath();
      break;
    }
    default:
      ctx.moveTo(x + r * 1.05 * HEX_ANGLES[0][0], y + r * 1.05 * HEX_ANGLES[0][1]);
      for (let i = 1; i < 6; i++) ctx.lineTo(x + r * 1.05 * HEX_ANGLES[i][0], y + r * 1.05 * HEX_ANGLES[i][1]);
      ctx.closePath();
  }
}

export function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  return el;
}

// A small SVG of a kind's shape, for the legend.
function shapeIcon(shape) {
  const icon = svg('svg', {viewBox: '-8 -8 16 16', width: 14, height: 14, class: 'net-shape', 'aria-hidden': 'true'});
  let el;
  if (shape === 'circle') el = svg('circle', {r: 5.5});
  else if (shape === 'square') el = svg('rect', {x: -5, y: -5, width: 10, height: 10});
  else if (shape === 'diamond') el = svg('polygon', {points: '0,-6.5 6.5,0 0,6.5 -6.5,0'});
  else if (shape === 'triangle') el = svg('polygon', {points: '0,-6.5 6.2,4.5 -6.2,4.5'});
  else {
    el = svg('polygon', {points: HEX_ANGLES.map(([c, s]) => `${(6 * c).toFixed(2)},${(6 * s).toFixed(2)}`).join(' ')});
  }
  icon.append(el);
  return icon;
}

function swatch(color, cls) {
  const s = h('span', {class: cls, 'aria-hidden': 'true'});
  s.style.background = color;
  return s;
}

// The legend for a view: '2d' (health, links, shapes), '3d' (health, links,
// kinds named in tooltips), 'racks' (health).
export function legend(view) {
  const health = h('div', {class: 'net-legend-group'}, h('span', {class: 'net-legend-title'}, 'Health'),
    HEALTH_LEGEND.map(([name, color]) => h('span', {class: 'net-legend-item', 'data-health': name}, swatch(color, 'net-swatch'), name)));
  const parts = [health];
  if (view !== 'racks') {
    parts.push(h('div', {class: 'net-legend-group'}, h('span', {class: 'net-legend-title'}, 'Link use'),
      LINK_LEGEND.map(([name, color]) => h('span', {class: 'net-legend-item'}, swatch(color, 'net-swatch-line'), name))));
  }
  if (view === '2d') {
    parts.push(h('div', {class: 'net-legend-group'}, h('span', {class: 'net-legend-title'}, 'Kind'),
      KIND_SHAPES.map(([, name, shape]) => h('span', {class: 'net-legend-item'}, shapeIcon(shape), name))));
  } else if (view === '3d') {
    parts.push(h('div', {class: 'net-legend-group net-legend-note'},
      'Brightness: CPU load. Faded: down. Kind: in the tooltip. Drag to turn, right-drag to pan, wheel to zoom.'));
  }
  return h('div', {class: 'net-legend', role: 'note', 'aria-label': 'Legend'}, parts);
}

// A tooltip over a view: a title and [label, value] rows, placed next to the
// pointer and kept inside its container.
export class Tooltip {
  constructor(container) {
    this.container = container;
    this.el = h('div', {class: 'net-tip', role: 'tooltip', hidden: true});
    container.append(this.el);
    this.key = null;
  }

  // key: what is shown (to rebuild only when it changes).
  show(key, title, rows, x, y) {
    if (key !== this.key) {
      this.key = key;
      const dl = h('dl', null, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
      this.el.replaceChildren(h('div', {class: 'net-tip-title'}, title), dl);
    }
    this.el.hidden = false;
    this.move(x, y);
  }

  move(x, y) {
    const cw = this.container.clientWidth, ch = this.container.clientHeight;
    const w = this.el.offsetWidth, ht = this.el.offsetHeight;
    let left = x + 14, top = y + 14;
    if (left + w > cw - 4) left = Math.max(4, x - w - 14);
    if (top + ht > ch - 4) top = Math.max(4, y - ht - 14);
    this.el.style.transform = `translate(${Math.round(left)}px, ${Math.round(top)}px)`;
  }

  hide() {
    this.el.hidden = true;
    this.key = null;
  }
}

// Whether WebGL here is drawn in software (SwiftShader, llvmpipe): asked once,
// from a throwaway context. The views then choose what is cheap on a CPU
// (a CPU canvas for 2D, no multisampling for 3D).
let software = null;

export function softwareGL() {
  if (software === null) {
    software = false;
    try {
      const gl = document.createElement('canvas').getContext('webgl');
      if (gl) {
        const info = gl.getExtension('WEBGL_debug_renderer_info');
        const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
        software = /swiftshader|llvmpipe|softpipe|software/i.test(name);
        const lose = gl.getExtension('WEBGL_lose_context');
        if (lose) lose.loseContext();
      }
    } catch { /* no WebGL: canvases are drawn by the CPU anyway */ }
  }
  return software;
}
