"""What the console's browser tests share: counted checks, polling, and
Debian's headless Chromium through chromium-driver."""
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

passed, failed = 0, []


def check(condition, what):
    """Counts and prints one check; returns the condition."""
    global passed
    if condition:
        passed += 1
        print(f"ok    {what}", flush=True)
    else:
        failed.append(what)
        print(f"FAIL  {what}", flush=True)
    return condition


def wait(predicate, timeout=20.0, step=0.2):
    """Polls predicate until it is truthy; returns its last value. An element
    gone in a redraw (or a None where one was expected) counts as not yet."""
    end = time.monotonic() + timeout
    value = None
    while time.monotonic() < end:
        try:
            value = predicate()
        except (WebDriverException, AttributeError):
            value = None
        if value:
            return value
        time.sleep(step)
    return value


def make_driver(webgl=False):
    """Headless Chromium; with webgl, SwiftShader's software WebGL."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    flags = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"]
    flags += ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"] if webgl \
        else ["--disable-gpu"]
    for a in flags:
        options.add_argument(a)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def summary():
    """Prints 'N passed, M failed' and the failures; the exit status."""
    print(f"{passed} passed, {len(failed)} failed")
    for f in failed:
        print("  failed:", f)
    return 1 if failed else 0
