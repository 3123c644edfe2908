#!/usr/bin/env python3
"""The console's benchmarks (run by bench/run.sh console):

  login URL USER PASSWORD           enrol TOTP (pyotp), print "cookie secret"
  weight URL COOKIE                 bytes of the first page load in headless Chromium,
                                    by kind: our code, third-party (/vendor), data (/api)
  weight-plain URL                  the same for a page without a login (netdata's dashboard)
  latency URL COOKIE PUBLISHED      times the hosts page shows each value MirrorBench's
                                    console-latency published (its output in PUBLISHED)
  clients URL COOKIE N SECONDS      N live streams watching the hosts screen, as N browsers
"""
import base64
import json
import os
import socket
import statistics
import sys
import time
import urllib.parse
import urllib.request

import pyotp


def http(url, body=None, cookie=None, csrf=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if cookie:
        req.add_header("Cookie", "mirror_session=" + cookie)
    if csrf:
        req.add_header("X-CSRF-Token", csrf)
    with urllib.request.urlopen(req) as r:
        cookie_out = None
        for h in r.headers.get_all("Set-Cookie") or []:
            if h.startswith("mirror_session="):
                cookie_out = h.split(";")[0].split("=", 1)[1]
        return json.loads(r.read() or b"{}"), cookie_out


def login(url, user, password):
    a, cookie = http(url + "/api/v1/session", {"user": user, "password": password})
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(a["otpauth"]).query)["secret"][0]
    _, cookie = http(url + "/api/v1/session/enrol", {"code": pyotp.TOTP(secret).now()}, cookie, a["csrf"])
    print(cookie, secret)


def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def with_cookie(d, url, cookie):
    d.get(url + "/favicon.svg")
    d.add_cookie({"name": "mirror_session", "value": cookie, "path": "/"})


def transfer(d, url, settle=6):
    """Every response of one page load: (url, encoded bytes on the wire)."""
    d.get_log("performance")
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    d.get(url)
    time.sleep(settle)
    urls, sizes = {}, {}
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        p = m.get("params", {})
        if m["method"] == "Network.requestWillBeSent":
            urls[p["requestId"]] = p["request"]["url"]
        elif m["method"] == "Network.loadingFinished":
            sizes[p["requestId"]] = p["encodedDataLength"]
    return [(urls.get(k, "?"), v) for k, v in sizes.items()]


def weight(url, cookie):
    d = driver()
    try:
        if cookie:
            with_cookie(d, url, cookie)
        loads = transfer(d, url + "/#/overview" if cookie else url)
    finally:
        d.quit()
    kinds = {}
    for u, n in loads:
        path = urllib.parse.urlparse(u).path
        kind = "vendor" if path.startswith("/vendor/") else "data" if path.startswith("/api/") else "own"
        kinds.setdefault(kind, [0, 0])
        kinds[kind][0] += n
        kinds[kind][1] += 1
    total = sum(n for _, n in loads)
    for k in ("own", "vendor", "data"):
        n, c = kinds.get(k, [0, 0])
        print(f"weight.{k}_bytes {n}  ({c} requests)")
    print(f"weight.total_bytes {total}  ({len(loads)} requests)")


def weight_plain(url):
    d = driver()
    try:
        loads = transfer(d, url, settle=10)
    finally:
        d.quit()
    print(f"weight.total_bytes {sum(n for _, n in loads)}  ({len(loads)} requests)")


def latency(url, cookie, published_file):
    d = driver()
    try:
        with_cookie(d, url, cookie)
        d.get(url + "/#/hosts")
        time.sleep(3)
        # Every text the lat-01 row's memory cell takes, with the time it
        # first appeared (the page's clock is this machine's).
        d.execute_script("""
          window.__seen = {};
          const look = () => {
            const c = document.querySelector('tr[data-host="lat-01"] td[data-col="memory"]');
            if (c && !(c.textContent in window.__seen)) window.__seen[c.textContent] = Date.now();
          };
          new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
          look();
        """)
        f = d.find_element("id", "hosts-filter")
        f.send_keys("lat-01")
        open(published_file + ".ready", "w").close()
        done = published_file + ".done"
        while not os.path.exists(done):
            time.sleep(0.5)
        time.sleep(3)
        seen = d.execute_script("return window.__seen")
    finally:
        d.quit()
    published = {}
    for line in open(published_file):
        k, ms = line.split()
        published[f"{10.0 + int(k) / 10:.1f}"] = int(ms)
    lags = []
    for text, at in seen.items():
        value = text.replace("%", "").strip()
        if value in published:
            lags.append(at - published[value])
    lags.sort()
    if not lags:
        print("latency.samples 0 (nothing matched)", list(seen)[:5])
        return
    pct = lambda p: lags[min(len(lags) - 1, int(len(lags) * p))]
    print(f"latency.samples {len(lags)} of {len(published)}")
    print(f"latency.p50_ms {pct(0.5)}")
    print(f"latency.p99_ms {pct(0.99)}")
    print(f"latency.max_ms {lags[-1]}")


def ws_connect(url, cookie):
    u = urllib.parse.urlparse(url)
    s = socket.create_connection((u.hostname, u.port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /api/v1/live HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {url}\r\n"
               f"Cookie: mirror_session={cookie}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = json.dumps({"watch": "hosts"}).encode()
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    s.setblocking(False)
    return s


def clients(url, cookie, n, seconds):
    socks = [ws_connect(url, cookie) for _ in range(int(n))]
    received = 0
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        for s in socks:
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    received += len(b)
            except BlockingIOError:
                pass
        time.sleep(0.05)
    print(f"clients.connected {len(socks)}")
    if socks:
        print(f"clients.bytes_per_client_per_s {received / len(socks) / float(seconds):.0f}")
    for s in socks:
        s.close()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"login": login, "weight": weight, "weight-plain": weight_plain, "latency": latency, "clients": clients}[cmd](*args)
