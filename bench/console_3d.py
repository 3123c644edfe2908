#!/usr/bin/env python3
"""The console's 3D view with a 10,000-node / 20,000-link twin, in Debian's
headless Chromium (software GL through SwiftShader: a floor, not what a
desktop GPU does). The page and its modules come from Sources/ConsoleCore/
Public and three.js r111 from /usr/share/javascript, as the console serves
them; the scene and the diffs are the twin's own JSON (made by MirrorBench
twin-scene from a real TwinModel), served by this script in place of the
console's /api/v1/twin/scene, and the diffs are handed to the page as the
live stream would (window.mirrorNetwork.applyMessage, after JSON.parse of
the text, as live.js does).

    python3 bench/console_3d.py SCENE_DIR

Prints: time to first 3D frame (from navigation, and from the 3D view's
start), frame intervals while orbiting with a diff applied every second
(every host changed: the heaviest diff), time from a diff to its frame,
and the page's JS heap."""
import http.server
import json
import os
import statistics
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

SCENE_DIR = sys.argv[1]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "ConsoleCore", "Public")
VENDOR = {"/vendor/three/build/": "/usr/share/javascript/three/build/",
          "/vendor/three/controls/": "/usr/share/javascript/three/examples/js/controls/",
          "/vendor/dygraphs/": "/usr/share/javascript/dygraphs/"}
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".json": "application/json",
         ".svg": "image/svg+xml", ".jsonl": "text/plain"}


class Handler(http.server.BaseHTTPRequestHandler):
    def send_file(self, path):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", TYPES.get(os.path.splitext(path)[1], "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/api/v1/session":
            body = json.dumps({"user": "bench", "roles": ["viewer"], "csrf": "x", "stage": "ready"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
        elif path == "/api/v1/twin/scene":
            self.send_file(os.path.join(SCENE_DIR, "scene.json"))
        elif path == "/bench/diffs.jsonl":
            self.send_file(os.path.join(SCENE_DIR, "diffs.jsonl"))
        elif path.startswith("/api/"):
            self.send_error(404)
        else:
            for prefix, directory in VENDOR.items():
                if path.startswith(prefix):
                    return self.send_file(directory + path[len(prefix):])
            self.send_file(os.path.join(ROOT, "index.html" if path == "/" else path.lstrip("/")))

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/"

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
          "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
          "--enable-precise-memory-info"):
    options.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
d.set_script_timeout(300)
try:
    print(f"scene_json_bytes {os.path.getsize(os.path.join(SCENE_DIR, 'scene.json'))}")
    d.get(url + "#/network?view=3d")
    end = time.monotonic() + 180
    first = None
    while time.monotonic() < end:
        first = d.execute_script("return window.mirrorNetwork && mirrorNetwork.firstFrame3dMs != null ?"
                                 " [mirrorNetwork.firstFrame3dMs, performance.now(), mirrorNetwork.nodes,"
                                 " mirrorNetwork.links] : null")
        if first:
            break
        time.sleep(0.05)
    if not first:
        sys.exit("no 3D frame within 180 s")
    print(f"scene.nodes {first[2]}")
    print(f"scene.links {first[3]}")
    print(f"3d.first_frame_ms_from_navigation {first[1]:.0f}  (fetch + parse + build + first frame; polled every 50 ms)")
    print(f"3d.first_frame_ms_from_view_start {first[0]:.0f}  (building the meshes + first frame)")
    time.sleep(2)
    result = d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        (async () => {
        const lines = (await (await fetch('/bench/diffs.jsonl')).text()).split('\\n').filter(Boolean);
        const canvas = [...document.querySelectorAll('canvas')].find(c => c.offsetParent !== null);
        const r = canvas.getBoundingClientRect();
        let x = r.left + r.width / 2, y = r.top + r.height / 2;
        canvas.dispatchEvent(new MouseEvent('mousedown', {clientX: x, clientY: y, button: 0, bubbles: true}));
        const intervals = [], diffToFrame = [], parseMs = [];
        let last = performance.now(), next = 0, nextAt = last + 1000, pending = null;
        const endAt = last + 1000 * (lines.length + 1);
        function frame(now) {
          intervals.push(now - last);
          last = now;
          if (pending !== null) { diffToFrame.push(now - pending); pending = null; }
          x += 3;
          document.dispatchEvent(new MouseEvent('mousemove', {clientX: x, clientY: y, bubbles: true}));
          canvas.dispatchEvent(new MouseEvent('mousemove', {clientX: x, clientY: y, bubbles: true}));
          if (now >= nextAt && next < lines.length) {
            const t0 = performance.now();
            const msg = JSON.parse(lines[next++]);
            parseMs.push(performance.now() - t0);
            mirrorNetwork.applyMessage(msg);
            pending = t0;
            nextAt += 1000;
          }
          if (now < endAt) requestAnimationFrame(frame);
          else {
            document.dispatchEvent(new MouseEvent('mouseup', {clientX: x, clientY: y, bubbles: true}));
            done({intervals, diffToFrame, parseMs, frames: mirrorNetwork.frames, sequence: mirrorNetwork.sequence,
                  refetches: mirrorNetwork.refetches, heap: performance.memory ? performance.memory.usedJSHeapSize : 0,
                  diffs: next});
          }
        }
        requestAnimationFrame(frame);
        })().catch(e => done({error: String(e)}));
    """)
    if "error" in result:
        sys.exit(result["error"])
    iv = sorted(result["intervals"][1:])
    print(f"3d.diffs_applied {result['diffs']}  (every host changed in each; page at sequence {result['sequence']},"
          f" full fetches {result['refetches']})")
    print(f"3d.frame_interval_ms_p50 {statistics.median(iv):.1f}  while orbiting, a diff each second")
    print(f"3d.frame_interval_ms_p95 {iv[int(len(iv) * 0.95)]:.1f}")
    print(f"3d.frame_interval_ms_max {iv[-1]:.1f}")
    print(f"3d.fps_while_orbiting {1000 / statistics.mean(iv):.1f}")
    dt = sorted(result["diffToFrame"])
    if dt:
        print(f"3d.diff_to_frame_ms_p50 {statistics.median(dt):.0f}  (parse + apply + next frame)")
        print(f"3d.diff_to_frame_ms_max {dt[-1]:.0f}")
        print(f"3d.diff_parse_ms_p50 {statistics.median(result['parseMs']):.0f}")
    metrics = {m["name"]: m["value"] for m in d.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]} \
        if d.execute_cdp_cmd("Performance.enable", {}) is not None else {}
    print(f"3d.js_heap_used_mib {result['heap'] / 1048576:.0f}")
    if metrics:
        print(f"3d.js_heap_total_mib {metrics.get('JSHeapTotalSize', 0) / 1048576:.0f}  (CDP; GPU buffers not counted)")
        print(f"3d.dom_nodes {metrics.get('Nodes', 0):.0f}")
finally:
    d.quit()
    server.shutdown()
