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


def _start(profile: Path) -> tuple:
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
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    port_file = profile / "DevToolsActivePort"
    for _ in range(300):
        if port_file.exists() and port_file.read_text().strip():
            return process, int(port_file.read_text().split()[0])
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("Chromium did not open its DevTools port within 30 s")


async def _inspect(port: int, url: str, screenshot: Path, width: int, height: int, probe: str) -> dict:
    from tornado.websocket import websocket_connect

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
        page = next(t for t in json.load(response) if t["type"] == "page")
    socket = await websocket_connect(page["webSocketDebuggerUrl"], max_message_size=256 * 2**20)
    events, next_id = [], 0

    async def call(method, **params):
        nonlocal next_id
        next_id += 1
        socket.write_message(json.dumps({"id": next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(socket.read_message(), 60))
            if message.get("id") == next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            events.append(message)

    async def wait_for(method):
        while not any(e.get("method") == method for e in events):
            events.append(json.loads(await asyncio.wait_for(socket.read_message(), 60)))

    for domain in ("Page", "Runtime", "Log", "Network"):
        await call(f"{domain}.enable")
    await call(
        "Network.emulateNetworkConditions",
        offline=True,
        latency=0,
        downloadThroughput=-1,
        uploadThroughput=-1,
    )
    await call(
        "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
    )
    await call("Page.navigate", url=url)
    await wait_for("Page.loadEventFired")
    facts = json.loads(
        (await call("Runtime.evaluate", expression=PAGE_FACTS, returnByValue=True))["result"]["value"]
    )
    if probe:  # the caller's own question to the page, a JavaScript expression giving JSON text
        result = await call("Runtime.evaluate", expression=probe, returnByValue=True)
        facts["probe"] = json.loads(result["result"]["value"])
    shot = await call("Page.captureScreenshot", format="png")  # the first screen: what a reader sees first
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    socket.close()

    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
    requests = [
        e["params"]["request"]["url"][:200] for e in events if e.get("method") == "Network.requestWillBeSent"
        and not e["params"]["request"]["url"].startswith("data:")
    ]  # fmt: skip
    return {**facts, "console_errors": errors, "requests": requests, "screenshot": screenshot}


def inspect(html: Path, screenshot: Path, width: int = 1280, height: int = 900, probe: str = "") -> dict:
    """Open html from disk; {images, headings, external, console_errors, requests, screenshot},
    and `probe`: what the JavaScript expression `probe` (giving JSON text) found."""
    with tempfile.TemporaryDirectory(prefix="labbook-chromium-", ignore_cleanup_errors=True) as profile:
        process, port = _start(Path(profile))
        try:
            url = Path(html).resolve().as_uri()
            return asyncio.run(_inspect(port, url, Path(screenshot), width, height, probe))
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
