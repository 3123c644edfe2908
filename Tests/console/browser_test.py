#!/usr/bin/env python3
"""The console in a real headless Chromium (Debian's chromium + chromium-driver),
driven by selenium as a person would use it, against the real stack that
Tests/ConsoleTests/ConsoleBrowserTests.swift starts. TOTP codes come from
pyotp, an implementation that is not ours. Screenshots go to
$CONSOLE_ARTIFACTS. Prints 'N passed, M failed'; exits 1 on any failure."""
import os
import signal
import sys
import time
import urllib.parse

import pyotp
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

import common
from common import check, make_driver, wait

URL = os.environ["CONSOLE_URL"]
USER, PASSWORD = os.environ["CONSOLE_USER"], os.environ["CONSOLE_PASSWORD"]
VIEWER, VIEWER_PASSWORD = os.environ["CONSOLE_VIEWER"], os.environ["CONSOLE_VIEWER_PASSWORD"]
VIEWER_SECRET = os.environ.get("CONSOLE_VIEWER_SECRET", "")
HOSTS = os.environ["CONSOLE_HOSTS"].split(",")
STOP_PID, STOP_HOST = int(os.environ["CONSOLE_STOP_PID"]), os.environ["CONSOLE_STOP_HOST"]
ART = os.environ.get("CONSOLE_ARTIFACTS", "/tmp")
HOSTILE = "<img src=x onerror=alert(1)>"

d = make_driver(webgl=False)
js = d.execute_script


DOCS = os.environ.get("CONSOLE_DOCS", "")
DOC_SHOTS = {"overview": "console-overview", "hosts": "console-hosts", "host": "console-host",
             "phone-hosts": "console-phone-hosts", "host-dark": "console-host-dark", "login": "console-login"}


def shot(name):
    path = os.path.join(ART, name + ".png")
    d.save_screenshot(path)
    if DOCS and name in DOC_SHOTS:  # MIRROR_DOC_SHOTS=1: the screenshots in docs/ too
        import shutil
        os.makedirs(DOCS, exist_ok=True)
        shutil.copy(path, os.path.join(DOCS, DOC_SHOTS[name] + ".png"))


def text(css):
    els = d.find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else None


def count(css):
    return len(d.find_elements(By.CSS_SELECTOR, css))


def go(fragment):
    d.get(URL + "/" + fragment)


def no_alert():
    try:
        d.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


def no_horizontal_scroll():
    return js("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def login(user, password, code_for=None):
    go("#/login")
    wait(lambda: d.find_element(By.ID, "login-user").is_displayed())
    for field, value in (("login-user", user), ("login-password", password), ("login-code", code_for or "")):
        d.find_element(By.ID, field).clear()
        d.find_element(By.ID, field).send_keys(value)
    d.find_element(By.ID, "login-submit").click()


try:
    # 1. First login: password, then TOTP enrolment from the page's URI.
    go("")
    check(wait(lambda: d.find_element(By.ID, "login-user").is_displayed()), "the login form is shown without a session")
    shot("login")
    login(USER, PASSWORD)
    uri = wait(lambda: text("#enrol-uri"))
    check(bool(uri) and uri.startswith("otpauth://totp/"), "enrolment shows the otpauth:// URI")
    check(wait(lambda: js("const i = document.getElementById('enrol-qr'); return i && i.complete && i.naturalWidth > 0")),
          "enrolment shows a QR code image")
    shot("enrol")
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    totp = pyotp.TOTP(secret)
    d.find_element(By.ID, "enrol-code").send_keys(totp.now())
    d.find_element(By.ID, "enrol-submit").click()
    check(wait(lambda: USER in (text("#whoami") or "")), "after enrolment the user is logged in")

    # 2. Overview counts the hosts that report.
    go("#/overview")
    check(wait(lambda: text('[data-count="total"]') == str(len(HOSTS)) and text('[data-count="up"]') == str(len(HOSTS))),
          f"the overview counts {len(HOSTS)} hosts up")
    time.sleep(1)
    shot("overview")

    # 3. Hosts: every host, live values that change.
    go("#/hosts")
    check(wait(lambda: count("tr[data-host]") == len(HOSTS)), "the hosts table shows every host")
    for h in HOSTS:
        check(count(f'tr[data-host="{h}"]') == 1, f"row for {h}")

    def cpu_values():
        return {h: text(f'tr[data-host="{h}"] td[data-col="cpu"]') for h in HOSTS}

    first = cpu_values()
    check(all(v and v != "—" for v in first.values()), f"every row has a CPU value ({first})")
    changed = wait(lambda: cpu_values() != first, timeout=20)
    check(bool(changed), "the CPU values change live without a reload")
    check(wait(lambda: count("tr[data-host] canvas") > 0, timeout=10), "rows carry sparkline canvases")
    shot("hosts")

    # Filter and sort as a person would.
    box = d.find_element(By.ID, "hosts-filter")
    box.send_keys("web")
    check(wait(lambda: count("tr[data-host]") == 2), "filtering by 'web' leaves the two web hosts")
    box.clear()
    box.send_keys("tier=db")
    check(wait(lambda: count("tr[data-host]") == 1 and count('tr[data-host="db-01"]') == 1), "label filter tier=db")
    box.clear()
    box.send_keys(" ")
    box.clear()
    wait(lambda: count("tr[data-host]") == len(HOSTS))
    d.find_element(By.CSS_SELECTOR, 'th[data-sort="name"]').click()
    names = lambda: [e.get_attribute("data-host") for e in d.find_elements(By.CSS_SELECTOR, "tr[data-host]")]
    first_order = names()
    d.find_element(By.CSS_SELECTOR, 'th[data-sort="name"]').click()
    check(wait(lambda: names() == list(reversed(first_order)) and len(first_order) == len(HOSTS)),
          f"clicking a header again reverses the order ({first_order})")

    # 4. Host detail: a chart with points from metrics.query, the hostile label as text.
    go("#/host/web-01")
    check(wait(lambda: "web-01" in (text("#host-title") or "")), "the host detail names the host")
    pts = wait(lambda: int(d.find_element(By.CSS_SELECTOR, '[data-chart="cpu"]').get_attribute("data-points") or 0) > 0,
               timeout=25)
    check(bool(pts), "the CPU chart has points from metrics.query")
    check(wait(lambda: count("#host-processes tr") > 1, timeout=10), "live top processes are listed")
    check(wait(lambda: HOSTILE in d.find_element(By.TAG_NAME, "body").text, timeout=10),
          "the label <img src=x onerror=alert(1)> appears as text")
    check(js("return document.querySelectorAll('img[src=\"x\"]').length") == 0, "and no <img src=x> element exists")
    check(no_alert(), "and nothing ran (no alert)")
    time.sleep(1)
    shot("host")

    # 5. A reflector stops: its row turns down within the absence window.
    os.kill(STOP_PID, signal.SIGTERM)
    stopped_at = time.monotonic()
    go("#/hosts")
    down = wait(lambda: d.find_element(By.CSS_SELECTOR, f'tr[data-host="{STOP_HOST}"]').get_attribute("data-state")
                == "down", timeout=30)
    check(bool(down), f"the stopped host's row turns down (after {time.monotonic() - stopped_at:.1f} s)")
    shot("hosts-down")
    go("#/overview")
    check(wait(lambda: text('[data-count="down"]') == "1"), "the overview counts it down")

    # 6. Phone width: no horizontal scroll on any screen; dark scheme too.
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    for name, fragment in (("overview", "#/overview"), ("hosts", "#/hosts"), ("host", "#/host/web-01")):
        go(fragment)
        time.sleep(2)
        check(no_horizontal_scroll(), f"phone width: no horizontal scroll on {name}")
        shot(f"phone-{name}")
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    go("#/overview")
    time.sleep(2)
    shot("overview-dark")
    go("#/host/web-02")
    time.sleep(3)
    shot("host-dark")
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    # 7. Log out; a wrong code is refused on the page.
    d.find_element(By.ID, "logout").click()
    check(wait(lambda: d.find_element(By.ID, "login-user").is_displayed()), "logout shows the login form")
    login(USER, PASSWORD, "000000")
    check(wait(lambda: (text("#login-error") or "") != ""), f"a wrong code is refused ({text('#login-error')!r})")

    # 8. A viewer logs in too and sees the fleet.
    if VIEWER_SECRET:
        code = pyotp.TOTP(VIEWER_SECRET).now()
        login(VIEWER, VIEWER_PASSWORD, code)
        if not wait(lambda: VIEWER in (text("#whoami") or ""), timeout=5):
            # The test harness used this step's code already: wait for the next one.
            time.sleep(31 - time.time() % 30)
            login(VIEWER, VIEWER_PASSWORD, pyotp.TOTP(VIEWER_SECRET).now())
        check(wait(lambda: VIEWER in (text("#whoami") or "")), "a viewer logs in")

    # 9. No CSP violation or script error in the whole session.
    logs = d.get_log("browser")
    bad = [e["message"] for e in logs if e["level"] == "SEVERE" and "/api/v1/session" not in e["message"]]
    csp = [e["message"] for e in logs if "Content Security Policy" in e["message"]]
    check(not csp, f"no Content-Security-Policy violations {csp[:3]}")
    check(not bad, f"no script errors {bad[:3]}")
except Exception as e:  # a crash of the script is a failure, with its reason
    import traceback
    traceback.print_exc()
    common.failed.append(f"the script stopped: {e!r}")
    try:
        shot("failure")
    except Exception:
        pass
finally:
    d.quit()

sys.exit(common.summary())
