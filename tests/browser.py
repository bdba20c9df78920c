"""Open a page from disk in headless Chromium with networking off and report what a reader's
browser saw: console errors, images and headings, and a screenshot. Drives Chromium over the
DevTools protocol with tornado's websocket client (already installed: Jupyter needs it)."""

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"

# What the page reports about itself once loaded.
PAGE_FACTS = """JSON.stringify({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth})),
  headings: Array.from(document.querySelectorAll('h1, h2')).map(h => h.textContent.replace('¶', '').trim()),
  external: Array.from(document.querySelectorAll('script[src], link[href], img[src]'))
    .map(e => e.src || e.href).filter(u => /^(https?|ftp):/.test(u)),
  height: document.documentElement.scrollHeight
})"""


def available() -> bool:
    return Path(CHROMIUM).exists()


STARTUP_S = 60  # Chromium opens its port in 0.2 s on an idle machine; once, under a loaded
# full test run, it took over 30 s


def _start(profile: Path) -> tuple:
    log = profile / "chromium-stderr.txt"  # quoted in the error when it does not start
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={profile}", "--remote-debugging-port=0",
                # networking off: no name resolves, and every request through a proxy that is not there
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and process.poll() is None:
        if port_file.exists() and port_file.read_text().strip():
            return process, int(port_file.read_text().split()[0])
        time.sleep(0.1)
    status = process.poll()
    process.kill()
    said = log.read_text(errors="replace")[-2000:]
    how = (
        f"exited with status {status}"
        if status is not None
        else f"did not open its DevTools port within {STARTUP_S} s"
    )
    raise RuntimeError(f"Chromium {how}; its stderr ends:\n{said}")


class _Page:
    """One page over the DevTools protocol: call(method, **params) waits for its answer, keeping
    every event that arrives meanwhile (a JavaScript dialog is dismissed, and kept as an event)."""

    def __init__(self, socket):
        self.socket, self.events, self.next_id = socket, [], 0

    def _send(self, method, params) -> int:
        self.next_id += 1
        self.socket.write_message(json.dumps({"id": self.next_id, "method": method, "params": params}))
        return self.next_id

    async def _read(self) -> dict:
        message = json.loads(await asyncio.wait_for(self.socket.read_message(), 60))
        if message.get("method") == "Page.javascriptDialogOpening":  # else the page would hang
            self._send("Page.handleJavaScriptDialog", {"accept": False})
        return message

    async def call(self, method, **params):
        wanted = self._send(method, params)
        while True:
            message = await self._read()
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    async def wait_for(self, method):
        while not any(e.get("method") == method for e in self.events):
            self.events.append(await self._read())

    async def evaluate(self, expression: str):
        """The value of a JavaScript expression (a promise is awaited), as JSON gives it."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(
                f"{expression[:200]!r} threw: {details.get('exception', {}).get('description') or details.get('text')}"
            )
        return result["result"].get("value")

    async def click(self, selector: str) -> None:
        """A real mouse click (press and release of the left button) in the middle of the element
        selector finds, scrolled into view first: what a reader's click does."""
        where = await self.evaluate(
            f"""(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;
            e.scrollIntoView({{block: "center", inline: "center"}}); const r = e.getBoundingClientRect();
            return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})()"""
        )
        if where is None:
            raise RuntimeError(f"click: nothing on the page matches {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=where["x"], y=where["y"], button="left",
                            buttons=0 if kind == "mouseReleased" else 1, clickCount=1)  # fmt: skip

    def errors(self) -> list:
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
        return errors

    def requests(self) -> list:
        return [
            e["params"]["request"]["url"][:200] for e in self.events if e.get("method") == "Network.requestWillBeSent"
            and not e["params"]["request"]["url"].startswith("data:")
        ]  # fmt: skip

    def dialogs(self) -> list:
        """The JavaScript dialogs (alert, confirm, prompt) the page opened: their messages."""
        return [
            e["params"].get("message", "")
            for e in self.events
            if e.get("method") == "Page.javascriptDialogOpening"
        ]


async def _open(port: int, url: str, width: int, height: int) -> _Page:
    from tornado.websocket import websocket_connect

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
        target = next(t for t in json.load(response) if t["type"] == "page")
    socket = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=256 * 2**20)
    page = _Page(socket)
    for domain in ("Page", "Runtime", "Log", "Network"):
        await page.call(f"{domain}.enable")
    await page.call(
        "Network.emulateNetworkConditions",
        offline=True,
        latency=0,
        downloadThroughput=-1,
        uploadThroughput=-1,
    )
    await page.call(
        "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
    )
    await page.call("Page.navigate", url=url)
    await page.wait_for("Page.loadEventFired")
    return page


async def _inspect(port: int, url: str, screenshot: Path, width: int, height: int, probe: str) -> dict:
    page = await _open(port, url, width, height)
    facts = json.loads(await page.evaluate(PAGE_FACTS))
    if probe:  # the caller's own question to the page, a JavaScript expression giving JSON text
        facts["probe"] = json.loads(await page.evaluate(probe))
    shot = await page.call(
        "Page.captureScreenshot", format="png"
    )  # the first screen: what a reader sees first
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    page.socket.close()
    return {**facts, "console_errors": page.errors(), "requests": page.requests(), "screenshot": screenshot}


async def _steps(port: int, url: str, steps: list, screenshot, width: int, height: int) -> dict:
    page = await _open(port, url, width, height)
    results = []
    for step in steps:
        if isinstance(step, dict) and "click" in step:
            await page.click(step["click"])
            results.append(None)
        else:
            results.append(await page.evaluate(step))
    if screenshot:  # the whole page, not only its first screen
        size = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        clip = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        shot = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)
        Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
    page.socket.close()
    return {"results": results, "console_errors": page.errors(), "requests": page.requests(),
            "dialogs": page.dialogs(), "screenshot": screenshot}  # fmt: skip


def _run(html: Path, session) -> dict:
    with tempfile.TemporaryDirectory(prefix="labbook-chromium-", ignore_cleanup_errors=True) as profile:
        process, port = _start(Path(profile))
        try:
            return asyncio.run(session(port, Path(html).resolve().as_uri()))
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def inspect(html: Path, screenshot: Path, width: int = 1280, height: int = 900, probe: str = "") -> dict:
    """Open html from disk; {images, headings, external, console_errors, requests, screenshot},
    and `probe`: what the JavaScript expression `probe` (giving JSON text) found."""
    return _run(html, lambda port, url: _inspect(port, url, Path(screenshot), width, height, probe))


def run_steps(html: Path, steps: list, screenshot=None, width: int = 1280, height: int = 900) -> dict:
    """Open html from disk and take the steps in order, in one page: a JavaScript expression
    (its value, a promise awaited, comes back as JSON gives it) or {"click": CSS selector} (a real
    mouse click in the middle of that element; its result is None). Returns {results: one per
    step, console_errors, requests, dialogs (messages of alerts the page opened), screenshot (of
    the whole page after the last step, where a path is given)}."""
    return _run(html, lambda port, url: _steps(port, url, steps, screenshot, width, height))
