// The JSON API client: same-origin cookies, X-CSRF-Token on state changes,
// and one place that notices a lost session (401).

let csrf = null;
let onUnauthorized = () => {};

export function setCsrf(token) { csrf = token || null; }
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || null;
  }
}

// opts: {body, csrf (overrides the session's), auth401: false to handle 401 yourself, signal}
export async function request(method, path, opts = {}) {
  const headers = {Accept: 'application/json'};
  const init = {method, headers, credentials: 'same-origin', cache: 'no-store', signal: opts.signal};
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  if (method !== 'GET' && method !== 'HEAD') {
    const token = opts.csrf || csrf;
    if (token) headers['X-CSRF-Token'] = token;
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The console did not answer.');
  }
  let data = null;
  const type = res.headers.get('Content-Type') || '';
  if (res.status !== 204 && type.includes('json')) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data && data.error, data && data.message);
    if (res.status === 401 && opts.auth401 !== false) onUnauthorized(err);
    throw err;
  }
  return data;
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, body, opts = {}) => request('POST', path, {...opts, body});

export const enc = encodeURIComponent;
