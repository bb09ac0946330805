"""The status page in a real browser: headless Chromium, driven over the DevTools protocol,
opens a running dev node's ``/`` and must show the chain, a head that advances live (over the
node's WebSocket), a transaction sent meanwhile, the pool and the supervision tree; a
screenshot is kept beside the test's temporary files (``status-page.png``) to look at.

Skips, saying so, when no Chromium is installed (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.request
from base64 import b64decode
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from tests.node.harness import ThreadNode, rpc, running_node
from tests.node.test_durability import transfer

pytestmark = pytest.mark.timeout(90)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no Chromium found (looked for {', '.join(BROWSERS)}): the status page is "
                "not tested in a browser; `apt-get install chromium` to test it")


class Page:
    """One page of a headless Chromium, over the DevTools protocol; every wait is bounded."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.log = (profile.parent / "chromium.log").open("w")
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", f"--user-data-dir={profile}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "--window-size=1280,1000", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        port_file = profile / "DevToolsActivePort"
        wait(lambda: port_file.exists() and port_file.read_text().strip(), 30,
             "Chromium's DevTools port")
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.closing = contextlib.ExitStack()
        self.ws: ClientConnection = self.closing.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        self.next_id = 0
        self.errors: list[str] = []  # uncaught exceptions on the page
        self.call("Runtime.enable")

    def call(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + 20
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("method") == "Runtime.exceptionThrown":
                self.errors.append(message["params"]["exceptionDetails"]["text"])
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def text(self, element_id: str) -> str:
        """The element's text ("" while the page has no such element yet)."""
        return self.evaluate(
            f"document.getElementById({json.dumps(element_id)})?.textContent ?? ''")

    def close(self) -> None:
        self.closing.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.1)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ThreadNode]:
    with running_node(tmp_path / "node", slot_ms=200) as running:
        yield running


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    browser = Page(find_browser(), tmp_path / "profile")
    try:
        yield browser
    finally:
        browser.close()


def head_shown(page: Page) -> int | None:
    text = page.text("head-number").replace(",", "")
    return int(text) if text.isdigit() else None


def test_status_page_shows_the_node_live(node: ThreadNode, page: Page, tmp_path: Path) -> None:
    page.call("Page.navigate", url=node.url)
    first = wait(lambda: head_shown(page), 20, "head number on the page")
    assert page.text("chain-id") == str(DEV_CHAIN_ID)
    wait(lambda: page.text("ws-state") == "live", 10, "live WebSocket updates")
    # The head advances on the page while it stays open: pushed over the WebSocket.
    wait(lambda: (head_shown(page) or 0) >= first + 3, 10, "the head advancing on the page")
    rows = page.evaluate("document.querySelectorAll('#blocks tr').length")
    assert rows >= 3
    # A transaction sent now shows up (pending, then in its block).
    tx_hash = rpc(node.url, "eth_sendRawTransaction",
                  transfer(DEV_ACCOUNTS[2][1], 0, DEV_ACCOUNTS[3][0], 10**18))
    wait(lambda: page.evaluate(f"!!document.querySelector('[data-tx=\"{tx_hash}\"]')"), 10,
         "the sent transaction on the page")
    wait(lambda: page.evaluate(
        f"!!document.querySelector('#blocks [data-tx=\"{tx_hash}\"]')"), 10,
        "the transaction in its block")
    # Health and the supervision tree, from /health.
    wait(lambda: page.text("health-status") == "healthy", 10, "the health badge")
    states = page.evaluate("Object.fromEntries([...document.querySelectorAll('#tree li')]"
                           ".map(li => [li.dataset.path, li.dataset.state]))")
    for path in ("alys", "alys/chain/chain", "alys/chain/txpool", "alys/rpc/rpc",
                 "alys/rpc/recovery-0", "alys/storage/storage"):
        assert states.get(path) == "running", states
    assert page.text("pool-pending").isdigit()
    assert page.text("head-age").endswith(" s")
    assert page.text("node-role").startswith("authority")
    assert not page.errors, page.errors

    size = page.call("Page.getLayoutMetrics")["cssContentSize"]  # the whole page, tree too
    shot = b64decode(page.call(
        "Page.captureScreenshot", format="png", captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
    )["data"])
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000
    (tmp_path / "status-page.png").write_bytes(shot)
