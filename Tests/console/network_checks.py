"""The network screen's checks for browser_actions.py: the 2D topology and
the 3D mirror world draw (their pixels are not all one colour), the rack
elevation shows the inventory's devices at their units, every device can be
named from the picture (labels or hover) and unknown health has a colour of
its own, a host that stops reporting changes colour in every view without a
reload, and a diff with a gap makes the page fetch the scene again."""
import os
import signal
import struct
import time
import zlib

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

# Inventory of the test (ConsoleBrowserTests.swift): device → lowest unit.
UNITS = {"sw-core": 12, "web-01": 3, "web-02": 4, "db-01": 6}
HEALTH = {"ok": "#2ecc71", "warning": "#f1c40f", "critical": "#e74c3c", "down": "#555b61", "unknown": "#9e9e9e"}
# A reporting host is ok, warning or critical by its own CPU (a busy test
# machine can make it either).
REPORTING = {HEALTH["ok"], HEALTH["warning"], HEALTH["critical"]}


def png_pixels(data):
    """Decodes an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of
    bytes: a small reader, so the check needs no imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return rows, bpp


def colours_in(d, element):
    """Distinct colours (quantised) inside an element on a screenshot."""
    rect = d.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height, devicePixelRatio]",
        element)
    rows, bpp = png_pixels(d.get_screenshot_as_png())
    left, top, width, height = (int(v * rect[4]) for v in rect[:4])
    seen = set()
    for y in range(max(top, 0), min(top + height, len(rows)), 4):
        row = rows[y]
        for x in range(max(left, 0), min(left + width, len(row) // bpp), 4):
            p = row[x * bpp:x * bpp + 3]
            seen.add((p[0] >> 4, p[1] >> 4, p[2] >> 4))
    return seen


def run(d, go, check, wait, shot, count, el, text, stop_pid, stop_host):
    js = d.execute_script
    state = lambda: js("return window.mirrorNetwork && {view: mirrorNetwork.view, sequence: mirrorNetwork.sequence,"
                       " nodes: mirrorNetwork.nodes, links: mirrorNetwork.links, frames: mirrorNetwork.frames,"
                       " refetches: mirrorNetwork.refetches}")
    colour = lambda node: js("return window.mirrorNetwork && mirrorNetwork.colorOf(arguments[0])", node)

    # 2D
    go("#/network?view=2d")
    check(wait(lambda: (state() or {}).get("nodes", 0) >= 5, timeout=30), f"the network loads the scene ({state()})")
    canvas2d = wait(lambda: [c for c in d.find_elements(By.CSS_SELECTOR, "canvas") if c.is_displayed()])
    time.sleep(1)
    seen = colours_in(d, canvas2d[0]) if canvas2d else set()
    check(len(seen) >= 4, f"the 2D canvas is not blank ({len(seen)} colours)")
    body = d.find_element(By.TAG_NAME, "body").text.lower()
    check(all(w in body for w in ("ok", "down", "unknown")), "a legend names the health colours")
    check(colour("web-01") in REPORTING, f"web-01 is drawn in its health's colour ({colour('web-01')})")
    check(colour("sw-core") == HEALTH["unknown"] and colour("lab-ap") == HEALTH["unknown"],
          f"a switch and an access point that never reported are the neutral unknown grey "
          f"({colour('sw-core')}, {colour('lab-ap')})")
    shot("network-2d", "console-network-2d")

    # 3D
    go("#/network?view=3d")
    check(wait(lambda: (state() or {}).get("view") == "3d" and (state() or {}).get("frames", 0) > 0, timeout=40),
          f"the 3D view renders frames ({state()})")
    time.sleep(2)
    canvas3d = [c for c in d.find_elements(By.CSS_SELECTOR, "canvas") if c.is_displayed()]
    seen3 = colours_in(d, canvas3d[0]) if canvas3d else set()
    check(len(seen3) >= 4, f"the 3D canvas is not blank ({len(seen3)} colours)")
    # Every device can be named from the picture: hovering it names it.
    named = js("return window.mirrorNetwork && mirrorNetwork.screenPosition && mirrorNetwork.screenPosition('web-02')")
    if named:
        ActionChains(d).move_to_element_with_offset(canvas3d[0], 0, 0).perform()
        ActionChains(d).move_by_offset(0, 0).perform()
        rect = js("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", canvas3d[0])
        ActionChains(d).move_to_element_with_offset(
            canvas3d[0], int(named[0] - rect[0] / 2), int(named[1] - rect[1] / 2)).perform()
        check(wait(lambda: "web-02" in d.find_element(By.TAG_NAME, "body").text, timeout=5),
              "hovering a device in 3D names it")
    check(colour("web-01") in REPORTING, f"3D: web-01 in its health's colour ({colour('web-01')})")
    shot("network-3d", "console-network-3d")

    # Racks
    go("#/network?view=racks")
    check(wait(lambda: count("[data-node][data-unit]") >= 4, timeout=20), "the rack elevation draws the racked devices")
    units = {e.get_attribute("data-node"): int(e.get_attribute("data-unit") or 0)
             for e in d.find_elements(By.CSS_SELECTOR, "[data-node][data-unit]")}
    check(all(units.get(n) == u for n, u in UNITS.items()), f"each at its unit ({units})")
    check(all(n in d.find_element(By.TAG_NAME, "body").text for n in UNITS), "each named in the elevation")
    shot("network-racks", "console-racks")

    # A gap in the diffs: the page fetches the scene again.
    before = (state() or {}).get("refetches", 0)
    js("mirrorNetwork.applyMessage({type: 'twin', diff: {sequence: 999999, baseSequence: 999998,"
       " upsertedNodes: [], removedNodes: [], upsertedLinks: [], removedLinks: []}})")
    check(wait(lambda: (state() or {}).get("refetches", 0) > before, timeout=10),
          "a diff whose base is not the page's scene makes it fetch the scene again")

    # A host stops reporting: its colour changes in every view, no reload.
    os.kill(stop_pid, signal.SIGTERM)
    started = time.monotonic()
    go("#/network?view=2d")
    wait(lambda: (state() or {}).get("nodes", 0) >= 5)
    marker = js("window.__noReload = 1; return 1")
    check(wait(lambda: colour(stop_host) == HEALTH["down"], timeout=40),
          f"2D: {stop_host} turns down-grey after {time.monotonic() - started:.0f} s ({colour(stop_host)})")
    shot("network-2d-down")
    for view in ("3d", "racks"):
        js("location.hash = arguments[0]", f"#/network?view={view}")
        check(wait(lambda: (state() or {}).get("view") == view and colour(stop_host) == HEALTH["down"], timeout=20),
              f"{view}: {stop_host} is down-grey too ({colour(stop_host)})")
    check(js("return window.__noReload") == marker, "without a reload")
    shot("network-3d-down")
