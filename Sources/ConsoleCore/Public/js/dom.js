// Tiny DOM helpers. Everything goes in as text or attributes, never as HTML.

// h('a', {href: '#/x', class: 'y', on: {click: fn}}, 'text', child, [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'on') {
        for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      } else if (k === 'class') {
        el.className = v;
      } else if (k === 'text') {
        el.textContent = String(v);
      } else if (k === 'style' || k.startsWith('on')) {
        throw new Error('h(): inline styles and handlers are not allowed');
      } else if (k === 'value' || k === 'checked' || k === 'selected') {
        el[k] = v;
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

// Replace all children.
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// Set text only when it changed (avoids layout work on live updates).
export function setText(el, text) {
  const t = String(text);
  if (el.textContent !== t) el.textContent = t;
}

export function setAttr(el, name, value) {
  const v = String(value);
  if (el.getAttribute(name) !== v) el.setAttribute(name, v);
}

export function $(sel, root = document) { return root.querySelector(sel); }
export function $$(sel, root = document) { return Array.from(root.querySelectorAll(sel)); }

export function hostHref(name) { return '#/host/' + encodeURIComponent(name); }

// A state badge: colour from [data-state], a shape from CSS, and the word as text.
export function stateBadge(state) {
  const s = state || 'unknown';
  return h('span', {class: 'state', 'data-state': s}, s);
}

export function severityBadge(sev) {
  const s = sev || 'info';
  return h('span', {class: 'sev', 'data-severity': s}, s);
}

// A table with a header row; rows are arrays of cells (Node or text) or {cells, attrs}.
export function table(attrs, headers, rows, empty) {
  const thead = h('thead', null, h('tr', null, headers.map((hd) => {
    const [label, cls] = Array.isArray(hd) ? hd : [hd, null];
    return h('th', {class: cls, scope: 'col'}, label);
  })));
  const tbody = h('tbody');
  fillRows(tbody, headers, rows, empty);
  return h('table', attrs, thead, tbody);
}

export function fillRows(tbody, headers, rows, empty) {
  const trs = rows.map((r) => {
    const spec = Array.isArray(r) ? {cells: r} : r;
    return h('tr', spec.attrs || null, spec.cells.map((c, i) => {
      const hd = headers[i];
      const cls = Array.isArray(hd) ? hd[1] : null;
      return h('td', {class: cls}, c);
    }));
  });
  if (trs.length === 0 && empty) {
    trs.push(h('tr', {class: 'empty-row'}, h('td', {colspan: headers.length, class: 'muted'}, empty)));
  }
  tbody.replaceChildren(...trs);
}
