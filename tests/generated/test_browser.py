"""Each prod stack's landing page in a real browser: Debian's chromium, headless, driven by
selenium through Debian's chromedriver (given by path: Selenium Manager never runs, nothing is
downloaded).

Each stack runs as its README says to run it behind nginx (the prod command on 127.0.0.1, on its
default server, gunicorn), with its generated nginx config in front (proxy.py: TLS ends there, with
a self-signed certificate the browser is told to accept, and nginx sends X-Forwarded-Proto). The
page is loaded from https://127.0.0.1:PORT/ as a visitor would load it: the form adds a row that
is still there after a reload; on ASGI stacks the page's WebSocket echoes a message and its
Server-Sent Events arrive; the browser's console logs no error. Django is told its public origin
as its README says to (DJANGO_CSRF_TRUSTED_ORIGINS): the test's nginx listens on a port other
than 443. A screenshot of each page is saved in the directory the test prints
($NEWSTACK_SCREENSHOTS when set).
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from newstack import render
from newstack.smoke import (
    HOST,
    PROXY_HEADERS,
    Server,
    free_port,
    readme_commands,
    run_setup,
    server_env,
    split_command,
)
from newstack.stacks import COMBINATIONS, SERVERS, Combination

from ..conftest import answers_for
from .proxy import Site, start
from .test_replicas import BIN, distinct_ports, stop, workspace

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
BROWSER_HINT = ("chromium or chromedriver is missing: `apt-get install -y "
                "--no-install-recommends chromium chromium-driver` (.ci/run installs them)")
# The four framework/protocol stacks, each on its default server.
STACKS = [c for c in COMBINATIONS if c.target == "prod" and c.server == SERVERS[0]]
WAIT = 15  # seconds a step may take in the page
TICKS = 5  # the events the page asks /api/events for


def require_browser() -> None:
    """Fails (never skips) with what to install when the browser or its driver is missing."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(BROWSER_HINT, pytrace=False)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--ignore-certificate-errors", "--window-size=900,1100"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """$NEWSTACK_SCREENSHOTS when set (pytest keeps only its last few temporary directories),
    else one in pytest's."""
    if os.environ.get("NEWSTACK_SCREENSHOTS"):
        path = Path(os.environ["NEWSTACK_SCREENSHOTS"])
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("browser-screenshots")


def serve(combination: Combination, root: Path, exits: ExitStack) -> str:
    """The stack behind its nginx, both stopped on exit; the page's https:// address."""
    project = render.generate(answers_for(combination), root / "shop")
    command_env, argv = split_command(readme_commands(project)["nginx-command"])
    port = free_port()
    http_port, https_port = distinct_ports(2)
    while port in (http_port, https_port):
        http_port, https_port = distinct_ports(2)
    origin = f"https://{HOST}:{https_port}"
    env = {**server_env(project, BIN, combination, port), **command_env, "PORT": str(port)}
    if combination.framework == "django":
        env["DJANGO_CSRF_TRUSTED_ORIGINS"] = origin
    done = run_setup(project, env)
    assert done is None or done.returncode == 0, f"{done.args}: {done.stderr[-2000:]}"
    server = Server(argv, project, env, root / "server.log")
    exits.callback(stop, server)
    server.wait_ready(f"http://{HOST}:{port}/healthz", PROXY_HEADERS)

    static = project / "staticfiles" if combination.framework == "django" else None
    site = Site(root / "nginx", [port], http_port, https_port, static)
    nginx = start(project, site, root / "nginx.log")
    exits.callback(stop, nginx)
    context = ssl.create_default_context(cafile=str(site.cert))
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if httpx.get(f"{origin}/healthz", verify=context, trust_env=False).status_code == 200:
                return origin
        except httpx.TransportError:
            pass
        assert nginx.process.poll() is None, nginx.log_tail(10)
        assert time.monotonic() < deadline, f"nginx did not answer: {nginx.log_tail(10)}"
        time.sleep(0.1)


def texts(driver, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, selector)]


def until(driver, what: str, condition) -> None:
    """Wait for `condition(driver)`; failing, say `what` was awaited and what the page shows."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, WAIT).until(condition)
    except TimeoutException:
        shown = driver.find_element("tag name", "body").text
        raise AssertionError(f"{what}: not seen within {WAIT} s; the page shows:\n{shown}") from None


def submit(driver, form: str, field: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#{form} [name={field}]").send_keys(value)
    driver.find_element(By.CSS_SELECTOR, f"#{form} button").click()


@pytest.mark.parametrize("combination", STACKS, ids=[c.id for c in STACKS])
def test_the_landing_page_works_in_a_real_browser(combination, browser, screenshots, capsys,
                                                  record_property):
    with workspace() as root, ExitStack() as exits:
        origin = serve(combination, root, exits)
        browser.get_log("browser")  # what an earlier stack's page logged is not this one's
        browser.get(f"{origin}/")
        assert browser.title == "shop"

        # The form: the new row appears (as text: markup in a name is shown, not run), and the
        # server has it (a reload lists it).
        name = "<b>from the browser</b>"
        submit(browser, "new-item", "name", name)
        until(browser, f"the row {name!r}", lambda d: texts(d, "#items li")[:1] == [name])
        browser.refresh()
        until(browser, f"the row {name!r} after a reload",
              lambda d: texts(d, "#items li")[:1] == [name])

        if combination.protocol == "asgi":
            until(browser, "the WebSocket open", lambda d: texts(d, "#echo-state") == ["open"])
            submit(browser, "echo", "message", "hello <i>echo</i>")
            until(browser, "the echo", lambda d: texts(d, "#echoed li") == ["hello <i>echo</i>"])
            ticks = [f"tick {n}" for n in range(TICKS)]
            until(browser, f"{TICKS} events", lambda d: texts(d, "#ticks li") == ticks)
            until(browser, "the event stream closed",
                  lambda d: texts(d, "#events-state") == [f"all {TICKS} received"])

        shot = screenshots / f"{combination.id}.png"
        browser.save_screenshot(str(shot))
        record_property("screenshot", str(shot))
        with capsys.disabled():
            print(f"\n{combination.id}: screenshot {shot}")
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors


def test_no_chromium_is_a_failure_with_a_hint(monkeypatch):
    """Without the browser the test fails saying what to install: it is never skipped."""
    monkeypatch.setattr(f"{__name__}.CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(pytest.fail.Exception, match="apt-get install .*chromium chromium-driver"):
        require_browser()
