#!/usr/bin/env python3
"""Console 2/2 in a real headless Chromium, against the real stack that
Tests/ConsoleTests/ConsoleBrowserTests.swift starts (nats-server, PostgreSQL,
ingest, command-router, notifier, twin-service, three reflectors, console):
commands signed by the browser's own WebCrypto key, a group of three after a
fresh TOTP, alerts acknowledged and silenced until the notifications stop
(a local ntfy receiver counts them), the 2D, 3D and rack views live, and the
users' administration. TOTP codes come from pyotp. Screenshots go to
$CONSOLE_ARTIFACTS (and $CONSOLE_DOCS when set). Prints 'N passed, M failed';
exits 1 on any failure."""
import http.server
import json
import os
import shutil
import signal
import sys
import threading
import time

import pyotp
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

import common
from common import check, make_driver, wait

URL = os.environ["CONSOLE_URL"]
USER, PASSWORD, SECRET = os.environ["CONSOLE_USER"], os.environ["CONSOLE_PASSWORD"], os.environ["CONSOLE_SECRET"]
VIEWER, VIEWER_PASSWORD = os.environ["CONSOLE_VIEWER"], os.environ["CONSOLE_VIEWER_PASSWORD"]
VIEWER_SECRET = os.environ["CONSOLE_VIEWER_SECRET"]
HOSTS = os.environ["CONSOLE_HOSTS"].split(",")
STOP_PID, STOP_HOST = int(os.environ["CONSOLE_STOP_PID"]), os.environ["CONSOLE_STOP_HOST"]
NTFY_PORT = int(os.environ["CONSOLE_NTFY_PORT"])
ART = os.environ.get("CONSOLE_ARTIFACTS", "/tmp")
DOCS = os.environ.get("CONSOLE_DOCS", "")


class Codes:
    """Fresh TOTP codes: each for a later time step than the last one used
    (the console takes a step once). A code for the next step is accepted
    already (clock drift allowance); later ones are waited for."""

    def __init__(self, secret):
        self.totp = pyotp.TOTP(secret)
        self.last = int(time.time() // 30)  # the Swift side enrolled with this one

    def fresh(self):
        # Not older than the previous step either (the console allows one
        # step of drift each way).
        step = max(self.last + 1, int(time.time() // 30) - 1)
        while step > int(time.time() // 30) + 1:
            time.sleep(0.5)
        self.last = step
        return self.totp.at(step * 30)


# The ntfy server the notifier posts to: counts what each host is told.
notifications = []


class Ntfy(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
        notifications.append((time.monotonic(), (self.headers.get("Title") or "") + "\n" + body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id":"x"}')

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", NTFY_PORT), Ntfy)
threading.Thread(target=server.serve_forever, daemon=True).start()


def told(host, since):
    return sum(1 for t, text in notifications if t >= since and host in text)


d = make_driver(webgl=True)
js = d.execute_script


def shot(name, doc=None):
    path = os.path.join(ART, name + ".png")
    d.save_screenshot(path)
    if DOCS and doc:
        os.makedirs(DOCS, exist_ok=True)
        shutil.copy(path, os.path.join(DOCS, doc + ".png"))


def text(css, root=None):
    els = (root or d).find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else None


def count(css):
    return len(d.find_elements(By.CSS_SELECTOR, css))


def go(fragment):
    d.get(URL + "/" + fragment)


def el(css):
    return d.find_element(By.CSS_SELECTOR, css)


def typed(css, value):
    """Types into a field, finding it again if a live redraw replaced it."""
    def attempt():
        e = el(css)
        e.clear()
        e.send_keys(value)
        return True
    if not wait(attempt, timeout=10):
        raise RuntimeError(f"could not type into {css}")


def login(user, password, code):
    go("#/login")
    wait(lambda: el("#login-user").is_displayed())
    for field, value in (("#login-user", user), ("#login-password", password), ("#login-code", code)):
        typed(field, value)
    el("#login-submit").click()
    return wait(lambda: user in (text("#whoami") or ""))


def api(method, path, body=None):
    """fetch() from the page, with the session's cookie and CSRF token."""
    return d.execute_async_script("""
        const [method, path, body, done] = arguments;
        fetch('/api/v1/session').then(r => r.json()).then(s =>
          fetch(path, {method, headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf},
                       body: body === null ? undefined : JSON.stringify(body)}))
          .then(async r => done({status: r.status, body: await r.text()}))
          .catch(e => done({status: 0, body: String(e)}));
    """, method, path, body)


def pane(host):
    return d.find_elements(By.CSS_SELECTOR, f'.run-pane[data-host="{host}"]')


def run_command(kind, target, argv, reason):
    Select(el("#target-kind")).select_by_value(kind)
    if kind == "hosts":
        typed("#target-hosts", target)
    elif kind == "group":
        typed("#target-group", target)
    Select(el("#action-kind")).select_by_value("argv")
    typed("#action-argv", argv)
    typed("#command-reason", reason)
    el("#run-command").click()


admin_codes = Codes(SECRET)
try:
    # 1. The admin logs in; the commands screen asks for a fresh code once to
    #    enable this browser (a WebCrypto Ed25519 key, not extractable).
    check(login(USER, PASSWORD, admin_codes.fresh()), "the admin logs in")
    go("#/commands")
    check(wait(lambda: el("#key-code").is_displayed()), "commands: this browser asks to be enabled with a code")
    shot("commands-enable")
    typed("#key-code", admin_codes.fresh())
    el("#register-key").click()
    check(wait(lambda: el("#run-command").is_displayed(), timeout=20), "after the code the run form is shown")
    key = js("""return new Promise(ok => { const r = indexedDB.open('mirror-stage');
        r.onsuccess = () => { const t = r.result.transaction('keys').objectStore('keys').get(arguments[0]);
          t.onsuccess = () => ok(t.result ? {id: t.result.keyId, extractable: t.result.privateKey.extractable} : null); };
        r.onerror = () => ok(null); });""", USER)
    check(bool(key) and key.get("extractable") is False, f"the key is kept in IndexedDB, not extractable ({key})")

    # 2. uptime on one host: its output and exit status.
    run_command("hosts", "web-01", "uptime", "browser test: one host")
    check(wait(lambda: pane("web-01") and "load average" in (text("pre.output", pane("web-01")[0]) or ""), timeout=30),
          "uptime's output streams into web-01's pane")
    check(wait(lambda: text(".exit-code", pane("web-01")[0]) == "0" and
               text(".host-state", pane("web-01")[0]).lower().startswith("succeeded"), timeout=30),
          f"web-01's pane shows exit code 0 and succeeded ({text('.exit-code')!r}, {text('.host-state')!r})")
    shot("commands-one", "console-commands")

    # 3. The group of three (more than console.confirm-above = 2): a fresh
    #    code first, then three results and a summary.
    go("#/commands")
    wait(lambda: el("#run-command").is_displayed())
    run_command("group", "lab", "uptime", "browser test: the lab")
    check(wait(lambda: el("#confirm-command").is_displayed()), "a group of three asks for a fresh code")
    shot("commands-confirm")
    typed("#confirm-code", admin_codes.fresh())
    el("#confirm-run").click()
    check(wait(lambda: count(".run-pane[data-host]") == 3, timeout=30), "three panes, one per host")
    check(wait(lambda: all(pane(h) and text(".exit-code", pane(h)[0]) == "0" for h in HOSTS), timeout=40),
          "three results, each exit code 0")
    check(all("load average" in (text("pre.output", pane(h)[0]) or "") for h in HOSTS), "each pane shows its output")
    check(wait(lambda: "3 succeeded" in (text("#command-summary") or "")), f"the summary: {text('#command-summary')!r}")
    shot("commands-group")

    # 4. History: both runs, one opened with its stored output and who ran it.
    go("#/commands")
    check(wait(lambda: count("#command-history tr[data-command-id]") >= 2), "the history lists the runs")
    typed("#history-host", "web-02")
    check(wait(lambda: count("#command-history tr[data-command-id]") == 1), "filtered by host web-02: one run")
    el("#command-history tr[data-command-id]").click()
    check(wait(lambda: "web-02" in (text("#command-run") or "") and USER in (text("#command-run") or "")),
          "an opened run shows its stored output and who ran it")

    # 4b. Terminal: a shell on web-01 from its page, with a fresh code; typed
    #     keys reach the PTY, its echo and output come back; the session is
    #     in the history and its recording replays to the same output.
    go("#/host/web-01")
    check(wait(lambda: el("#host-terminal").is_displayed()), "the host page offers a terminal")
    el("#host-terminal").click()
    check(wait(lambda: el("#terminal-form").is_displayed()), "the terminal asks for a reason and a code")
    check(el("#terminal-host").get_attribute("value") == "web-01", "for web-01")
    typed("#terminal-reason", "look around")
    typed("#terminal-code", admin_codes.fresh())
    el("#terminal-open").click()
    check(wait(lambda: el("#terminal-box").get_attribute("data-state") == "ready", timeout=30),
          f"the shell is ready ({text('#terminal-status')!r}, {text('#terminal-error')!r})")
    terminal = el("#terminal-box .terminal")
    ActionChains(d).move_to_element(terminal).click().send_keys("echo term-$((6*7))" + Keys.ENTER).perform()
    check(wait(lambda: "term-42" in (text("#terminal-box") or ""), timeout=15),
          f"typed keys run in the shell and its output shows ({(text('#terminal-box') or '')[-200:]!r})")
    shot("terminal", "terminal")
    ActionChains(d).send_keys("exit" + Keys.ENTER).perform()
    check(wait(lambda: el("#terminal-box").get_attribute("data-state") == "ended", timeout=15),
          f"exit ends the session ({text('#terminal-status')!r})")
    el("#terminal-history").click()
    check(wait(lambda: "shell (interactive)" in (text("#command-run") or "")), "the session is in the history")
    check(wait(lambda: el(".replay-play").is_displayed()), "with a replay")
    el(".replay-play").click()
    check(wait(lambda: el(".replay-box").get_attribute("data-replayed") == "true" and
               "term-42" in (text(".replay-box") or ""), timeout=30), "the recording replays to the same output")

    # 5. Alerts: every host's 'busy' fires and repeats every 2 s; acknowledge
    #    web-01 and silence web-02: their notifications stop, db-01's go on.
    go("#/alerts")
    check(wait(lambda: count("tr[data-alert-id]") >= 3, timeout=30), "three firing alerts are listed")
    check(wait(lambda: all(told(h, 0) >= 1 for h in HOSTS), timeout=30), "ntfy was told about every host")
    shot("alerts", "console-alerts")

    def row(host):
        for r in d.find_elements(By.CSS_SELECTOR, "tr[data-alert-id]"):
            if host in r.text:
                return r
        return None

    def click_in_row(host, css):
        """Clicks a button in a host's row; live updates redraw rows, so an
        element found a moment ago may be gone: find it again."""
        return wait(lambda: row(host).find_element(By.CSS_SELECTOR, css).click() or True, timeout=10)

    click_in_row("web-01", ".ack-alert")
    wait(lambda: el(".ack-comment").is_displayed())
    typed(".ack-comment", "looking at it")
    el(".ack-submit").click()
    check(wait(lambda: "ada" in (row("web-01").text if row("web-01") else "")), "web-01's alert shows who acknowledged it")
    click_in_row("web-02", ".silence-alert")
    wait(lambda: el(".silence-comment").is_displayed())
    el(".silence-host").click()
    typed(".silence-host", "web-02")
    typed(".silence-comment", "maintenance")
    el(".silence-submit").click()
    check(wait(lambda: "is-silenced" in ((row("web-02").get_attribute("class") or "") if row("web-02") else "")),
          "web-02's alert shows it is silenced (until when)")
    time.sleep(3)
    since = time.monotonic()
    time.sleep(8)
    check(told("db-01", since) >= 2, f"db-01 is still told ({told('db-01', since)} in 8 s)")
    check(told("web-01", since) == 0, f"acknowledged web-01 is told no more ({told('web-01', since)})")
    check(told("web-02", since) == 0, f"silenced web-02 is told no more ({told('web-02', since)})")
    el("#alerts-tab-silences").click()
    check(wait(lambda: count("tr[data-silence-id]") == 1), "the silence is listed")
    shot("alerts-silences")
    el("tr[data-silence-id] .end-silence").click()
    check(wait(lambda: count("tr[data-silence-id]") == 0), "ending the silence removes it")
    check(wait(lambda: told("web-02", time.monotonic() - 1) >= 1 or told("web-02", since + 8) >= 1, timeout=10),
          "and web-02 is told again")

    # From an alert to the host's charts at the moment it fired.
    el("#alerts-tab-firing").click()
    wait(lambda: row("db-01"))
    click_in_row("db-01", "a.chart-link")
    check(wait(lambda: "db-01" in (text("#host-title") or "")), "'show on chart' opens the host")
    started = js("return new URLSearchParams(location.hash.split('?')[1] || '').get('at')")
    note = wait(lambda: text("#range-note") if "→" in (text("#range-note") or "") else None, timeout=10) or ""
    check(bool(started) and js("return document.getElementById('range-from').value") != "" and
          js("return [...document.querySelectorAll('button[data-range]')].every(b => b.getAttribute('aria-pressed') !== 'true')"),
          f"with the charts on the hour around the alert's start ({note!r})")

    # 6. Network: 2D and 3D draw (pixels), racks show the inventory's units,
    #    a host that stops reporting changes colour in all views, a diff
    #    with a gap makes the page fetch the scene again.
    import network_checks
    network_checks.run(d, go, check, wait, shot, count, el, text, STOP_PID, STOP_HOST)

    # 7. Users: add, disable, remove; all audited by the console.
    go("#/users")
    check(wait(lambda: count("tr[data-user]") == 2), "the users screen lists ada and vic")
    typed("#new-user-name", "olga")
    typed("#new-user-password", "olga's long password")
    Select(el("#new-user-role")).select_by_value("operator")
    el("#add-user-submit").click()
    check(wait(lambda: count('tr[data-user="olga"]') == 1), "a new user appears")
    shot("users", "console-users")
    el('tr[data-user="olga"] .toggle-user').click()
    check(wait(lambda: "disabled" in el('tr[data-user="olga"]').text.lower()), "she can be disabled")
    el('tr[data-user="olga"] .remove-user').click()
    wait(lambda: el('tr[data-user="olga"] .confirm-remove').is_displayed())
    el('tr[data-user="olga"] .confirm-remove').click()
    check(wait(lambda: count('tr[data-user="olga"]') == 0), "and removed")

    # 8. A viewer: no run button, and the API refuses them.
    d.find_element(By.ID, "logout").click()
    wait(lambda: el("#login-user").is_displayed())
    check(login(VIEWER, VIEWER_PASSWORD, Codes(VIEWER_SECRET).fresh()), "a viewer logs in")
    go("#/commands")
    check(wait(lambda: count("#command-history") == 1), "the viewer sees the history")
    check(count("#run-command") == 0, "but no run button")
    r = api("POST", "/api/v1/commands/prepare", {"target": {"kind": "hosts", "hosts": ["web-01"]},
                                                 "action": {"argv": ["uptime"]}, "reason": "x", "keyId": "k"})
    check(r["status"] == 403, f"a direct prepare by the viewer is refused ({r})")
    go("#/alerts")
    check(wait(lambda: count("tr[data-alert-id]") >= 1) and count(".ack-alert") == 0,
          "the viewer sees alerts but no acknowledge button")

    # 9. Phone width and no CSP violation or script error.
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    for name in ("commands", "alerts", "network"):
        go(f"#/{name}")
        time.sleep(2)
        check(js("return document.documentElement.scrollWidth <= window.innerWidth + 1"),
              f"phone width: no horizontal scroll on {name}")
        shot(f"phone-{name}")
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    logs = d.get_log("browser")
    bad = [e["message"] for e in logs if e["level"] == "SEVERE" and "/api/v1/" not in e["message"]]
    csp = [e["message"] for e in logs if "Content Security Policy" in e["message"]]
    check(not csp, f"no Content-Security-Policy violations {csp[:3]}")
    check(not bad, f"no script errors {bad[:3]}")
except Exception as e:
    import traceback
    traceback.print_exc()
    common.failed.append(f"the script stopped: {e!r}")
    try:
        shot("actions-failure")
    except Exception:
        pass
finally:
    d.quit()
    server.shutdown()

sys.exit(common.summary())
