// The browser's command-signing key (ADR 0005): a WebCrypto Ed25519 pair made
// here, whose private half is NOT extractable: it stays in this browser's
// IndexedDB (db "mirror-stage", store "keys", key = the user name) as a
// CryptoKey object, with the keyId the console gave its public half.
// Script can use it to sign but can never read its bytes.

import * as api from './api.js';

const DB_NAME = 'mirror-stage';
const STORE = 'keys';
const ALG = {name: 'Ed25519'};

// ---- base64 ----------------------------------------------------------------

export function toBase64(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(b64) {
  const s = atob(String(b64).replace(/[\r\n\s]/g, '').replace(/-/g, '+').replace(/_/g, '/'));
  const u8 = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u8[i] = s.charCodeAt(i);
  return u8;
}

// ---- IndexedDB ---------------------------------------------------------------

let dbPromise = null;

function openDb() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      let req;
      try { req = indexedDB.open(DB_NAME, 1); } catch (e) { reject(e); return; }
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
      };
      req.onsuccess = () => {
        const db = req.result;
        // Another tab upgrading the database: let it, we reopen next time.
        db.onversionchange = () => { db.close(); dbPromise = null; };
        resolve(db);
      };
      req.onerror = () => reject(req.error || new Error('IndexedDB is not available'));
      req.onblocked = () => reject(new Error('IndexedDB is blocked by another tab'));
    });
    dbPromise.catch(() => { dbPromise = null; });
  }
  return dbPromise;
}

async function tx(mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const store = t.objectStore(STORE);
    let result;
    const req = fn(store);
    if (req) req.onsuccess = () => { result = req.result; };
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(t.error || new Error('IndexedDB transaction failed'));
    t.onabort = () => reject(t.error || new Error('IndexedDB transaction aborted'));
  });
}

const dbGet = (user) => tx('readonly', (s) => s.get(user));
const dbPut = (user, rec) => tx('readwrite', (s) => s.put(rec, user));
const dbDelete = (user) => tx('readwrite', (s) => s.delete(user));

// ---- support -----------------------------------------------------------------

// WebCrypto exists only in a secure context (HTTPS, or http://localhost / 127.0.0.1).
export function supportProblem() {
  if (!window.isSecureContext) return 'This page is not a secure context: commands can be signed only over HTTPS (or on localhost).';
  if (!(globalThis.crypto && crypto.subtle)) return 'This browser has no WebCrypto.';
  if (!window.indexedDB) return 'This browser cannot keep a key (IndexedDB is off, e.g. in a private window).';
  return null;
}

// "Chrome 156 on Linux": the key's label, so a user can tell their keys apart.
export function agentLabel(ua = navigator.userAgent) {
  let browser = 'Browser';
  let m;
  if ((m = ua.match(/Edg(?:e|A|iOS)?\/(\d+)/))) browser = `Edge ${m[1]}`;
  else if ((m = ua.match(/(?:OPR|Opera)\/(\d+)/))) browser = `Opera ${m[1]}`;
  else if ((m = ua.match(/Firefox\/(\d+)/))) browser = `Firefox ${m[1]}`;
  else if ((m = ua.match(/(?:Chrome|Chromium|CriOS)\/(\d+)/))) browser = `${/Chromium/.test(ua) ? 'Chromium' : 'Chrome'} ${m[1]}`;
  else if ((m = ua.match(/Version\/(\d+)[.\d]* .*Safari/))) browser = `Safari ${m[1]}`;
  if (/HeadlessChrome/.test(ua)) browser = browser.replace(/^Chrome/, 'Headless Chrome');
  let os = '';
  if (/Android/.test(ua)) os = 'Android';
  else if (/iPhone|iPad|iPod/.test(ua)) os = 'iOS';
  else if (/Windows/.test(ua)) os = 'Windows';
  else if (/Mac OS X|Macintosh/.test(ua)) os = 'macOS';
  else if (/CrOS/.test(ua)) os = 'ChromeOS';
  else if (/Linux/.test(ua)) os = 'Linux';
  return (os ? `${browser} on ${os}` : browser).slice(0, 64);
}

// ---- the key -------------------------------------------------------------------

// The stored key of this user: {keyId, privateKey, publicKey (base64), label, createdAt}, or null.
export async function ensureKey(user) {
  if (!user || supportProblem()) return null;
  try {
    const rec = await dbGet(user);
    if (rec && rec.keyId && rec.privateKey && rec.privateKey.type === 'private') return rec;
  } catch (e) {
    console.warn('reading the signing key failed', e);
  }
  return null;
}

export async function forgetKey(user) {
  try { await dbDelete(user); } catch (e) { console.warn('forgetting the signing key failed', e); }
}

// Forget the key here and tell the console to stop accepting it.
export async function revokeKey(user) {
  const rec = await ensureKey(user);
  if (rec) {
    try {
      await api.post(`/api/v1/keys/${api.enc(rec.keyId)}/revoke`);
    } catch (e) {
      if (e.status !== 404 && e.code !== 'unknown_key') throw e;
    }
  }
  await forgetKey(user);
}

// Make a pair, register its public half with a fresh TOTP code, keep the private half.
// Throws api.ApiError from the console (e.g. a wrong code), or an Error when the
// browser cannot make Ed25519 keys.
export async function registerKey(user, code) {
  const problem = supportProblem();
  if (problem) throw new Error(problem);
  let pair;
  try {
    pair = await crypto.subtle.generateKey(ALG, false, ['sign', 'verify']);
  } catch (e) {
    throw new Error(`This browser cannot make Ed25519 keys (${e && e.name ? e.name : e}).`);
  }
  // A public key is always exportable, whatever "extractable" says.
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  const label = agentLabel();
  // 401 here may mean a wrong code, not a lost session: the caller decides.
  const ans = await api.post('/api/v1/keys', {publicKey: toBase64(raw), label, code}, {auth401: false});
  if (!ans || !ans.keyId) throw new Error('The console did not answer with a key id.');
  const rec = {keyId: ans.keyId, privateKey: pair.privateKey, publicKey: toBase64(raw), label, createdAt: Date.now()};
  try {
    await dbPut(user, rec);
  } catch (e) {
    // Not kept here: do not leave a key registered that no browser holds.
    api.post(`/api/v1/keys/${api.enc(ans.keyId)}/revoke`).catch(() => {});
    throw new Error(`This browser could not keep the key (${e && e.message ? e.message : e}).`);
  }
  return rec;
}

// Sign the console's request bytes (base64); answers the 64-byte signature in base64.
export async function sign(privateKey, base64Bytes) {
  const sig = await crypto.subtle.sign(ALG, privateKey, fromBase64(base64Bytes));
  return toBase64(sig);
}

// The console does not know (or no longer accepts) the key we signed with.
export function isUnknownKey(e) {
  return !!e && (e.code === 'unknown_key' || e.code === 'revoked_key' || e.code === 'key_revoked');
}
