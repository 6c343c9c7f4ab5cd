"""Pages opened the way a person sees them: Debian's chromium, headless, driven by Playwright.

A pytest plugin (test modules declare `pytest_plugins = ["tests.browser"]`) so that the one
`chromium` fixture is shared by the whole session: one browser process, one fresh profile.
Playwright's own browser download cannot reach its CDN here, so it drives the system's
chromium, with the flags that keep that browser off the network it has not got.

Also here: a local HTTP server for a folder (pages load as `cafe docs` serves them), a
record of what went wrong while a page loaded (JavaScript errors, failed requests), and
full-page screenshots under `.local/screenshots/` for a person to look at, and the check that
a page shows no customer name and no card number.

Test modules import these helpers before pytest loads the module as their plugin, too late
for assertion rewriting, so it is opted out (and asserts nothing: it fails with messages):
PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Response,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from loader.settings import project_root

CHROMIUM_CANDIDATES = ("chromium", "/usr/bin/chromium")
MISSING_CHROMIUM = (
    "chromium is not installed: run `make setup` as root, or `apt-get install chromium`, "
    "for the browser tests"
)
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these chromium keeps calling home and stalls on a closed network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1400, "height": 900}
# A full-page screenshot of an app that scrolls inside a panel grows the window to the
# panel's height; past this a screenshot is no longer something a person reads.
MAX_SCREENSHOT_HEIGHT = 12_000
SCREENSHOTS = "screenshots"


def chromium_executable() -> str:
    """The system chromium; fails the test (not skips it) with how to install it."""
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail(MISSING_CHROMIUM, pytrace=False)


def _launch(playwright: Playwright, executable: str, profile: Path) -> BrowserContext:
    try:
        return playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]},
        )
    except PlaywrightError as error:
        first_line = str(error).strip().splitlines()[0]
        pytest.fail(f"chromium ({executable}) did not start: {first_line}", pytrace=False)


@pytest.fixture(scope="session")
def chromium() -> Iterator[BrowserContext]:
    """One headless chromium for the session, with a fresh profile deleted afterwards."""
    executable = chromium_executable()
    profile = Path(tempfile.mkdtemp(prefix="cafe-chromium-"))
    try:
        with sync_playwright() as playwright:
            context = _launch(playwright, executable, profile)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@dataclasses.dataclass
class PageProblems:
    """What went wrong while a page was open: what a person would see in the console."""

    javascript_errors: list[str] = dataclasses.field(default_factory=list)
    console_errors: list[str] = dataclasses.field(default_factory=list)
    failed_requests: list[str] = dataclasses.field(default_factory=list)

    def all(self) -> list[str]:
        return [*self.javascript_errors, *self.console_errors, *self.failed_requests]


def watch(page: Page, *, ignore_url: Callable[[str], bool] | None = None) -> PageProblems:
    """Record the page's uncaught exceptions, console errors and failed requests.

    `ignore_url` names requests whose failure is known and harmless (a third-party page's
    own bug); its console line is dropped with it.
    """
    problems = PageProblems()

    def ignored(url: str) -> bool:
        return ignore_url is not None and ignore_url(url)

    def on_response(response: Response) -> None:
        if response.status >= 400 and not ignored(response.url):
            problems.failed_requests.append(f"{response.url}: HTTP {response.status}")

    def on_request_failed(request: Request) -> None:
        if not ignored(request.url):
            problems.failed_requests.append(f"{request.url}: {request.failure}")

    def on_console(message: ConsoleMessage) -> None:
        # A failed load is logged with the resource's URL as its location.
        if message.type == "error" and not ignored(message.location.get("url", "")):
            where = message.location.get("url", "")
            problems.console_errors.append(f"{message.text} ({where})" if where else message.text)

    page.on("pageerror", lambda error: problems.javascript_errors.append(str(error)))
    page.on("console", on_console)
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    return problems


@pytest.fixture
def browser_page(chromium: BrowserContext) -> Iterator[Page]:
    """A new tab in the session's browser, closed after the test."""
    page = chromium.new_page()
    try:
        yield page
    finally:
        page.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` on a free port of 127.0.0.1; yields the base URL (ends with `/`)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="serve-folder", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def screenshots_dir() -> Path:
    """`.local/screenshots/` in the checkout, whatever state folder the tests' stack uses."""
    folder = project_root() / ".local" / SCREENSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_CONTENT_HEIGHT = """() => Math.max(
    document.documentElement.scrollHeight,
    ...Array.from(document.querySelectorAll('*'), element => element.scrollHeight)
)"""


def save_screenshot(page: Page, name: str, *, whole_content: bool = True) -> Path:
    """A PNG `<name>.png` under `.local/screenshots/`, replaced atomically.

    With `whole_content`, the full page: single-page apps (the dbt docs site) scroll inside
    a panel, which Playwright's `full_page` does not follow, so the window is made as tall
    as the tallest content first. Without, what the window shows (e.g. an overlay).
    """
    viewport = page.viewport_size or VIEWPORT
    height = viewport["height"]
    if whole_content:
        height = min(int(page.evaluate(_CONTENT_HEIGHT)), MAX_SCREENSHOT_HEIGHT)
    target = screenshots_dir() / f"{name}.png"
    partial = target.with_name(f".{name}.{os.getpid()}.png")
    try:
        if height > viewport["height"]:
            page.set_viewport_size({"width": viewport["width"], "height": height})
        page.screenshot(path=partial, full_page=whole_content)
    finally:
        page.set_viewport_size({"width": viewport["width"], "height": viewport["height"]})
    partial.replace(target)
    return target


# What no page may show: a customer's name or a card number.
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_DIGIT_RUN = re.compile(r"(?<![\w.])\d+(?:[ -]\d+)*(?![\w.])")


def customer_names(connection: psycopg.Connection[Any]) -> frozenset[str]:
    """Every customer name the loader kept in `raw`, as the words that make it up."""
    rows = connection.execute(
        "select distinct customer_name from raw.transactions where customer_name is not null"
    ).fetchall()
    return frozenset(" ".join(_WORD.findall(row[0])) for row in rows) - {""}


def _looks_like_card_number(run: str) -> bool:
    """13 to 19 digits, bare or in groups of three or more (`4111 1111 1111 1111`)."""
    groups = re.split(r"[ -]", run)
    digits = "".join(groups)
    return 13 <= len(digits) <= 19 and all(len(group) >= 3 for group in groups)


def personal_data_in(text: str, names: frozenset[str]) -> list[str]:
    """Customer names and card numbers found in `text`, masked for the failure message."""
    words = _WORD.findall(text)
    sizes = {len(name.split()) for name in names}
    phrases = {" ".join(words[i : i + size]) for size in sizes for i in range(len(words))}
    found = [f"customer name {_initials(name)}" for name in sorted(phrases & names)]
    found += [
        f"card number ending {match[-4:]}"
        for match in _DIGIT_RUN.findall(text)
        if _looks_like_card_number(match)
    ]
    return found


def _initials(name: str) -> str:
    return " ".join(f"{word[0]}." for word in name.split())
