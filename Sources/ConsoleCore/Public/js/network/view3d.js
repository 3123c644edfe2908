// The 3D mirror world: rooms as floor slabs, racks as translucent frames,
// every device a box where the twin puts it, glowing by its state, and the
// cables along their waypoints. three.js r111 (Debian's libjs-three) is
// loaded as classic scripts the first time this view opens.
//
// Built for 10,000 devices and 20,000 links in a handful of draw calls: the
// devices are one InstancedMesh (two: faded "down" ones are drawn apart,
// blended) whose per-instance colour, glow and opacity are attributes read by
// a patched Lambert material; all cables are one LineSegments with vertex
// colours; all racks one merged mesh and one merged set of frame lines.
// A frame is rendered only when the camera or the data changed.
// Picking is our own ray–box test over the devices (a few microseconds per
// device, no per-instance raycast through three).

import {h} from '../dom.js';
import {onThemeChange} from '../charts.js';
import {U, nodeName, nodeRows, isHost, toHex} from './model.js';
import {legend, Tooltip, softwareGL} from './ui.js';

export const THREE_URL = '/vendor/three/build/three.min.js';
export const ORBIT_URL = '/vendor/three/controls/OrbitControls.js';

const RACK_WIDTH = 0.6, RACK_DEPTH = 1.0;
const FLOOR_COLOR = '#d0d3d4';            // the twin's glTF floor slabs
const RACK_COLOR = '#2c3e50';             // and rack frames
const GAP = 0.004;                        // m taken off a device's height at top and bottom
const TUBE_MAX = 3000;                    // cable segments drawn with their thickness
const ROOM_LABELS_MAX = 40;
const RACK_LABELS_MAX = 60;

// ---- loading three.js ------------------------------------------------------------

let threeLoading = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.async = false;
    s.onload = () => resolve();
    s.onerror = () => { s.remove(); reject(new Error(`could not load ${src}`)); };
    document.head.append(s);
  });
}

// Resolves with window.THREE (with OrbitControls) once both scripts ran.
export function loadThree() {
  const T = window.THREE;
  if (T && T.WebGLRenderer && T.OrbitControls) return Promise.resolve(T);
  if (!threeLoading) {
    threeLoading = (async () => {
      if (!(window.THREE && window.THREE.WebGLRenderer)) await loadScript(THREE_URL);
      if (!window.THREE || !window.THREE.WebGLRenderer) throw new Error('three.js did not load');
      if (!window.THREE.OrbitControls) await loadScript(ORBIT_URL);
      if (!window.THREE.OrbitControls) throw new Error('OrbitControls did not load');
      return window.THREE;
    })();
    threeLoading.catch(() => { threeLoading = null; });
  }
  return threeLoading;
}

// ---- the device material ----------------------------------------------------------

// Lambert, with colour, glow (emissive = colour × intensity) and opacity per
// instance, and a darker rim along every box edge so that devices stacked unit
// on unit read as separate boxes even where they touch.
function deviceMaterial(THREE, transparent) {
  const m = new THREE.MeshLambertMaterial({color: 0xffffff, transparent, depthWrite: !transparent});
  m.onBeforeCompile = (shader) => {
    const decl = 'varying vec3 vInstColor;\nvarying vec2 vInstParams;\nvarying vec3 vBoxPos;\nvarying vec3 vBoxScale;\n';
    shader.vertexShader = shader.vertexShader
      .replace('#include <common>', '#include <common>\nattribute vec3 instColor;\nattribute vec2 instParams;\n' + decl)
      .replace('#include <color_vertex>', [
        '#include <color_vertex>',
        'vInstColor = instColor;',
        'vInstParams = instParams;',
        'vBoxPos = position;',
        'vBoxScale = vec3(length(instanceMatrix[0].xyz), length(instanceMatrix[1].xyz), length(instanceMatrix[2].xyz));',
      ].join('\n'));
    shader.fragmentShader = shader.fragmentShader
      .replace('#include <common>', '#include <common>\n' + decl)
      .replace('vec4 diffuseColor = vec4( diffuse, opacity );', [
        // Distance (m) from this point to the nearest edge of its face: of the
        // three distances to the face pairs, the smallest is the face itself,
        // the middle one the nearest edge.
        'vec3 faceD = (0.5 - abs(vBoxPos)) * vBoxScale;',
        'float dMin = min(faceD.x, min(faceD.y, faceD.z));',
        'float dMax = max(faceD.x, max(faceD.y, faceD.z));',
        'float edgeD = faceD.x + faceD.y + faceD.z - dMin - dMax;',
        'float rimW = min(0.003, 0.12 * min(vBoxScale.x, min(vBoxScale.y, vBoxScale.z)));',
        'float rim = smoothstep(0.0, rimW, edgeD);',
        'vec4 diffuseColor = vec4( diffuse * vInstColor * mix(0.35, 1.0, rim), opacity * vInstParams.y );',
      ].join('\n'))
      .replace('vec3 totalEmissiveRadiance = emissive;',
        'vec3 totalEmissiveRadiance = vInstColor * vInstParams.x * mix(0.2, 1.0, rim);')
      // A glowing box lights itself: the more it glows the less the lamps
      // shade it, so that colour plus glow stays its own hue (a critical red
      // at full CPU reads red, not washed-out pink) and is evenly bright.
      .replace('vec3 outgoingLight = reflectedLight.directDiffuse + reflectedLight.indirectDiffuse + totalEmissiveRadiance;',
        'vec3 outgoingLight = (reflectedLight.directDiffuse + reflectedLight.indirectDiffuse) * (1.0 - 0.85 * vInstParams.x) + totalEmissiveRadiance;');
  };
  return m;
}

// ---- the view -------------------------------------------------------------------------

export class View3D {
  // ctx: {shared: {selected}, open(node), select(id), frame(ms), firstFrame(ms)}
  constructor(container, model, ctx) {
    this.model = model;
    this.ctx = ctx;
    this.t0 = performance.now();
    this.status = h('div', {class: 'net-3d-status'}, 'Loading the 3D view…');
    this.labels = h('div', {class: 'net-labels', 'aria-hidden': 'true'});
    this.showCables = true;
    this.cablesButton = h('button', {type: 'button', class: 'btn net-tool', 'aria-pressed': 'true',
      title: 'Show or hide the cables', on: {click: () => this.toggleCables()}}, 'Cables');
    this.tools = h('div', {class: 'net-tools'}, this.cablesButton,
      h('button', {type: 'button', class: 'btn net-tool', title: 'Fit to view', 'aria-label': 'Fit to view', on: {click: () => this.fit()}}, 'Fit'));
    this.el = h('div', {class: 'net-view net-3d', 'data-view': '3d'}, this.status, this.labels, this.tools, legend('3d'));
    this.tip = new Tooltip(this.el);
    container.append(this.el);
    this.visible = false;
    this.alive = true;
    this.ready = false;
    this.frame = 0;
    this.hoverFrame = 0;
    this.rendered = 0;
    this.needFull = true;       // rebuild everything at the next render
    this.needLinks = false;     // rebuild the cables
    this.needFit = true;
    this.hover = -1;            // device index under the pointer
    this.mouse = null;
    this.press = null;
    this.offs = [];
    this.labelEls = new Map();  // key -> span
    this.init().catch((e) => {
      if (!this.alive) return;
      console.warn('3D view', e);
      this.status.textContent = `The 3D view is not available here: ${e && e.message ? e.message : e}`;
      this.status.hidden = false;
    });
  }

  async init() {
    const THREE = await loadThree();
    if (!this.alive) return;
    this.T = THREE;
    let renderer;
    try {
      // Multisampling costs a software rasteriser (SwiftShader) more than half
      // of every frame; a real GPU does it for next to nothing.
      renderer = new THREE.WebGLRenderer({antialias: !softwareGL(), powerPreference: 'high-performance'});
    } catch (e) {
      throw new Error('WebGL could not start (' + (e && e.message ? e.message : e) + ')');
    }
    this.renderer = renderer;
    renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    const canvas = renderer.domElement;
    canvas.className = 'net-canvas';
    canvas.setAttribute('tabindex', '0');
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', 'The network in 3D. Drag to turn, right-drag or arrow keys to pan, wheel to zoom; click a host to open it.');
    this.el.prepend(canvas);
    this.canvas = canvas;
    this.status.hidden = true;

    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(50, 1, 0.05, 1000);
    // Soft light, so that a box's own colour (and its glow) is what one sees.
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x9098a0, 0.85));
    const sun = new THREE.DirectionalLight(0xffffff, 0.25);
    sun.position.set(0.4, 1, 0.7);
    this.scene.add(sun);
    this.unitBox = new THREE.BoxBufferGeometry(1, 1, 1);
    this.edgesGeom = new THREE.EdgesGeometry(this.unitBox);
    this.matOpaque = deviceMaterial(THREE, false);
    this.matFaded = deviceMaterial(THREE, true);
    this.tubeMat = deviceMaterial(THREE, false);
    this.floorMat = new THREE.MeshLambertMaterial({color: FLOOR_COLOR, transparent: true, opacity: 0.35, depthWrite: false});
    this.rackMat = new THREE.MeshLambertMaterial({color: RACK_COLOR, transparent: true, opacity: 0.12, depthWrite: false, side: THREE.DoubleSide});
    this.frameMat = new THREE.LineBasicMaterial({color: 0x7f8c8d});
    this.floorEdgeMat = new THREE.LineBasicMaterial({color: 0x95a5a6});
    this.linkMat = new THREE.LineBasicMaterial({vertexColors: THREE.VertexColors});
    this.hiMat = new THREE.LineBasicMaterial({color: 0x2563eb, depthTest: false, transparent: true});
    this.hoverBox = new THREE.LineSegments(this.edgesGeom, this.hiMat);
    this.selectBox = new THREE.LineSegments(this.edgesGeom, this.hiMat);
    for (const b of [this.hoverBox, this.selectBox]) {
      b.visible = false;
      b.renderOrder = 10;
      b.matrixAutoUpdate = false;
      this.scene.add(b);
    }
    this.applyTheme();

    const controls = new THREE.OrbitControls(this.camera, canvas);
    controls.screenSpacePanning = true;
    controls.addEventListener('change', () => { if (!this.fitting) this.invalidate(); });
    controls.addEventListener('start', () => { this.userMoved = true; });
    this.controls = controls;

    const on = (el, ev, fn, opts) => { el.addEventListener(ev, fn, opts); this.offs.push(() => el.removeEventListener(ev, fn, opts)); };
    on(canvas, 'pointerdown', (e) => {
      if (e.button === 0) this.press = {x: e.clientX, y: e.clientY};
    });
    on(canvas, 'pointerup', (e) => {
      const p = this.press;
      this.press = null;
      if (p && e.button === 0 && Math.hypot(e.clientX - p.x, e.clientY - p.y) < 5) this.click(this.local(e));
    });
    on(canvas, 'pointermove', (e) => this.onMove(e));
    on(canvas, 'pointerleave', () => { this.mouse = null; this.setHover(-1); });
    on(canvas, 'webglcontextlost', (e) => { e.preventDefault(); this.status.textContent = 'The 3D view lost its graphics context.'; this.status.hidden = false; });
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.el);
    this.offs.push(onThemeChange(() => { this.applyTheme(); this.invalidate(); }));
    this.ready = true;
    this.resize();
    this.invalidate();
  }

  // ---- lifecycle ----------------------------------------------------------------

  show() {
    this.el.hidden = false;
    this.visible = true;
    if (this.ready) { this.resize(); this.invalidate(); }
  }

  hide() {
    this.el.hidden = true;
    this.visible = false;
    this.tip.hide();
  }

  destroy() {
    this.alive = false;
    this.offs.forEach((f) => f());
    if (this.ro) this.ro.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
    if (this.hoverFrame) cancelAnimationFrame(this.hoverFrame);
    if (this.ready) {
      this.controls.dispose();
      this.scene.traverse((o) => {
        if (o.geometry && o.geometry !== this.unitBox && o.geometry !== this.edgesGeom) o.geometry.dispose();
      });
      this.unitBox.dispose();
      this.edgesGeom.dispose();
      for (const m of [this.matOpaque, this.matFaded, this.tubeMat, this.floorMat, this.rackMat, this.frameMat, this.floorEdgeMat, this.linkMat, this.hiMat]) m.dispose();
      this.renderer.dispose();
      // Give the context back now: browsers keep only a few.
      this.renderer.forceContextLoss();
    }
    this.el.remove();
  }

  update(changes) {
    if (changes.full) {
      this.needFull = true;
      if (!this.userMoved) this.needFit = true;
    } else if (!this.needFull && this.ready && this.dev) {
      for (const [id, before, after] of changes.nodes) {
        const slot = this.dev.slot.get(id);
        if (!before || !after || !slot || this.placeChanged(before, after) ||
            (before.material.opacity < 1) !== (after.material.opacity < 1)) {
          this.needFull = true;
          break;
        }
        this.dev.objs[slot.i] = after;
        this.paint(slot, after);
      }
      if (!this.needFull) {
        for (const [id, before, after] of changes.links) {
          const range = this.linkRanges && this.linkRanges.get(id);
          if (!before || !after || !range || !sameWaypoints(before, after)) {
            this.needLinks = true;
            break;
          }
          this.paintLink(range, after);
        }
        this.tubesDirty = this.tubesDirty || changes.links.length > 0;
      }
    } else {
      this.needFull = true;
    }
    if (this.hover >= 0) this.tip.key = null;
    this.invalidate();
  }

  // Whether a node's box moved or changed size (then the meshes are rebuilt;
  // a new colour alone is painted in place).
  placeChanged(a, b) {
    return a.position.x !== b.position.x || a.position.y !== b.position.y || a.position.z !== b.position.z ||
      a.size.x !== b.size.x || a.size.y !== b.size.y || a.size.z !== b.size.z || a.rack !== b.rack;
  }

  colorOf(id) {
    if (!this.dev || this.needFull) {
      const n = this.model.nodes.get(id);
      return n ? n.material.colorHex : null;
    }
    const slot = this.dev.slot.get(id);
    if (!slot) return null;
    const a = slot.mesh.geometry.attributes.instColor.array;
    return toHex(a[slot.k * 3] * 255, a[slot.k * 3 + 1] * 255, a[slot.k * 3 + 2] * 255);
  }

  // Where a device can be pointed at, in client coordinates; null when it
  // cannot. Its centre may be hidden (a device racked under another one is
  // seen through its front face only), so this tries points on the faces
  // towards the camera, face centres first, and answers the first one that
  // picks this device even a pixel off in any direction (tests round).
  screenPoint(id) {
    const dev = this.dev;
    const slot = dev && !this.needFull && this.visible && this.w ? dev.slot.get(id) : null;
    if (!slot) return null;
    const T = this.T, i = slot.i;
    const c = new T.Vector3(dev.center[i * 3], dev.center[i * 3 + 1], dev.center[i * 3 + 2]);
    const half = [dev.half[i * 3], dev.half[i * 3 + 1], dev.half[i * 3 + 2]];
    const cos = dev.rot[i * 2], sin = dev.rot[i * 2 + 1];
    // Local (box) to world: turned about y by the rack's rotation.
    const world = (x, y, z) => new T.Vector3(c.x + cos * x + sin * z, c.y + y, c.z - sin * x + cos * z);
    const eye = this.camera.position;
    const faces = [];
    for (let axis = 0; axis < 3; axis++) {
      for (const sign of [1, -1]) {
        const at = [0, 0, 0];
        at[axis] = sign * half[axis];
        const centre = world(at[0], at[1], at[2]);
        const normal = world(at[0] * 2, at[1] * 2, at[2] * 2).sub(centre);
        const facing = normal.normalize().dot(eye.clone().sub(centre).normalize());
        if (facing > 0.05) faces.push({axis, sign, facing});
      }
    }
    faces.sort((a, b) => b.facing - a.facing);
    const rect = this.canvas.getBoundingClientRect();
    let fallback = null;
    for (const {axis, sign} of faces) {
      const [u, v] = [0, 1, 2].filter((a) => a !== axis);
      for (const du of [0, -0.5, 0.5]) {
        for (const dv of [0, -0.5, 0.5]) {
          const at = [0, 0, 0];
          at[axis] = sign * half[axis] * 0.999;
          at[u] = du * half[u];
          at[v] = dv * half[v];
          const p = world(at[0], at[1], at[2]).project(this.camera);
          if (p.z > 1 || Math.abs(p.x) > 1 || Math.abs(p.y) > 1) continue;
          const sx = (p.x + 1) / 2 * this.w, sy = (1 - p.y) / 2 * this.ht;
          if (this.pick(sx, sy) !== i) continue;
          const out = {x: rect.left + sx, y: rect.top + sy};
          let all = true;
          for (const [ox, oy] of [[-1, -1], [0, -1], [1, -1], [-1, 0], [1, 0], [-1, 1], [0, 1], [1, 1]]) {
            if (this.pick(sx + ox, sy + oy) !== i) { all = false; break; }
          }
          if (all) return out;
          if (!fallback) fallback = out;
        }
      }
    }
    if (fallback) return fallback;
    const p = c.clone().project(this.camera);
    return p.z > 1 ? null : {x: rect.left + (p.x + 1) / 2 * this.w, y: rect.top + (1 - p.y) / 2 * this.ht};
  }

  toggleCables() {
    this.showCables = !this.showCables;
    this.cablesButton.setAttribute('aria-pressed', String(this.showCables));
    for (const o of [this.links, this.tubes]) if (o) o.visible = this.showCables;
    this.invalidate();
  }

  applyTheme() {
    const cs = getComputedStyle(this.el);
    const v = (name, d) => cs.getPropertyValue(name).trim() || d;
    const T = this.T;
    if (!T || !this.scene) return;
    try {
      this.scene.background = new T.Color(v('--bg', '#f3f5f8'));
      this.frameMat.color.set(v('--faint', '#8a95a5'));
      this.hiMat.color.set(v('--accent', '#2563eb'));
    } catch { /* a colour three cannot parse: keep the last */ }
  }

  // ---- building the scene -------------------------------------------------------------

  rackMatrix(rack, sx, sy, sz, x, y, z) {
    const T = this.T;
    const m = new T.Matrix4();
    const q = new T.Quaternion().setFromAxisAngle(new T.Vector3(0, 1, 0), rack ? rack.rotationDegrees * Math.PI / 180 : 0);
    m.compose(new T.Vector3(x, y, z), q, new T.Vector3(sx, sy, sz));
    return m;
  }

  // A device's box as drawn: its size, a little shorter (GAP) so adjacent
  // units never merge, turned with its rack.
  deviceMatrix(n) {
    const rack = n.rack ? this.model.rackById.get(n.rack) : null;
    const sy = Math.max(n.size.y * 0.6, n.size.y - 2 * GAP);
    return this.rackMatrix(rack, Math.max(0.01, n.size.x), Math.max(0.005, sy), Math.max(0.01, n.size.z),
      n.position.x, n.position.y, n.position.z);
  }

  clear(name) {
    const o = this[name];
    if (!o) return;
    this.scene.remove(o);
    if (o.geometry) o.geometry.dispose();
    if (o.isGroup) o.traverse((c) => { if (c.geometry && c.geometry !== this.unitBox && c.geometry !== this.edgesGeom) c.geometry.dispose(); });
    this[name] = null;
  }

  buildAll() {
    this.needFull = false;
    this.buildRooms();
    this.buildRacks();
    this.buildDevices();
    this.buildLinks();
    this.refreshHighlights();
  }

  buildRooms() {
    const T = this.T;
    this.clear('rooms');
    const group = new T.Group();
    for (const r of this.model.rooms) {
      if (!(r.size.x > 0 && r.size.z > 0)) continue;
      const m = new T.Matrix4().compose(
        new T.Vector3(r.origin.x + r.size.x / 2, r.origin.y - 0.01, r.origin.z + r.size.z / 2),
        new T.Quaternion(), new T.Vector3(r.size.x, 0.02, r.size.z));
      const slab = new T.Mesh(this.unitBox, this.floorMat);
      slab.matrixAutoUpdate = false;
      slab.matrix.copy(m);
      const edges = new T.LineSegments(this.edgesGeom, this.floorEdgeMat);
      edges.matrixAutoUpdate = false;
      edges.matrix.copy(m);
      group.add(slab, edges);
    }
    this.rooms = group;
    this.scene.add(group);
  }

  // All racks as one mesh (translucent sides) and one set of frame lines.
  buildRacks() {
    const T = this.T;
    this.clear('racks');
    this.clear('rackFrames');
    const racks = this.model.racks;
    if (!racks.length) return;
    const box = this.unitBox.toNonIndexed();
    const bp = box.attributes.position.array, bn = box.attributes.normal.array;
    const ep = this.edgesGeom.attributes.position.array;
    const pos = new Float32Array(racks.length * bp.length);
    const nor = new Float32Array(racks.length * bn.length);
    const lines = new Float32Array(racks.length * ep.length);
    const v = new T.Vector3();
    const nm = new T.Matrix3();
    racks.forEach((r, i) => {
      const height = r.heightUnits * U;
      const m = this.rackMatrix(r, RACK_WIDTH, height, RACK_DEPTH, r.position.x, r.position.y + height / 2, r.position.z);
      nm.getNormalMatrix(m);
      for (let j = 0; j < bp.length; j += 3) {
        v.set(bp[j], bp[j + 1], bp[j + 2]).applyMatrix4(m);
        pos.set([v.x, v.y, v.z], i * bp.length + j);
        v.set(bn[j], bn[j + 1], bn[j + 2]).applyMatrix3(nm).normalize();
        nor.set([v.x, v.y, v.z], i * bn.length + j);
      }
      for (let j = 0; j < ep.length; j += 3) {
        v.set(ep[j], ep[j + 1], ep[j + 2]).applyMatrix4(m);
        lines.set([v.x, v.y, v.z], i * ep.length + j);
      }
    });
    box.dispose();
    const g = new T.BufferGeometry();
    g.setAttribute('position', new T.BufferAttribute(pos, 3));
    g.setAttribute('normal', new T.BufferAttribute(nor, 3));
    this.racks = new T.Mesh(g, this.rackMat);
    this.racks.renderOrder = 2;
    const lg = new T.BufferGeometry();
    lg.setAttribute('position', new T.BufferAttribute(lines, 3));
    this.rackFrames = new T.LineSegments(lg, this.frameMat);
    this.scene.add(this.racks, this.rackFrames);
  }

  // Devices: one InstancedMesh for the opaque ones, one for the faded.
  buildDevices() {
    const T = this.T;
    this.clear('devOpaque');
    this.clear('devFaded');
    const objs = [...this.model.nodes.values()];
    const n = objs.length;
    const dev = {
      objs, slot: new Map(),
      center: new Float32Array(n * 3), half: new Float32Array(n * 3), rot: new Float32Array(n * 2),
    };
    const opaque = [], faded = [];
    objs.forEach((o, i) => (o.material.opacity < 1 ? faded : opaque).push(i));
    const make = (list, material) => {
      if (!list.length) return null;
      // A box of its own (24 vertices): a disposed geometry frees its buffers.
      const geom = this.unitBox.clone();
      geom.setAttribute('instColor', new T.InstancedBufferAttribute(new Float32Array(list.length * 3), 3));
      geom.setAttribute('instParams', new T.InstancedBufferAttribute(new Float32Array(list.length * 2), 2));
      const mesh = new T.InstancedMesh(geom, material, list.length);
      mesh.frustumCulled = false;   // the unit box's bounds say nothing about the instances
      const e = new T.Vector3(), q = new T.Quaternion(), s = new T.Vector3();
      list.forEach((i, k) => {
        const o = objs[i];
        const m = this.deviceMatrix(o);
        mesh.setMatrixAt(k, m);
        m.decompose(e, q, s);
        dev.center.set([e.x, e.y, e.z], i * 3);
        dev.half.set([s.x / 2, s.y / 2, s.z / 2], i * 3);
        const rack = o.rack ? this.model.rackById.get(o.rack) : null;
        const theta = rack ? rack.rotationDegrees * Math.PI / 180 : 0;
        dev.rot[i * 2] = Math.cos(theta);
        dev.rot[i * 2 + 1] = Math.sin(theta);
        const slot = {mesh, k, i};
        dev.slot.set(o.id, slot);
        this.paint(slot, o, true);
      });
      mesh.instanceMatrix.needsUpdate = true;
      return mesh;
    };
    this.devOpaque = make(opaque, this.matOpaque);
    this.devFaded = make(faded, this.matFaded);
    if (this.devFaded) this.devFaded.renderOrder = 3;
    for (const m of [this.devOpaque, this.devFaded]) if (m) this.scene.add(m);
    this.dev = dev;
    this.hover = -1;
    this.tip.hide();
  }

  // A device's colour, glow and opacity into its instance attributes.
  paint(slot, n, building) {
    const g = slot.mesh.geometry;
    const c = g.attributes.instColor, p = g.attributes.instParams;
    const hex = parseInt(n.material.colorHex.slice(1), 16);
    c.array[slot.k * 3] = ((hex >> 16) & 255) / 255;
    c.array[slot.k * 3 + 1] = ((hex >> 8) & 255) / 255;
    c.array[slot.k * 3 + 2] = (hex & 255) / 255;
    p.array[slot.k * 2] = n.material.emissiveIntensity;
    p.array[slot.k * 2 + 1] = n.material.opacity;
    if (!building) {
      c.needsUpdate = true;
      p.needsUpdate = true;
    }
  }

  // Cables: every segment of every path in one LineSegments, vertex colours.
  buildLinks() {
    const T = this.T;
    this.needLinks = false;
    this.clear('links');
    const nodes = this.model.nodes;
    const paths = [];
    let verts = 0;
    for (const l of this.model.links.values()) {
      let pts = l.waypoints;
      if (pts.length < 2) {
        const a = nodes.get(l.sourceNode), b = nodes.get(l.targetNode);
        if (!a || !b) continue;
        pts = [a.position, b.position];
      }
      paths.push([l, pts]);
      verts += (pts.length - 1) * 2;
    }
    const pos = new Float32Array(verts * 3);
    const col = new Float32Array(verts * 3);
    this.linkRanges = new Map();
    let v = 0;
    for (const [l, pts] of paths) {
      const start = v;
      for (let j = 0; j + 1 < pts.length; j++) {
        for (const p of [pts[j], pts[j + 1]]) {
          pos[v * 3] = p.x; pos[v * 3 + 1] = p.y; pos[v * 3 + 2] = p.z;
          v++;
        }
      }
      const range = {start, count: v - start, attr: null};
      this.linkRanges.set(l.id, range);
      this.writeLinkColor(col, range, l);
    }
    const g = new T.BufferGeometry();
    g.setAttribute('position', new T.BufferAttribute(pos, 3));
    const colors = new T.BufferAttribute(col, 3);
    g.setAttribute('color', colors);
    for (const r of this.linkRanges.values()) r.attr = colors;
    this.links = new T.LineSegments(g, this.linkMat);
    this.links.frustumCulled = false;
    this.links.visible = this.showCables;
    this.scene.add(this.links);
    this.buildTubes();
  }

  writeLinkColor(arr, range, l) {
    const hex = parseInt(l.material.colorHex.slice(1), 16);
    const r = ((hex >> 16) & 255) / 255, g = ((hex >> 8) & 255) / 255, b = (hex & 255) / 255;
    for (let i = range.start; i < range.start + range.count; i++) {
      arr[i * 3] = r; arr[i * 3 + 1] = g; arr[i * 3 + 2] = b;
    }
  }

  paintLink(range, l) {
    this.writeLinkColor(range.attr.array, range, l);
    range.attr.needsUpdate = true;
  }

  // The busier cables also as boxes of their thickness (a line is one pixel
  // wide whatever the zoom): the busiest first, at most TUBE_MAX segments.
  buildTubes() {
    const T = this.T;
    this.tubesDirty = false;
    this.clear('tubes');
    const busy = [...this.model.links.values()]
      .filter((l) => l.utilizationPercent !== null && l.utilizationPercent >= 50 && l.waypoints.length >= 2)
      .sort((a, b) => b.utilizationPercent - a.utilizationPercent);
    const segs = [];
    for (const l of busy) {
      for (let j = 0; j + 1 < l.waypoints.length && segs.length < TUBE_MAX; j++) segs.push([l, l.waypoints[j], l.waypoints[j + 1]]);
      if (segs.length >= TUBE_MAX) break;
    }
    if (!segs.length) return;
    const geom = this.unitBox.clone();
    const c = new Float32Array(segs.length * 3), p = new Float32Array(segs.length * 2);
    geom.setAttribute('instColor', new T.InstancedBufferAttribute(c, 3));
    geom.setAttribute('instParams', new T.InstancedBufferAttribute(p, 2));
    const mesh = new T.InstancedMesh(geom, this.tubeMat, segs.length);
    mesh.frustumCulled = false;
    const a = new T.Vector3(), b = new T.Vector3(), dir = new T.Vector3(), z = new T.Vector3(0, 0, 1);
    const q = new T.Quaternion(), s = new T.Vector3(), m = new T.Matrix4();
    segs.forEach(([l, p0, p1], k) => {
      a.set(p0.x, p0.y, p0.z);
      b.set(p1.x, p1.y, p1.z);
      dir.subVectors(b, a);
      const len = dir.length();
      if (len > 0) q.setFromUnitVectors(z, dir.normalize());
      const t = Math.max(0.005, l.thickness);
      s.set(t, t, len + t);
      m.compose(a.add(b).multiplyScalar(0.5), q, s);
      mesh.setMatrixAt(k, m);
      const hex = parseInt(l.material.colorHex.slice(1), 16);
      c.set([((hex >> 16) & 255) / 255, ((hex >> 8) & 255) / 255, (hex & 255) / 255], k * 3);
      p.set([l.material.emissiveIntensity * 0.6, 1], k * 2);
    });
    mesh.visible = this.showCables;
    this.tubes = mesh;
    this.scene.add(mesh);
  }

  // Everything in view: the bounds of rooms, racks and devices.
  fit(redraw = true) {
    if (!this.ready) return;
    const T = this.T;
    // What must be in view: the floors' corners, the racks' tops and every
    // device (a sample of them when there are very many).
    const box = new T.Box3();
    const points = [];
    const add = (x, y, z) => { const v = new T.Vector3(x, y, z); points.push(v); box.expandByPoint(v); };
    for (const r of this.model.rooms) {
      for (const [dx, dz] of [[0, 0], [1, 0], [0, 1], [1, 1]]) add(r.origin.x + dx * r.size.x, r.origin.y, r.origin.z + dz * r.size.z);
    }
    for (const r of this.model.racks) add(r.position.x, r.position.y + r.heightUnits * U, r.position.z);
    const every = Math.max(1, Math.floor(this.model.nodes.size / 5000));
    let i = 0;
    for (const n of this.model.nodes.values()) if (i++ % every === 0) add(n.position.x, n.position.y, n.position.z);
    if (box.isEmpty()) { add(-2, 0, -2); add(2, 2, 2); }
    const centre = box.getCenter(new T.Vector3());
    const size = box.getSize(new T.Vector3());
    const radius = Math.max(1.5, size.length() / 2);
    // Start far enough for the bounds' sphere to fit the narrower field of
    // view, then come closer until the box's corners fill about 85 % of it.
    const vfov = this.camera.fov * Math.PI / 180;
    const hfov = 2 * Math.atan(Math.tan(vfov / 2) * (this.camera.aspect || 1));
    let dist = radius / Math.sin(Math.min(vfov, hfov) / 2);
    const dir = new T.Vector3(0.55, 0.75, 1).normalize();
    const p = new T.Vector3();
    this.controls.target.copy(centre);
    for (let i = 0; i < 4; i++) {
      this.camera.position.copy(centre).addScaledVector(dir, dist);
      this.camera.near = Math.max(0.02, dist / 2000);
      this.camera.far = dist * 10 + radius * 4;
      this.camera.lookAt(centre);
      this.camera.updateMatrixWorld();
      this.camera.updateProjectionMatrix();
      let m = 0;
      for (const c of points) {
        p.copy(c).project(this.camera);
        m = Math.max(m, Math.abs(p.x), Math.abs(p.y));
      }
      if (!(m > 0) || Math.abs(m - 0.85) < 0.03) break;
      dist *= m / 0.85;
    }
    this.camera.near = Math.max(0.02, dist / 2000);
    this.camera.far = dist * 10 + radius * 4;
    this.camera.updateProjectionMatrix();
    this.controls.maxDistance = dist * 4;
    // (Its 'change' would ask for another frame; the caller draws anyway.)
    this.fitting = true;
    this.controls.update();
    this.fitting = false;
    // An empty scene (not loaded yet) is fitted again when it has something.
    this.needFit = this.model.nodes.size === 0 && this.model.rooms.length === 0;
    if (redraw) this.invalidate();
  }

  resize() {
    if (!this.ready) return;
    const w = this.el.clientWidth, ht = this.el.clientHeight;
    if (!w || !ht || (w === this.w && ht === this.ht)) return;
    this.w = w; this.ht = ht;
    this.renderer.setSize(w, ht, false);
    this.camera.aspect = w / ht;
    this.camera.updateProjectionMatrix();
    if (!this.userMoved) this.needFit = true;
    this.invalidate();
  }

  invalidate() {
    if (!this.frame && this.visible && this.ready) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    if (!this.visible || !this.ready || !this.w) return;
    const t0 = performance.now();
    if (this.needFull) this.buildAll();
    else {
      if (this.needLinks) this.buildLinks();
      else if (this.tubesDirty) this.buildTubes();
    }
    if (this.needFit) this.fit(false);
    this.renderer.render(this.scene, this.camera);
    this.rendered++;
    if (!this.firstDone && this.model.loaded) {
      // The first frame of the scene: wait for the GPU once, so that its
      // time (from this view's opening) is the real one.
      this.firstDone = true;
      const gl = this.renderer.getContext();
      gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
      this.ctx.firstFrame(performance.now() - this.t0);
    }
    this.placeLabels();
    this.ctx.frame(performance.now() - t0);
  }

  // ---- labels (HTML over the canvas) -------------------------------------------------

  placeLabels() {
    const T = this.T;
    const want = [];
    if (this.model.rooms.length <= ROOM_LABELS_MAX) {
      for (const r of this.model.rooms) {
        want.push([`room:${r.id}`, r.name, 'net-label room', new T.Vector3(r.origin.x + 0.1, r.origin.y, r.origin.z + r.size.z)]);
      }
    }
    if (this.model.racks.length <= RACK_LABELS_MAX) {
      for (const r of this.model.racks) {
        want.push([`rack:${r.id}`, r.id, 'net-label rack', new T.Vector3(r.position.x, r.position.y + r.heightUnits * U + 0.05, r.position.z)]);
      }
    }
    const sel = this.ctx.shared.selected && this.dev ? this.model.nodes.get(this.ctx.shared.selected) : null;
    const hov = this.hover >= 0 && this.dev ? this.dev.objs[this.hover] : null;
    for (const n of [sel, hov]) {
      if (!n || (n === sel && n === hov && want.some((w) => w[0] === 'dev:' + n.id))) continue;
      want.push([`dev:${n.id}`, nodeName(n), 'net-label device', new T.Vector3(n.position.x, n.position.y + n.size.y / 2, n.position.z)]);
    }
    const seen = new Set();
    for (const [key, text, cls, p] of want) {
      p.project(this.camera);
      if (p.z > 1 || p.z < -1 || Math.abs(p.x) > 1.1 || Math.abs(p.y) > 1.1) continue;
      seen.add(key);
      let el = this.labelEls.get(key);
      if (!el) {
        el = h('span', {class: cls});
        this.labelEls.set(key, el);
        this.labels.append(el);
      }
      if (el.textContent !== text) el.textContent = text;
      el.style.transform = `translate(${Math.round((p.x + 1) / 2 * this.w)}px, ${Math.round((1 - p.y) / 2 * this.ht)}px) translate(-50%, -130%)`;
    }
    for (const [key, el] of this.labelEls) {
      if (!seen.has(key)) { el.remove(); this.labelEls.delete(key); }
    }
  }

  // ---- picking --------------------------------------------------------------------------

  local(e) {
    const rect = this.canvas.getBoundingClientRect();
    return {x: e.clientX - rect.left, y: e.clientY - rect.top};
  }

  // The nearest device box the ray through (sx, sy) enters; -1 for none.
  pick(sx, sy) {
    const dev = this.dev;
    if (!dev || this.needFull) return -1;
    const T = this.T;
    const ray = this.raycaster || (this.raycaster = new T.Raycaster());
    ray.setFromCamera(new T.Vector2(sx / this.w * 2 - 1, -(sy / this.ht) * 2 + 1), this.camera);
    const o = ray.ray.origin, d = ray.ray.direction;
    let best = -1, bestT = Infinity;
    const n = dev.objs.length;
    for (let i = 0; i < n; i++) {
      const cx = dev.center[i * 3], cy = dev.center[i * 3 + 1], cz = dev.center[i * 3 + 2];
      const c = dev.rot[i * 2], s = dev.rot[i * 2 + 1];
      // The ray in the box's own frame (turned back by the rack's rotation).
      const wx = o.x - cx, wz = o.z - cz;
      const ox = c * wx - s * wz, oy = o.y - cy, oz = s * wx + c * wz;
      const dx = c * d.x - s * d.z, dy = d.y, dz = s * d.x + c * d.z;
      let t0 = -Infinity, t1 = Infinity;
      let hit = true;
      for (let a = 0; a < 3 && hit; a++) {
        const oa = a === 0 ? ox : a === 1 ? oy : oz;
        const da = a === 0 ? dx : a === 1 ? dy : dz;
        const hw = dev.half[i * 3 + a];
        if (Math.abs(da) < 1e-12) {
          if (oa < -hw || oa > hw) hit = false;
        } else {
          let ta = (-hw - oa) / da, tb = (hw - oa) / da;
          if (ta > tb) { const t = ta; ta = tb; tb = t; }
          if (ta > t0) t0 = ta;
          if (tb < t1) t1 = tb;
          if (t0 > t1 || t1 < 0) hit = false;
        }
      }
      if (hit && t0 < bestT) { bestT = Math.max(0, t0); best = i; }
    }
    return best;
  }

  onMove(e) {
    this.mouse = this.local(e);
    if (e.buttons) { this.tip.hide(); return; }   // turning or panning
    if (!this.hoverFrame) {
      this.hoverFrame = requestAnimationFrame(() => {
        this.hoverFrame = 0;
        if (this.mouse) this.setHover(this.pick(this.mouse.x, this.mouse.y));
      });
    }
    if (this.hover >= 0) this.tip.move(this.mouse.x, this.mouse.y);
  }

  setHover(i) {
    if (i !== this.hover) {
      this.hover = i;
      this.refreshHighlights();
      this.invalidate();
    }
    if (i < 0 || !this.mouse) {
      this.tip.hide();
      this.canvas.style.cursor = '';
      return;
    }
    const n = this.dev.objs[i];
    this.tip.show(`n:${n.id}:${this.model.sequence}`, nodeName(n), nodeRows(n, this.model), this.mouse.x, this.mouse.y);
    this.canvas.style.cursor = isHost(n) ? 'pointer' : '';
  }

  click(pos) {
    const i = this.pick(pos.x, pos.y);
    if (i < 0) {
      this.ctx.select(null);
      return;
    }
    const n = this.dev.objs[i];
    this.ctx.select(n.id);
    if (isHost(n)) this.ctx.open(n);
  }

  // Outline boxes around the hovered and the selected device.
  refreshHighlights() {
    if (!this.ready) return;
    const place = (box, n) => {
      if (!n) { box.visible = false; return; }
      const m = this.deviceMatrix(n);
      const T = this.T;
      const e = new T.Vector3(), q = new T.Quaternion(), s = new T.Vector3();
      m.decompose(e, q, s);
      s.addScalar(0.02);
      box.matrix.compose(e, q, s);
      box.visible = true;
    };
    const sel = this.ctx.shared.selected ? this.model.nodes.get(this.ctx.shared.selected) : null;
    place(this.selectBox, sel);
    place(this.hoverBox, this.hover >= 0 && this.dev ? this.dev.objs[this.hover] : null);
  }

  selectionChanged() {
    this.refreshHighlights();
    this.invalidate();
  }
}

function sameWaypoints(a, b) {
  if (a.waypoints.length !== b.waypoints.length) return false;
  for (let i = 0; i < a.waypoints.length; i++) {
    const p = a.waypoints[i], q = b.waypoints[i];
    if (p.x !== q.x || p.y !== q.y || p.z !== q.z) return false;
  }
  return a.sourceNode === b.sourceNode && a.targetNode === b.targetNode;
}
