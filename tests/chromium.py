"""Headless Chromium driven over the DevTools protocol, with loopback-only flags (docs/ARCHITECTURE.md, "Tests and the network")."""

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-address=127.0.0.1",
]


def chromium_path():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium missing: run scripts/setup.sh"
    return path


class Browser:
    """One Chromium with one page; `evaluate` runs JavaScript in it and awaits promises."""

    def __init__(self, url, extra_flags=()):
        self.argv = [chromium_path(), *FLAGS, *extra_flags, "--remote-debugging-port=0"]
        self.url = url
        self.startup_crashes = []
        self._launch()
        self.ws = None
        self.next_id = 1

    def _launch(self):
        self.profile = tempfile.TemporaryDirectory(prefix="rm-chromium-", ignore_cleanup_errors=True)
        self.log = Path(self.profile.name) / "chromium.log"
        # Port 0: Chromium picks a free port itself and writes it to DevToolsActivePort. A port
        # chosen here and handed over could be taken by then (it was, once, in a long run).
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [*self.argv, f"--user-data-dir={self.profile.name}", self.url],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def _debug_port(self):
        try:
            return int((Path(self.profile.name) / "DevToolsActivePort").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    async def connect(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                # Chromium 156 from Debian stopped once at an internal CHECK (SIGTRAP, "trap int3"
                # in the kernel log) in five full test runs here, at its start, before it had
                # opened anything: nothing of ours had run in it. Such a start is reported and
                # made once more, with a new profile; a second crash fails the test.
                if self.proc.returncode >= 0 or self.startup_crashes:
                    break
                self.startup_crashes.append((self.proc.returncode, self.log.read_text(errors="replace")[-2000:]))
                print(f"chromium crashed at start (signal {-self.proc.returncode}); starting it again", flush=True)
                self.profile.cleanup()
                self._launch()
                deadline = time.monotonic() + timeout
                continue
            port = self._debug_port()
            try:
                if port is not None:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                        pages = [t for t in json.load(r) if t["type"] == "page"]
                    if pages:
                        self.ws = await websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
                        return
            except OSError:
                pass
            await asyncio.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"Chromium did not open its DevTools port (exit status {self.proc.poll()}, "
                           f"earlier crashes at start: {self.startup_crashes}): {tail}")

    async def command(self, method, params=None):
        """One DevTools command (e.g. Page.captureScreenshot); returns its result."""
        rid = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps({"id": rid, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == rid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg["result"]

    async def evaluate(self, expression):
        result = await self.command(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression, timeout=30):
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            # Until the page's script ran, there is no `rm`.
            value = await self.evaluate(f"typeof rm === 'undefined' ? null : ({expression})")
            if value:
                return value
            await asyncio.sleep(0.25)
        state = await self.evaluate("JSON.stringify({state: rm.state, error: rm.error, events: rm.events.slice(-10)})")
        raise AssertionError(f"timed out waiting for {expression}: {state}")

    async def close(self):
        if self.ws:
            await self.ws.close()
        self.proc.kill()
        self.proc.wait()
        self.profile.cleanup()
