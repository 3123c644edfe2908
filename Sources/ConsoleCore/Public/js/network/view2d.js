// The 2D topology: the twin's force layout (x2d, y2d) on a canvas. Nodes are
// shaped by kind and filled with their material colour (health); links are
// lines coloured by utilisation, wider the busier. Pan by dragging, zoom with
// the wheel (about the pointer) or a pinch, fit with the button or "0".
//
// Built for 10,000 nodes and 20,000 links: the scene is packed into typed
// arrays (rebuilt only when the graph changes; a colour change restyles in
// place), a frame draws only what is in view with one path per colour, and a
// frame is drawn only when something changed (requestAnimationFrame).

import {h} from '../dom.js';
import {onThemeChange} from '../charts.js';
import {nodeName, nodeRows, linkRows, linkTitle, isHost} from './model.js';
import {legend, Tooltip, shapeOf, shapePath, softwareGL} from './ui.js';

const LABEL_MAX_NODES = 300;   // labels when no more than this many nodes are in view…
const LABEL_MIN_RADIUS = 6;    // …or when nodes are drawn at least this big (px)
const LABEL_CAP = 2000;        // never try more labels than this in one frame
const HIT_SLOP = 4;            // px around a node or link that still hits it
const SLOW_FRAME_MS = 30;      // a full frame slower than this: move a snapshot while panning…
const SETTLE_MS = 160;         // …and draw properly once the view has been still this long
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans", sans-serif';

const linkWidth = (l) => {
  const u = l.utilizationPercent === null ? 0 : Math.max(0, Math.min(100, l.utilizationPercent));
  return Math.round((1.5 + 6 * u / 100) * 2) / 2;
};

// The index of a style in `list`, added (made by `make`) the first time
// its key is seen: paths are batched by style.
function intern(index, list, key, make) {
  let i = index.get(key);
  if (i === undefined) {
    i = list.length;
    list.push(make());
    index.set(key, i);
  }
  return i;
}

export class View2D {
  // ctx: {shared: {selected}, open(node), select(id), frame(ms)}
  constructor(container, model, ctx) {
    this.model = model;
    this.ctx = ctx;
    this.canvas = h('canvas', {class: 'net-canvas', tabindex: '0', role: 'img',
      'aria-label': 'Network topology. Drag to pan, wheel or +/- to zoom, 0 to fit; click a host to open it.'});
    const btn = (label, title, fn) => h('button', {type: 'button', class: 'btn net-tool', title, 'aria-label': title, on: {click: fn}}, label);
    this.tools = h('div', {class: 'net-tools'},
      btn('+', 'Zoom in', () => this.zoomBy(1.5)),
      btn('−', 'Zoom out', () => this.zoomBy(1 / 1.5)),
      btn('Fit', 'Fit to view', () => this.fit()));
    this.legend = legend('2d');
    this.el = h('div', {class: 'net-view net-2d', 'data-view': '2d'}, this.canvas, this.tools, this.legend);
    this.tip = new Tooltip(this.el);
    container.append(this.el);
    // On a software GL (SwiftShader, llvmpipe) an accelerated canvas is the
    // slow path — seconds for a 20,000-line frame where the CPU rasteriser
    // takes some 70 ms — so ask for a CPU canvas there.
    this.cpu = softwareGL();
    this.g = this.canvas.getContext('2d', {alpha: true, willReadFrequently: this.cpu});
    this.snap = null;                     // the last slow frame, to move while panning
    this.lastCost = 0;
    this.quickFrame = 0;
    this.settle = null;

    this.k = 1; this.tx = 0; this.ty = 0;  // screen = world × k + t (CSS px)
    this.w = 0; this.ht = 0; this.dpr = 1;
    this.needFit = true;
    this.packed = null;                   // see pack()
    this.orderDirty = false;
    this.frame = 0;
    this.visible = false;
    this.hover = null;                    // {type: 'node'|'link', i}
    this.mouse = null;                    // pointer position while over the canvas
    this.hoverFrame = 0;
    this.pointers = new Map();
    this.press = null;
    this.colors = null;

    this.offs = [];
    const on = (el, ev, fn, opts) => { el.addEventListener(ev, fn, opts); this.offs.push(() => el.removeEventListener(ev, fn, opts)); };
    on(this.canvas, 'pointerdown', (e) => this.onDown(e));
    on(this.canvas, 'pointermove', (e) => this.onMove(e));
    on(this.canvas, 'pointerup', (e) => this.onUp(e, true));
    on(this.canvas, 'pointercancel', (e) => this.onUp(e, false));
    on(this.canvas, 'pointerleave', () => { this.mouse = null; this.setHover(null); });
    on(this.canvas, 'wheel', (e) => this.onWheel(e), {passive: false});
    on(this.canvas, 'keydown', (e) => this.onKey(e));
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.el);
    this.offs.push(onThemeChange(() => { this.colors = null; this.invalidate(); }));
  }

  // ---- lifecycle ----------------------------------------------------------------

  show() {
    this.el.hidden = false;
    this.visible = true;
    this.resize();
    this.invalidate();
  }

  hide() {
    this.el.hidden = true;
    this.visible = false;
    this.tip.hide();
  }

  destroy() {
    this.offs.forEach((f) => f());
    this.ro.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
    if (this.quickFrame) cancelAnimationFrame(this.quickFrame);
    clearTimeout(this.settle);
    if (this.hoverFrame) cancelAnimationFrame(this.hoverFrame);
    this.el.remove();
  }

  // The model changed: restyle in place when only colours and values changed,
  // repack when the graph (nodes, links, their ends or 2D places) did.
  update(changes) {
    if (changes.full || !this.packed) {
      this.packed = null;
      if (!this.userMoved) this.needFit = true;
    } else {
      const p = this.packed;
      for (const [id, before, after] of changes.nodes) {
        const i = p.index.get(id);
        if (!before || !after || i === undefined || before.x2d !== after.x2d || before.y2d !== after.y2d || before.kind !== after.kind) {
          this.packed = null;
          break;
        }
        p.objs[i] = after;
        p.style[i] = this.nodeStyle(p, after);
        this.orderDirty = true;
      }
      if (this.packed) {
        for (const [id, before, after] of changes.links) {
          const i = p.linkIndex.get(id);
          if (!before || !after || i === undefined || before.sourceNode !== after.sourceNode || before.targetNode !== after.targetNode) {
            this.packed = null;
            break;
          }
          p.links[i] = after;
          p.lstyle[i] = this.linkStyle(p, after);
          this.orderDirty = true;
        }
      }
    }
    if (this.hover && this.mouse) this.tip.key = null;  // values may have changed
    this.invalidate();
  }

  colorOf(id) {
    const p = this.packed;
    if (p) {
      const i = p.index.get(id);
      return i === undefined ? null : p.styles[p.style[i]].fill;
    }
    const n = this.model.nodes.get(id);
    return n ? n.material.colorHex : null;
  }

  // Where a node is drawn, in client (viewport) coordinates; null when not.
  screenPoint(id) {
    const p = this.packed;
    const i = p ? p.index.get(id) : undefined;
    if (i === undefined || !this.visible) return null;
    const rect = this.canvas.getBoundingClientRect();
    return {x: rect.left + p.xs[i] * this.k + this.tx, y: rect.top + p.ys[i] * this.k + this.ty};
  }

  // ---- packing ---------------------------------------------------------------------

  // A node's fill. The material's opacity (0.5 for a down host) is for the 3D
  // view: on a flat page a half-transparent dark grey would pass for the light
  // "unknown" grey, so 2D draws the colour solid (as the legend shows it) and
  // only puts faded nodes underneath the others.
  nodeStyle(p, n) {
    const faded = n.material.opacity < 1;
    return intern(p.styleKey, p.styles, n.material.colorHex + (faded ? '/faded' : ''),
      () => ({fill: n.material.colorHex, faded}));
  }

  linkStyle(p, l) {
    const width = linkWidth(l);
    return intern(p.lstyleKey, p.lstyles, l.material.colorHex + '/' + width,
      () => ({color: l.material.colorHex, width}));
  }

  pack() {
    const model = this.model;
    const objs = [...model.nodes.values()];
    const n = objs.length;
    const p = {
      objs, index: new Map(),
      xs: new Float64Array(n), ys: new Float64Array(n),
      shape: new Uint8Array(n), style: new Uint16Array(n), styles: [], styleKey: new Map(),
      links: [...model.links.values()], linkIndex: new Map(),
      lstyles: [], lstyleKey: new Map(),
      order: null, lorder: null,
      minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity,
      spacing: 1, cell: 1, grid: new Map(),
    };
    for (let i = 0; i < n; i++) {
      const o = objs[i];
      p.index.set(o.id, i);
      p.xs[i] = o.x2d;
      p.ys[i] = o.y2d;
      p.shape[i] = shapeOf(o.kind);
      p.style[i] = this.nodeStyle(p, o);
      if (o.x2d < p.minX) p.minX = o.x2d;
      if (o.x2d > p.maxX) p.maxX = o.x2d;
      if (o.y2d < p.minY) p.minY = o.y2d;
      if (o.y2d > p.maxY) p.maxY = o.y2d;
    }
    const L = p.links.length;
    p.src = new Int32Array(L);
    p.dst = new Int32Array(L);
    p.lstyle = new Uint16Array(L);
    for (let i = 0; i < L; i++) {
      const l = p.links[i];
      p.linkIndex.set(l.id, i);
      const a = p.index.get(l.sourceNode), b = p.index.get(l.targetNode);
      p.src[i] = a === undefined ? -1 : a;
      p.dst[i] = b === undefined ? -1 : b;
      p.lstyle[i] = this.linkStyle(p, l);
    }
    // A uniform grid of the nodes (for hit tests), its cell the spacing
    // the nodes would have if spread evenly.
    const extent = Math.max(p.maxX - p.minX, p.maxY - p.minY) || 1;
    const even = n > 1 ? Math.sqrt(Math.max(1e-12, (p.maxX - p.minX) * (p.maxY - p.minY)) / n) || extent / Math.sqrt(n) : 1;
    p.cell = Math.max(even, extent / 2048);
    for (let i = 0; i < n; i++) {
      const key = this.cellKey(p, Math.floor(p.xs[i] / p.cell), Math.floor(p.ys[i] / p.cell));
      const bucket = p.grid.get(key);
      if (bucket) bucket.push(i);
      else p.grid.set(key, [i]);
    }
    // The usual distance from a node to its nearest neighbour sets the
    // node size: the median over a sample of the nodes.
    const near = [];
    const stride = Math.max(1, Math.floor(n / 1500));
    for (let i = 0; i < n; i += stride) {
      const d = this.nearest(p, i);
      if (d > 0 && Number.isFinite(d)) near.push(d);
    }
    if (near.length) {
      near.sort((a, b) => a - b);
      p.spacing = near[near.length >> 1];
    } else {
      p.spacing = n > 1 ? even : 1;
    }
    this.packed = p;
    this.orderDirty = true;
    // Indices changed: forget the hovered one (the next pointer move finds it).
    this.hover = null;
    this.tip.hide();
  }

  cellKey(p, cx, cy) { return (cx + 1048576) * 2097152 + (cy + 1048576); }

  // Distance from node i to its nearest other node (rings of grid cells
  // outwards; Infinity when there is none within a few cells).
  nearest(p, i) {
    const x = p.xs[i], y = p.ys[i];
    const cx = Math.floor(x / p.cell), cy = Math.floor(y / p.cell);
    let best = Infinity;
    for (let ring = 0; ring <= 3; ring++) {
      for (let gx = cx - ring; gx <= cx + ring; gx++) {
        for (let gy = cy - ring; gy <= cy + ring; gy++) {
          if (Math.max(Math.abs(gx - cx), Math.abs(gy - cy)) !== ring) continue;
          const bucket = p.grid.get(this.cellKey(p, gx, gy));
          if (!bucket) continue;
          for (const j of bucket) {
            if (j === i) continue;
            const d = Math.hypot(p.xs[j] - x, p.ys[j] - y);
            if (d > 0 && d < best) best = d;
          }
        }
      }
      // Anything found within this ring is nearer than any cell further out.
      if (best <= ring * p.cell) break;
    }
    return best;
  }

  // Draw order: grouped by style, so a frame sets each colour once.
  sortOrders() {
    const p = this.packed;
    const order = new Uint32Array(p.objs.length);
    for (let i = 0; i < order.length; i++) order[i] = i;
    // Faded (down) nodes first, so live ones are drawn over them.
    const rank = p.styles.map((s, i) => (s.faded ? 0 : 65536) + i);
    order.sort((a, b) => rank[p.style[a]] - rank[p.style[b]]);
    const lorder = new Uint32Array(p.links.length);
    for (let i = 0; i < lorder.length; i++) lorder[i] = i;
    // Busier (wider) links last, on top.
    const lrank = p.lstyles.map((s, i) => s.width * 4096 + i);
    lorder.sort((a, b) => lrank[p.lstyle[a]] - lrank[p.lstyle[b]]);
    p.order = order;
    p.lorder = lorder;
    this.orderDirty = false;
  }

  // ---- view ------------------------------------------------------------------------

  resize() {
    const w = this.el.clientWidth, ht = this.el.clientHeight;
    const dpr = window.devicePixelRatio || 1;
    if (w === this.w && ht === this.ht && dpr === this.dpr) return;
    // Keep the centre where it was.
    if (this.w && this.ht) {
      this.tx += (w - this.w) / 2;
      this.ty += (ht - this.ht) / 2;
    }
    this.w = w; this.ht = ht; this.dpr = dpr;
    this.snap = null;
    if (!this.userMoved) this.needFit = true;
    this.canvas.width = Math.max(1, Math.round(w * dpr));
    this.canvas.height = Math.max(1, Math.round(ht * dpr));
    this.canvas.style.width = w + 'px';
    this.canvas.style.height = ht + 'px';
    // Resizing cleared the canvas: draw now, before the next paint, rather
    // than show one blank frame.
    if (this.visible) {
      if (this.frame) cancelAnimationFrame(this.frame);
      this.draw();
    }
  }

  fit() {
    if (!this.packed) this.pack();
    const p = this.packed;
    if (!this.w || !this.ht) { this.needFit = true; return; }
    if (!p.objs.length) { this.k = 40; this.tx = this.w / 2; this.ty = this.ht / 2; this.invalidate(); return; }
    this.needFit = false;
    // Room around the drawing; at the bottom, above the legend.
    const pad = 30;
    const legendH = this.legend.offsetHeight || 0;
    const top = pad, bottom = Math.min(this.ht / 3, legendH ? legendH + 24 : pad);
    const bw = p.maxX - p.minX, bh = p.maxY - p.minY;
    const kx = bw > 0 ? (this.w - 2 * pad - 80) / bw : Infinity;   // 80: the labels to the right
    const ky = bh > 0 ? (this.ht - top - bottom) / bh : Infinity;
    let k = Math.min(kx, ky);
    if (!Number.isFinite(k) || k <= 0) k = 60 / p.spacing;
    this.k = k;
    this.fitK = k;
    this.tx = (this.w - 80) / 2 - (p.minX + bw / 2) * k;
    this.ty = top + (this.ht - top - bottom) / 2 - (p.minY + bh / 2) * k;
    this.invalidate();
  }

  zoomAt(sx, sy, factor) {
    this.userMoved = true;
    const fitK = this.fitK || this.k;
    const spacing = this.packed ? this.packed.spacing : 1;
    const min = Math.min(fitK / 4, 4 / spacing), max = Math.max(fitK * 4, 400 / spacing);
    const k = Math.max(min, Math.min(max, this.k * factor));
    const f = k / this.k;
    this.tx = sx - (sx - this.tx) * f;
    this.ty = sy - (sy - this.ty) * f;
    this.k = k;
    this.moved();
  }

  zoomBy(factor) { this.zoomAt(this.w / 2, this.ht / 2, factor); }

  // Node radius in px: 40 % of the usual nearest-neighbour distance, so
  // nodes seldom overlap, within 2–16 px.
  radius() {
    const s = this.packed ? this.packed.spacing : 1;
    return Math.max(2, Math.min(16, s * 0.4 * this.k));
  }

  invalidate() {
    if (!this.frame && this.visible) this.frame = requestAnimationFrame(() => this.draw());
  }

  // The view was panned or zoomed. Where a full frame is slow (a software
  // rasteriser with tens of thousands of lines in view), show the last full
  // frame moved and scaled at once — a few milliseconds — and draw properly
  // when the motion stops, so that dragging stays smooth.
  moved() {
    if (!this.snap || this.lastCost < SLOW_FRAME_MS) {
      this.invalidate();
      return;
    }
    if (!this.quickFrame && this.visible) this.quickFrame = requestAnimationFrame(() => this.quick());
    clearTimeout(this.settle);
    this.settle = setTimeout(() => this.invalidate(), SETTLE_MS);
  }

  quick() {
    this.quickFrame = 0;
    if (!this.visible || !this.snap || this.frame) return;
    const t0 = performance.now();
    const g = this.g, snap = this.snap, s = this.k / snap.k, d = this.dpr;
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, this.canvas.width, this.canvas.height);
    g.setTransform(s, 0, 0, s, d * (this.tx - s * snap.tx), d * (this.ty - s * snap.ty));
    g.drawImage(snap.canvas, 0, 0);
    this.ctx.frame(performance.now() - t0);
  }

  // After a full frame on a CPU canvas: how long it really took (reading one
  // pixel waits for the drawing), and a copy of it when it was slow.
  measure(t0) {
    if (!this.cpu) return;
    this.g.getImageData(0, 0, 1, 1);
    this.lastCost = performance.now() - t0;
    if (this.lastCost < SLOW_FRAME_MS) { this.snap = null; return; }
    if (!this.snap) {
      // A CPU canvas too: copying between the two is then a plain memory copy.
      const canvas = document.createElement('canvas');
      this.snap = {canvas, g: canvas.getContext('2d', {willReadFrequently: true})};
    }
    const c = this.snap.canvas;
    if (c.width !== this.canvas.width || c.height !== this.canvas.height) {
      c.width = this.canvas.width;
      c.height = this.canvas.height;
    }
    const sg = this.snap.g;
    sg.clearRect(0, 0, c.width, c.height);
    sg.drawImage(this.canvas, 0, 0);
    Object.assign(this.snap, {k: this.k, tx: this.tx, ty: this.ty});
  }

  themeColors() {
    if (!this.colors) {
      const cs = getComputedStyle(this.el);
      const v = (name, d) => cs.getPropertyValue(name).trim() || d;
      this.colors = {fg: v('--fg', '#19212c'), halo: v('--panel', '#ffffff'), accent: v('--accent', '#2563eb')};
    }
    return this.colors;
  }

  // ---- drawing ---------------------------------------------------------------------

  draw() {
    this.frame = 0;
    if (this.quickFrame) { cancelAnimationFrame(this.quickFrame); this.quickFrame = 0; }
    clearTimeout(this.settle);
    if (!this.visible || !this.w || !this.ht) return;
    const t0 = performance.now();
    if (!this.packed) this.pack();
    if (this.needFit) this.fit();
    if (this.orderDirty) this.sortOrders();
    const p = this.packed, g = this.g, k = this.k, tx = this.tx, ty = this.ty;
    const colors = this.themeColors();
    g.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    g.clearRect(0, 0, this.w, this.ht);
    const r = this.radius();
    // The world rectangle in view, with a margin for node size and labels.
    const m = (r + 2) / k;
    const x0 = -tx / k - m, x1 = (this.w - tx) / k + m, y0 = -ty / k - m, y1 = (this.ht - ty) / k + m;
    const xs = p.xs, ys = p.ys;

    // Links, one path per colour and width. Zoomed far out (small nodes) the
    // widths shrink with the nodes, so 20,000 lines stay a picture, not a blot.
    const lw = Math.max(0.35, Math.min(1, r / 6));
    g.lineCap = 'butt';
    g.globalAlpha = 0.9;
    let cur = -1;
    const lorder = p.lorder;
    for (let j = 0; j < lorder.length; j++) {
      const i = lorder[j];
      const a = p.src[i], b = p.dst[i];
      if (a < 0 || b < 0) continue;
      const ax = xs[a], ay = ys[a], bx = xs[b], by = ys[b];
      if ((ax < x0 && bx < x0) || (ax > x1 && bx > x1) || (ay < y0 && by < y0) || (ay > y1 && by > y1)) continue;
      const s = p.lstyle[i];
      if (s !== cur) {
        if (cur >= 0) g.stroke();
        cur = s;
        g.beginPath();
        g.strokeStyle = p.lstyles[s].color;
        g.lineWidth = p.lstyles[s].width * lw;
      }
      g.moveTo(ax * k + tx, ay * k + ty);
      g.lineTo(bx * k + tx, by * k + ty);
    }
    if (cur >= 0) g.stroke();
    g.globalAlpha = 1;

    // The hovered link, outlined.
    const selLink = this.hover && this.hover.type === 'link' ? this.hover.i : -1;
    if (selLink >= 0 && p.src[selLink] >= 0 && p.dst[selLink] >= 0) {
      const a = p.src[selLink], b = p.dst[selLink];
      const width = Math.max(1.5, p.lstyles[p.lstyle[selLink]].width * lw);
      g.beginPath();
      g.moveTo(xs[a] * k + tx, ys[a] * k + ty);
      g.lineTo(xs[b] * k + tx, ys[b] * k + ty);
      g.strokeStyle = colors.accent;
      g.lineWidth = width + 4;
      g.stroke();
      g.strokeStyle = p.lstyles[p.lstyle[selLink]].color;
      g.lineWidth = width;
      g.stroke();
    }

    // Nodes, one path per colour; small ones as squares (cheaper, and a
    // shape is not told apart below a few pixels anyway).
    const visible = this.visibleScratch && this.visibleScratch.length >= p.objs.length
      ? this.visibleScratch : (this.visibleScratch = new Uint32Array(p.objs.length));
    let nVisible = 0;
    const outline = r >= 5;
    g.lineWidth = 1;
    g.strokeStyle = colors.halo;
    cur = -1;
    const order = p.order;
    for (let j = 0; j < order.length; j++) {
      const i = order[j];
      const x = xs[i], y = ys[i];
      if (x < x0 || x > x1 || y < y0 || y > y1) continue;
      visible[nVisible++] = i;
      const s = p.style[i];
      if (s !== cur) {
        if (cur >= 0) { g.fill(); if (outline) g.stroke(); }
        cur = s;
        g.beginPath();
        g.fillStyle = p.styles[s].fill;
      }
      const sx = x * k + tx, sy = y * k + ty;
      if (r < 3) g.rect(sx - r, sy - r, 2 * r, 2 * r);
      else shapePath(g, p.shape[i], sx, sy, r);
    }
    if (cur >= 0) { g.fill(); if (outline) g.stroke(); }

    // Hovered and selected nodes: a ring.
    const selected = this.ctx.shared.selected ? p.index.get(this.ctx.shared.selected) : undefined;
    const hovered = this.hover && this.hover.type === 'node' ? this.hover.i : undefined;
    for (const i of [selected, hovered]) {
      if (i === undefined) continue;
      g.beginPath();
      shapePath(g, p.shape[i], xs[i] * k + tx, ys[i] * k + ty, Math.max(r, 4) + 3);
      g.strokeStyle = colors.accent;
      g.lineWidth = 2;
      g.stroke();
    }

    // Labels (level of detail): when few nodes are in view or they are drawn
    // big enough, every visible node's name that does not overlap one already
    // placed — the hovered and selected first, then switches, routers and
    // access points, then hosts.
    g.textBaseline = 'middle';
    g.lineJoin = 'round';
    g.lineWidth = 3;
    const placed = new Map();          // 64 px cell -> [x0, y0, x1, y1] rects
    const fits = (bx0, by0, bx1, by1) => {
      for (let cx = Math.floor(bx0 / 64); cx <= Math.floor(bx1 / 64); cx++) {
        for (let cy = Math.floor(by0 / 64); cy <= Math.floor(by1 / 64); cy++) {
          const list = placed.get(cx * 65536 + cy);
          if (list) for (const q of list) if (bx0 < q[2] && bx1 > q[0] && by0 < q[3] && by1 > q[1]) return false;
        }
      }
      return true;
    };
    const claim = (rect) => {
      for (let cx = Math.floor(rect[0] / 64); cx <= Math.floor(rect[2] / 64); cx++) {
        for (let cy = Math.floor(rect[1] / 64); cy <= Math.floor(rect[3] / 64); cy++) {
          const key = cx * 65536 + cy;
          if (placed.has(key)) placed.get(key).push(rect);
          else placed.set(key, [rect]);
        }
      }
    };
    const label = (i, force) => {
      const text = nodeName(p.objs[i]);
      const sx = xs[i] * k + tx + Math.max(r, 3) + 4, sy = ys[i] * k + ty;
      const w = g.measureText(text).width;
      const rect = [sx - 2, sy - 8, sx + w + 2, sy + 8];
      if (!force && !fits(rect[0], rect[1], rect[2], rect[3])) return false;
      claim(rect);
      g.strokeText(text, sx, sy);
      g.fillText(text, sx, sy);
      return true;
    };
    g.strokeStyle = colors.halo;
    g.fillStyle = colors.fg;
    g.font = 'bold ' + FONT;
    if (selected !== undefined) label(selected, true);
    if (hovered !== undefined && hovered !== selected) label(hovered, true);
    g.font = FONT;
    if (nVisible <= LABEL_MAX_NODES || r >= LABEL_MIN_RADIUS) {
      let tries = 0;
      for (const hosts of [false, true]) {
        for (let j = 0; j < nVisible && tries < LABEL_CAP; j++) {
          const i = visible[j];
          if (i === selected || i === hovered || (p.shape[i] === 0) !== hosts) continue;
          tries++;
          label(i, false);
        }
      }
    }

    this.measure(t0);
    this.ctx.frame(performance.now() - t0);
  }

  // ---- hit tests -------------------------------------------------------------------

  nodeAt(sx, sy) {
    const p = this.packed;
    if (!p || !p.objs.length) return -1;
    const k = this.k;
    const wx = (sx - this.tx) / k, wy = (sy - this.ty) / k;
    const rad = (this.radius() + HIT_SLOP) / k;
    let best = -1, bestD = rad * rad;
    const test = (i) => {
      const dx = p.xs[i] - wx, dy = p.ys[i] - wy;
      const d = dx * dx + dy * dy;
      if (d <= bestD) { bestD = d; best = i; }
    };
    const c0x = Math.floor((wx - rad) / p.cell), c1x = Math.floor((wx + rad) / p.cell);
    const c0y = Math.floor((wy - rad) / p.cell), c1y = Math.floor((wy + rad) / p.cell);
    if ((c1x - c0x + 1) * (c1y - c0y + 1) > p.objs.length) {
      for (let i = 0; i < p.objs.length; i++) test(i);
    } else {
      for (let cx = c0x; cx <= c1x; cx++) {
        for (let cy = c0y; cy <= c1y; cy++) {
          const bucket = p.grid.get(this.cellKey(p, cx, cy));
          if (bucket) for (const i of bucket) test(i);
        }
      }
    }
    return best;
  }

  linkAt(sx, sy) {
    const p = this.packed;
    if (!p) return -1;
    const k = this.k;
    const wx = (sx - this.tx) / k, wy = (sy - this.ty) / k;
    let best = -1, bestD = Infinity;
    for (let i = 0; i < p.links.length; i++) {
      const a = p.src[i], b = p.dst[i];
      if (a < 0 || b < 0) continue;
      const tol = (p.lstyles[p.lstyle[i]].width / 2 + HIT_SLOP) / k;
      const ax = p.xs[a], ay = p.ys[a], bx = p.xs[b], by = p.ys[b];
      if (wx < Math.min(ax, bx) - tol || wx > Math.max(ax, bx) + tol || wy < Math.min(ay, by) - tol || wy > Math.max(ay, by) + tol) continue;
      const dx = bx - ax, dy = by - ay;
      const len2 = dx * dx + dy * dy;
      const t = len2 > 0 ? Math.max(0, Math.min(1, ((wx - ax) * dx + (wy - ay) * dy) / len2)) : 0;
      const d = Math.hypot(ax + t * dx - wx, ay + t * dy - wy);
      if (d <= tol && d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  hitAt(sx, sy) {
    const i = this.nodeAt(sx, sy);
    if (i >= 0) return {type: 'node', i};
    const j = this.linkAt(sx, sy);
    return j >= 0 ? {type: 'link', i: j} : null;
  }

  setHover(hit) {
    const same = (a, b) => (a === b) || (a && b && a.type === b.type && a.i === b.i);
    if (!same(hit, this.hover)) {
      this.hover = hit;
      this.invalidate();
    }
    const p = this.packed;
    if (!hit || !this.mouse || !p) {
      this.tip.hide();
      this.canvas.style.cursor = this.press ? 'grabbing' : '';
      return;
    }
    const seq = this.model.sequence;
    if (hit.type === 'node') {
      const n = p.objs[hit.i];
      this.tip.show(`n:${n.id}:${seq}`, nodeName(n), nodeRows(n, this.model), this.mouse.x, this.mouse.y);
      this.canvas.style.cursor = isHost(n) ? 'pointer' : '';
    } else {
      const l = p.links[hit.i];
      this.tip.show(`l:${l.id}:${seq}`, linkTitle(l, this.model), linkRows(l), this.mouse.x, this.mouse.y);
      this.canvas.style.cursor = '';
    }
  }

  // ---- input -----------------------------------------------------------------------

  local(e) {
    const rect = this.canvas.getBoundingClientRect();
    return {x: e.clientX - rect.left, y: e.clientY - rect.top};
  }

  onDown(e) {
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    const pos = this.local(e);
    this.pointers.set(e.pointerId, pos);
    try { this.canvas.setPointerCapture(e.pointerId); } catch { /* not capturable */ }
    if (this.pointers.size === 1) this.press = {x: pos.x, y: pos.y, moved: false};
    else if (this.press) this.press.moved = true;   // a pinch is never a click
  }

  onMove(e) {
    const pos = this.local(e);
    const prev = this.pointers.get(e.pointerId);
    if (prev) {
      if (this.pointers.size === 1 && this.press) {
        if (!this.press.moved && Math.hypot(pos.x - this.press.x, pos.y - this.press.y) > 4) {
          this.press.moved = true;
          this.canvas.style.cursor = 'grabbing';
          this.tip.hide();
        }
        if (this.press.moved) {
          this.userMoved = true;
          this.tx += pos.x - prev.x;
          this.ty += pos.y - prev.y;
          this.moved();
        }
      } else if (this.pointers.size === 2) {
        const other = [...this.pointers.entries()].find(([id]) => id !== e.pointerId)[1];
        const d0 = Math.hypot(prev.x - other.x, prev.y - other.y);
        const d1 = Math.hypot(pos.x - other.x, pos.y - other.y);
        const mx = (pos.x + other.x) / 2, my = (pos.y + other.y) / 2;
        this.tx += (pos.x - prev.x) / 2;
        this.ty += (pos.y - prev.y) / 2;
        if (d0 > 0 && d1 > 0) this.zoomAt(mx, my, d1 / d0);
        else this.moved();
      }
      this.pointers.set(e.pointerId, pos);
      if (this.press && this.press.moved) return;
    }
    if (e.pointerType !== 'mouse' && !prev) return;
    this.mouse = pos;
    // One hit test per frame, however fast the pointer moves.
    if (!this.hoverFrame) {
      this.hoverFrame = requestAnimationFrame(() => {
        this.hoverFrame = 0;
        if (this.mouse && this.packed && !(this.press && this.press.moved)) this.setHover(this.hitAt(this.mouse.x, this.mouse.y));
      });
    }
    if (this.hover) this.tip.move(pos.x, pos.y);
  }

  onUp(e, isUp) {
    if (!this.pointers.has(e.pointerId)) return;
    this.pointers.delete(e.pointerId);
    const press = this.press;
    if (this.pointers.size > 0) return;
    this.press = null;
    this.canvas.style.cursor = '';
    if (!isUp || !press || press.moved) return;
    this.click(this.local(e));
  }

  click(pos) {
    const hit = this.packed ? this.hitAt(pos.x, pos.y) : null;
    if (hit && hit.type === 'node') {
      const n = this.packed.objs[hit.i];
      this.ctx.select(n.id);
      if (isHost(n)) this.ctx.open(n);
    } else if (!hit) {
      this.ctx.select(null);
    }
    this.invalidate();
  }

  onWheel(e) {
    e.preventDefault();
    const pos = this.local(e);
    const unit = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : 0.0015;
    this.zoomAt(pos.x, pos.y, Math.exp(-e.deltaY * unit));
    this.tip.hide();
  }

  onKey(e) {
    const step = 60;
    if (e.key.startsWith('Arrow')) this.userMoved = true;
    switch (e.key) {
      case '+': case '=': this.zoomBy(1.25); break;
      case '-': case '_': this.zoomBy(0.8); break;
      case '0': case 'f': this.fit(); break;
      case 'ArrowLeft': this.tx += step; this.moved(); break;
      case 'ArrowRight': this.tx -= step; this.moved(); break;
      case 'ArrowUp': this.ty += step; this.moved(); break;
      case 'ArrowDown': this.ty -= step; this.moved(); break;
      case 'Escape': this.ctx.select(null); this.invalidate(); break;
      default: return;
    }
    e.preventDefault();
  }
}
