// Charts: canvas sparklines and small time charts drawn by our own code, and
// a thin wrapper over Dygraphs (Debian's libjs-dygraphs) for the detail charts.

import {h} from './dom.js';
import * as fmt from './format.js';

// ---- theme colours, read from the CSS custom properties -------------------

let palette = null;
const themeListeners = new Set();
const darkQuery = window.matchMedia('(prefers-color-scheme: dark)');
darkQuery.addEventListener('change', () => {
  palette = null;
  for (const fn of themeListeners) fn();
});

export function onThemeChange(fn) {
  themeListeners.add(fn);
  return () => themeListeners.delete(fn);
}

export function colors() {
  if (palette) return palette;
  const cs = getComputedStyle(document.documentElement);
  const v = (name) => cs.getPropertyValue(name).trim();
  palette = {
    series: [1, 2, 3, 4, 5, 6, 7, 8].map((i) => v(`--chart-${i}`)),
    grid: v('--chart-grid'),
    axis: v('--chart-axis'),
    text: v('--muted'),
    fg: v('--fg'),
    spark: v('--spark'),
    sparkFill: v('--spark-fill'),
    spark2: v('--spark-2'),
  };
  return palette;
}

// ---- sparklines -------------------------------------------------------------

export const SPARK_W = 48;
export const SPARK_H = 18;

export function sparkCanvas() {
  const c = h('canvas', {class: 'spark', 'aria-hidden': 'true'});
  const dpr = window.devicePixelRatio || 1;
  c.width = Math.round(SPARK_W * dpr);
  c.height = Math.round(SPARK_H * dpr);
  return c;
}

function sparkPath(ctx, values, n, lo, hi, w, ht) {
  const step = n > 1 ? w / (n - 1) : w;
  const span = hi - lo || 1;
  const off = n - values.length;     // align right: last value at the right edge
  let open = false;
  const pts = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) { open = false; pts.push(null); continue; }
    const x = (i + off) * step;
    const y = ht - 1 - ((Math.min(Math.max(v, lo), hi) - lo) / span) * (ht - 2);
    pts.push([x, y]);
    if (!open) { ctx.moveTo(x, y); open = true; } else ctx.lineTo(x, y);
  }
  return pts;
}

// values: numbers or null, oldest first. opts: {max, auto (fit min..max), values2}
export function drawSpark(canvas, values, opts = {}) {
  const ctx = canvas.getContext('2d');
  const dpr = canvas.width / SPARK_W;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, SPARK_W, SPARK_H);
  const a = values || [];
  const b = opts.values2 || null;
  const n = Math.max(a.length, b ? b.length : 0, 2);
  let hi = opts.max;
  let lo = 0;
  if (hi == null) {
    hi = -Infinity;
    let mn = Infinity;
    for (const arr of b ? [a, b] : [a]) {
      for (const v of arr) {
        if (typeof v !== 'number') continue;
        if (v > hi) hi = v;
        if (v < mn) mn = v;
      }
    }
    if (!Number.isFinite(hi)) { hi = 1; mn = 0; }
    if (opts.auto) {
      // a band around the values (temperatures: 40–60 °C should not look flat)
      const pad = Math.max((hi - mn) * 0.15, 0.5);
      lo = mn - pad;
      hi = hi + pad;
    } else if (hi <= 0) hi = 1;
  }
  const p = colors();
  ctx.lineWidth = 1.25;
  ctx.lineJoin = 'round';
  // area under the first series
  ctx.beginPath();
  const pts = sparkPath(ctx, a, n, lo, hi, SPARK_W, SPARK_H);
  ctx.strokeStyle = p.spark;
  ctx.stroke();
  ctx.fillStyle = p.sparkFill;
  let run = [];
  const flush = () => {
    if (run.length > 1) {
      ctx.beginPath();
      ctx.moveTo(run[0][0], SPARK_H);
      for (const [x, y] of run) ctx.lineTo(x, y);
      ctx.lineTo(run[run.length - 1][0], SPARK_H);
      ctx.closePath();
      ctx.fill();
    }
    run = [];
  };
  for (const pt of pts) { if (pt) run.push(pt); else flush(); }
  flush();
  if (b) {
    ctx.beginPath();
    sparkPath(ctx, b, n, lo, hi, SPARK_W, SPARK_H);
    ctx.strokeStyle = p.spark2;
    ctx.stroke();
  }
}

// ---- small time charts (overview) --------------------------------------------

// A canvas line chart that fills its container; series: [{label, points: [[t, v]], color}]
export class TimeChart {
  constructor(container, {yMax = null, yFormat = fmt.short, valueFormat = String} = {}) {
    this.container = container;
    this.yMax = yMax;
    this.yFormat = yFormat;
    this.valueFormat = valueFormat;
    this.series = [];
    this.canvas = h('canvas', {class: 'timechart-canvas'});
    this.tip = h('div', {class: 'timechart-tip', hidden: true});
    container.append(this.canvas, this.tip);
    this.ro = new ResizeObserver(() => this.draw());
    this.ro.observe(container);
    this.offTheme = onThemeChange(() => this.draw());
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => { this.tip.hidden = true; this.hoverX = null; this.draw(); });
  }

  set(series) {
    this.series = series;
    this.draw();
  }

  destroy() {
    this.ro.disconnect();
    this.offTheme();
  }

  layout() {
    const w = this.container.clientWidth;
    const ht = this.container.clientHeight;
    const right = 8, top = 8, bottom = 20;
    let t0 = Infinity, t1 = -Infinity, hi = 0;
    for (const s of this.series) {
      for (const [t, v] of s.points) {
        if (t < t0) t0 = t;
        if (t > t1) t1 = t;
        if (typeof v === 'number' && v > hi) hi = v;
      }
    }
    if (this.yMax != null) hi = this.yMax;
    else hi = niceMax(hi);
    const ctx = this.canvas.getContext('2d');
    ctx.font = '11px system-ui, sans-serif';
    let lw = 0;
    for (const f of [0, 0.5, 1]) lw = Math.max(lw, ctx.measureText(this.yFormat(hi * f)).width);
    const left = Math.ceil(lw) + 10;
    return {w, ht, left, right, top, bottom, t0, t1, hi,
      x: (t) => left + ((t - t0) / ((t1 - t0) || 1)) * (w - left - right),
      y: (v) => top + (1 - v / (hi || 1)) * (ht - top - bottom)};
  }

  draw() {
    const c = this.canvas;
    const L = this.layout();
    if (L.w === 0 || L.ht === 0) return;
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(L.w * dpr) || c.height !== Math.round(L.ht * dpr)) {
      c.width = Math.round(L.w * dpr);
      c.height = Math.round(L.ht * dpr);
      c.style.width = L.w + 'px';
      c.style.height = L.ht + 'px';
    }
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, L.w, L.ht);
    const p = colors();
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = p.text;
    ctx.strokeStyle = p.grid;
    ctx.lineWidth = 1;
    // horizontal grid: 0, 50 %, 100 % of the range
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const f of [0, 0.5, 1]) {
      const y = Math.round(L.y(L.hi * f)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(L.left, y);
      ctx.lineTo(L.w - L.right, y);
      ctx.stroke();
      ctx.fillText(this.yFormat(L.hi * f), L.left - 6, y);
    }
    if (!Number.isFinite(L.t0)) {
      ctx.textAlign = 'center';
      ctx.fillText('No data', (L.left + L.w) / 2, L.ht / 2);
      return;
    }
    // time labels
    ctx.textBaseline = 'alphabetic';
    const ticks = [[L.t0, 'left'], [(L.t0 + L.t1) / 2, 'center'], [L.t1, 'right']];
    for (const [t, align] of ticks) {
      const d = new Date(t);
      ctx.textAlign = align;
      ctx.fillText(`${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`, L.x(t), L.ht - 5);
    }
    // series
    this.series.forEach((s, i) => {
      const col = s.color || p.series[i % p.series.length];
      ctx.beginPath();
      let open = false;
      for (const [t, v] of s.points) {
        if (typeof v !== 'number') { open = false; continue; }
        const x = L.x(t), y = L.y(Math.min(v, L.hi));
        if (!open) { ctx.moveTo(x, y); open = true; } else ctx.lineTo(x, y);
      }
      ctx.strokeStyle = col;
      ctx.lineWidth = 1.5;
      ctx.stroke();
      if (i === 0 && this.series.length === 1) {
        ctx.lineTo(L.x(L.t1), L.y(0));
        ctx.lineTo(L.x(L.t0), L.y(0));
        ctx.closePath();
        ctx.globalAlpha = 0.12;
        ctx.fillStyle = col;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
    });
    if (this.hoverX != null) {
      ctx.strokeStyle = p.axis;
      ctx.beginPath();
      ctx.moveTo(Math.round(this.hoverX) + 0.5, L.top);
      ctx.lineTo(Math.round(this.hoverX) + 0.5, L.ht - L.bottom);
      ctx.stroke();
    }
  }

  hover(e) {
    const L = this.layout();
    if (!Number.isFinite(L.t0)) return;
    const rect = this.canvas.getBoundingClientRect();
    const px = e.clientX - rect.left;
    const t = L.t0 + ((px - L.left) / ((L.w - L.left - L.right) || 1)) * (L.t1 - L.t0);
    const lines = [];
    let best = null;
    for (const s of this.series) {
      let near = null;
      for (const pt of s.points) if (!near || Math.abs(pt[0] - t) < Math.abs(near[0] - t)) near = pt;
      if (near) {
        best = near[0];
        lines.push(`${s.label}: ${this.valueFormat(near[1])}`);
      }
    }
    if (best == null) return;
    this.hoverX = L.x(best);
    this.tip.textContent = `${fmt.time(best)}  ${lines.join('  ')}`;
    this.tip.hidden = false;
    this.draw();
  }
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const e = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * e) return m * e;
  return 10 * e;
}

// ---- Dygraphs ---------------------------------------------------------------

function dygraph() {
  const D = window.Dygraph;
  if (!D) return null;
  if (!D.__mirrorPatched) {
    // The stock legend writes HTML with inline style attributes (blocked by our
    // CSP) and puts series labels (host-reported keys) in with innerHTML. We
    // replace it with a legend that builds DOM nodes with textContent.
    if (D.Plugins && D.Plugins.Legend) D.PLUGINS = D.PLUGINS.filter((p) => p !== D.Plugins.Legend);
    D.__mirrorPatched = true;
  }
  return D;
}

export function dygraphsAvailable() { return !!(window.Dygraph && window.Dygraph.synchronize); }

// Legend + crosshair plugin: shows the values under the pointer; the synchronizer
// calls setSelection on every chart, so every chart shows its crosshair.
class TextLegend {
  activate(g) {
    this.g = g;
    this.box = h('div', {class: 'chart-legend', hidden: true});
    this.line = h('div', {class: 'chart-crosshair', hidden: true});
    g.graphDiv.append(this.line, this.box);
    return {select: this.select, deselect: this.deselect};
  }

  select(e) {
    const g = e.dygraph;
    if (e.selectedX === undefined) return this.deselect();
    const area = g.getArea();
    const x = g.toDomXCoord(e.selectedX);
    this.line.style.left = Math.round(x) + 'px';
    this.line.style.top = area.y + 'px';
    this.line.style.height = area.h + 'px';
    this.line.hidden = false;
    const fmtY = g.getOptionForAxis('valueFormatter', 'y') || ((v) => String(v));
    const colors = g.getColors();
    const labels = g.getLabels().slice(1);
    const rows = [h('div', {class: 'chart-legend-time'}, fmt.dateTime(e.selectedX))];
    const byName = new Map(e.selectedPoints.map((p) => [p.name, p]));
    labels.forEach((name, i) => {
      const p = byName.get(name);
      if (!p || p.yval == null || Number.isNaN(p.yval)) return;
      const sw = h('span', {class: 'chart-swatch'});
      sw.style.background = colors[i];
      rows.push(h('div', {class: 'chart-legend-row'}, sw, h('span', {class: 'chart-legend-name'}, name),
        h('span', {class: 'chart-legend-val'}, fmtY(p.yval))));
    });
    this.box.replaceChildren(...rows);
    this.box.hidden = false;
    // keep the box inside the plot, on the side away from the pointer
    const left = x > area.x + area.w / 2;
    this.box.classList.toggle('left', left);
    this.box.style.top = area.y + 'px';
    if (left) { this.box.style.left = (area.x + 4) + 'px'; this.box.style.right = ''; }
    else { this.box.style.left = ''; this.box.style.right = (g.size().width - area.x - area.w + 4) + 'px'; }
  }

  deselect() {
    if (this.line) this.line.hidden = true;
    if (this.box) this.box.hidden = true;
  }

  destroy() {
    this.line?.remove();
    this.box?.remove();
    this.g = null;
  }
}

// Merge several series ([{label, points: [[t, v]]}]) into Dygraph rows keyed by time.
export function mergeSeries(series) {
  const times = new Map();
  series.forEach((s, i) => {
    for (const p of s.points) {
      const t = p[0];
      let row = times.get(t);
      if (!row) { row = new Array(series.length + 1).fill(null); row[0] = t; times.set(t, row); }
      row[i + 1] = typeof p[1] === 'number' && Number.isFinite(p[1]) ? p[1] : null;
    }
  });
  const rows = [...times.values()].sort((a, b) => a[0] - b[0]);
  for (const r of rows) r[0] = new Date(r[0]);
  return rows;
}

// Series labels come from hosts (mount points, interface names): make them
// unique and harmless as Dygraph's per-series option keys.
export function safeLabels(labels) {
  const seen = new Set(['Time']);
  return labels.map((l) => {
    let s = String(l === '' || l == null ? 'value' : l);
    if (s in Object.prototype) s += ' ';
    while (seen.has(s)) s += '′';
    seen.add(s);
    return s;
  });
}

// One detail chart inside a card. set(series) draws or updates it.
export class DetailChart {
  constructor(card, plot, {valueFormatter = (v) => fmt.num(v), axisFormatter = fmt.short, valueRange = null} = {}) {
    this.card = card;
    this.plot = plot;
    this.valueFormatter = valueFormatter;
    this.axisFormatter = axisFormatter;
    this.valueRange = valueRange;
    this.g = null;
    this.labels = null;
  }

  options(labels, rows) {
    const p = colors();
    return {
      file: rows,
      labels: ['Time', ...labels],
      colors: labels.map((_, i) => p.series[i % p.series.length]),
      plugins: [TextLegend],
      strokeWidth: 1.4,
      highlightCircleSize: 3,
      gridLineColor: p.grid,
      axisLineColor: p.axis,
      axisLabelFontSize: 11,
      xAxisHeight: 20,
      rightGap: 8,
      connectSeparatedPoints: false,
      animatedZooms: false,
      includeZero: true,
      valueRange: this.valueRange,
      labelsUTC: false,
      resizable: 'passive',
      axes: {
        x: {valueFormatter: (ms) => fmt.dateTime(ms), axisLabelWidth: 60, pixelsPerLabel: 70},
        y: {
          valueFormatter: (v) => this.valueFormatter(v),
          axisLabelFormatter: (v) => this.axisFormatter(v),
          axisLabelWidth: 44,
          pixelsPerLabel: 24,
        },
      },
    };
  }

  // series: [{label, points: [[tMs, v]]}]. Answers the number of rows drawn.
  set(series, {resetZoom = false} = {}) {
    const D = dygraph();
    const labels = safeLabels(series.map((s) => s.label));
    const rows = mergeSeries(series);
    if (!D || rows.length === 0 || labels.length === 0) {
      this.destroy();
      this.card.classList.add('is-empty');
      return 0;
    }
    this.card.classList.remove('is-empty');
    const sameLabels = this.labels && this.labels.join('\u0000') === labels.join('\u0000');
    if (this.g && sameLabels) {
      const o = {file: rows};
      if (resetZoom) o.dateWindow = null;
      this.g.updateOptions(o);
    } else {
      this.destroy();
      this.g = new D(this.plot, rows, this.options(labels, rows));
      this.labels = labels;
      this.created = true;
    }
    return rows.length;
  }

  retheme() {
    if (!this.g) return;
    const p = colors();
    this.g.updateOptions({
      gridLineColor: p.grid,
      axisLineColor: p.axis,
      colors: this.labels.map((_, i) => p.series[i % p.series.length]),
    });
  }

  destroy() {
    if (this.g) {
      this.g.destroy();
      this.g = null;
      this.labels = null;
      this.plot.replaceChildren();
    }
  }
}

// Keeps a set of DetailCharts zoom- and selection-synchronised.
export class ChartSync {
  constructor() { this.sync = null; this.key = []; }

  update(charts) {
    const gs = charts.map((c) => c.g).filter(Boolean);
    if (gs.length === this.key.length && gs.every((g, i) => g === this.key[i])) return;
    this.detach();
    this.key = gs;
    const D = window.Dygraph;
    if (gs.length >= 2 && D && D.synchronize) {
      this.sync = D.synchronize(gs, {zoom: true, selection: true, range: false});
    }
  }

  detach() {
    if (this.sync) {
      try { this.sync.detach(); } catch { /* a chart was destroyed already */ }
    }
    this.sync = null;
    this.key = [];
  }
}
