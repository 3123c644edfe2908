// Network: the twin's scene (docs/twin.md) in three views chosen by tabs —
// the 2D topology, the 3D mirror world and the rack elevations — kept live
// from the twin's diffs. Route: #/network?view=2d|3d|racks.
//
// The scene is fetched once, then every {"type":"twin"} message's diff is
// applied when its base is the sequence we hold; any other base, a
// fullRefresh or a reconnect fetches the whole scene again. Views are made
// the first time their tab opens and kept (hidden) after, so switching back
// is instant; each gets every change and redraws only when shown.
//
// For tests, window.mirrorNetwork = {view, sequence, nodes, links, frames,
// lastFrameMs, refetches (full scene fetches, the first one included),
// firstFrame3dMs, mounted, colorOf(id) (the colour the current view draws
// that node with, '#rrggbb'), screenPoint(id) / screenPosition(id) (where),
// applyMessage(msg) (a {"type":"twin"} message, as from the socket)}.

import * as api from '../api.js';
import * as live from '../live.js';
import * as fmt from '../format.js';
import {h, setText} from '../dom.js';
import {errorNotice} from './common.js';
import {SceneModel} from '../network/model.js';
import {View2D} from '../network/view2d.js';
import {View3D} from '../network/view3d.js';
import {RacksView} from '../network/racks.js';

const SCENE_URL = '/api/v1/twin/scene';
const RETRY_MS = 15000;
const VIEWS = [
  ['2d', '2D topology', View2D],
  ['3d', '3D world', View3D],
  ['racks', 'Racks', RacksView],
];

export function networkScreen(root, params = {}) {
  let view = VIEWS.some(([v]) => v === params.view) ? params.view : '2d';
  const model = new SceneModel();
  const views = {};                 // made on first show
  const shared = {selected: null};  // the selected node id, the same in every view
  const offs = [];
  let alive = true;
  let loading = false;
  let again = false;                // fetch once more when the current fetch ends
  let queued = [];                  // diffs that came while fetching
  let retryTimer = null;

  const hooks = {
    view, sequence: null, nodes: 0, links: 0, frames: 0, lastFrameMs: 0, refetches: 0,
    firstFrame3dMs: null, mounted: true,
    colorOf(id) {
      if (!alive) return null;
      const v = views[view];
      if (v) return v.colorOf(String(id));
      const n = model.nodes.get(String(id));
      return n ? n.material.colorHex : null;
    },
    // Where the current view draws that node (to point at it in a test):
    // screenPoint in client coordinates {x, y}, screenPosition as [x, y] from
    // the top left of the view's canvas; null when it is not drawn.
    screenPoint(id) {
      const v = alive && views[view];
      return v && v.screenPoint ? v.screenPoint(String(id)) : null;
    },
    screenPosition(id) {
      const p = hooks.screenPoint(id);
      const canvas = p && stage.querySelector(`.net-view[data-view="${view}"] canvas`);
      if (!canvas) return p && [p.x, p.y];
      const r = canvas.getBoundingClientRect();
      return [p.x - r.left, p.y - r.top];
    },
    // Hand the screen a live message as if the socket had brought it.
    applyMessage(msg) { onTwin(msg); },
  };
  window.mirrorNetwork = hooks;

  // ---- DOM ----
  const tabs = VIEWS.map(([id, label]) => h('button', {
    type: 'button', class: 'btn', role: 'tab', id: `net-tab-${id}`, 'data-view': id,
    'aria-controls': 'net-stage', on: {click: () => setView(id)}}, label));
  const tabList = h('div', {class: 'seg net-tabs', role: 'tablist', 'aria-label': 'Network view'}, tabs);
  tabList.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
    const i = VIEWS.findIndex(([v]) => v === view);
    const next = VIEWS[(i + (e.key === 'ArrowRight' ? 1 : VIEWS.length - 1)) % VIEWS.length][0];
    setView(next);
    document.getElementById(`net-tab-${next}`).focus();
    e.preventDefault();
  });
  const status = h('span', {id: 'net-status', class: 'sub net-status', 'aria-live': 'polite'}, 'Loading…');
  const updated = h('span', {class: 'sub net-updated'});
  const notice = h('div');
  const stage = h('div', {id: 'net-stage', class: 'net-stage', role: 'tabpanel'});
  root.append(
    h('div', {class: 'screen-head'}, h('h1', null, 'Network'), tabList, status, updated),
    notice,
    stage);
  document.body.classList.add('fixed-height');

  // ---- views ----
  const ctx = {
    shared,
    open(node) { location.hash = '#/host/' + encodeURIComponent(node.id); },
    select(id) {
      if (shared.selected === id) return;
      shared.selected = id;
      for (const v of Object.values(views)) {
        if (v.selectionChanged) v.selectionChanged();
        else if (v.invalidate) v.invalidate();
      }
    },
    frame(ms) {
      hooks.frames++;
      hooks.lastFrameMs = Math.round(ms * 100) / 100;
    },
    firstFrame(ms) { hooks.firstFrame3dMs = Math.round(ms); },
  };

  function setView(id) {
    if (!alive) return;
    if (views[view] && view !== id) views[view].hide();
    view = id;
    hooks.view = id;
    for (const b of tabs) {
      const on = b.getAttribute('data-view') === id;
      b.setAttribute('aria-selected', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;
    }
    stage.setAttribute('aria-labelledby', `net-tab-${id}`);
    // Keep the view in the address without a hashchange (which would mount
    // the screen again).
    const hash = `#/network?view=${id}`;
    if (location.hash !== hash) history.replaceState(history.state, '', hash);
    if (!views[id]) {
      const Ctor = VIEWS.find(([v]) => v === id)[2];
      views[id] = new Ctor(stage, model, ctx);
    }
    views[id].show();
  }

  // ---- data ----
  function changed(changes) {
    hooks.sequence = model.sequence;
    hooks.nodes = model.nodes.size;
    hooks.links = model.links.size;
    const count = (n, what) => `${fmt.int(n)} ${what}${n === 1 ? '' : 's'}`;
    setText(status, model.nodes.size
      ? `${count(model.nodes.size, 'node')} · ${count(model.links.size, 'link')} · ${count(model.racks.length, 'rack')}`
      : 'The twin has no nodes yet.');
    if (model.generatedAtUnixMs) {
      updated.setAttribute('data-reltime', String(model.generatedAtUnixMs));
      updated.title = `Scene ${model.sequence}, ${fmt.dateTime(model.generatedAtUnixMs)}`;
      setText(updated, fmt.ago(model.generatedAtUnixMs));
    }
    for (const v of Object.values(views)) {
      try { v.update(changes); } catch (e) { console.error('network view update failed', e); }
    }
  }

  function handle(diff) {
    switch (model.check(diff)) {
      case 'apply': changed(model.applyDiff(diff)); break;
      case 'stale': break;
      default: refetch();
    }
  }

  async function refetch() {
    if (loading) { again = true; return; }
    loading = true;
    clearTimeout(retryTimer);
    try {
      do {
        again = false;
        hooks.refetches++;
        const scene = await api.get(SCENE_URL);
        if (!alive) return;
        changed(model.load(scene));
        // What came while we fetched: newer diffs apply on top, older ones
        // are in the scene already, a gap means fetching again.
        const pending = queued;
        queued = [];
        for (const d of pending) {
          const c = model.check(d);
          if (c === 'apply') changed(model.applyDiff(d));
          else if (c === 'refetch') { again = true; break; }
        }
      } while (again && alive);
      notice.replaceChildren();
    } catch (e) {
      if (!alive) return;
      if (e.status !== 401) notice.replaceChildren(errorNotice(e, 'the network scene'));
      if (!model.loaded) setText(status, '');
      retryTimer = setTimeout(refetch, RETRY_MS);
    } finally {
      loading = false;
    }
  }

  function onTwin(msg) {
    const diff = msg && msg.diff;
    if (!diff || !alive) return;
    if (loading || !model.loaded) queued.push(diff);
    else handle(diff);
  }

  offs.push(live.on('twin', onTwin));
  offs.push(live.on('_reconnected', () => refetch()));
  live.watch({watch: 'network'});

  setView(view);
  refetch();

  return {
    destroy() {
      alive = false;
      hooks.mounted = false;
      clearTimeout(retryTimer);
      offs.forEach((f) => f());
      for (const v of Object.values(views)) {
        try { v.destroy(); } catch (e) { console.error(e); }
      }
      document.body.classList.remove('fixed-height');
    },
  };
}
