"""An aiortc peer the Node.js tests drive: tests/webrtc_peer.py's Peer, commanded by JSON lines
on stdin, reporting JSON lines on stdout. Loopback only, as every test peer here.

Commands:
  {"op": "call", "port": P, "peerId": ID, "target": "remotemedia", "wav": PATH | null,
   "userData": {...}, "retryForS": 0}
      announce on ws://127.0.0.1:P/ws and offer to `target` (with the WAV as the microphone);
      retried with a fresh connection until `retryForS` runs out (a server coming back).
  {"op": "send", "text": "..."} | {"op": "send", "base64": "..."}   on the data channel
  {"op": "close"}

Events: {"event": "called"} or {"event": "refused", "error": {...}}, then "connected",
"channel_open", {"event": "message", "binary": bool, "text" | "base64"}, {"event":
"notification", "method", "params"} (signaling notifications after the answer), "closed";
{"event": "failed", "message"} when a call breaks after its answer.
"""

import asyncio
import base64
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from webrtc_peer import Peer, WavTrack  # noqa: E402


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class Driver:
    def __init__(self):
        self.peer = None
        self.watcher = None

    async def call(self, cmd):
        deadline = time.monotonic() + cmd.get("retryForS", 0)
        while True:
            peer = Peer(cmd["peerId"])
            self.watch_channel(peer)
            tracks = [WavTrack(cmd["wav"])] if cmd.get("wav") else []
            try:
                error = await peer.call(cmd["port"], target=cmd.get("target", "remotemedia"), recv=(),
                                        sendrecv_tracks=tracks, user_data=cmd.get("userData"))
            except Exception as e:  # the server is away or not announced yet: try again
                error = {"message": repr(e)}
            if error is None:
                break
            await peer.close()
            if time.monotonic() >= deadline:
                emit("refused", error=error)
                return
            await asyncio.sleep(0.2)
        self.peer = peer
        emit("called")
        self.watcher = asyncio.ensure_future(self.notifications(peer))
        await peer.wait_connected()
        emit("connected")

    def watch_channel(self, peer):
        channel = peer.channel
        channel.on("open", lambda: emit("channel_open"))

        def message(data):
            if isinstance(data, bytes):
                emit("message", binary=True, base64=base64.b64encode(data).decode())
            else:
                emit("message", binary=False, text=data)

        channel.on("message", message)

    async def notifications(self, peer):
        while True:
            msg = await peer.signaling.notifications.get()
            emit("notification", method=msg.get("method"), params=msg.get("params"))

    def send(self, cmd):
        if "text" in cmd:
            self.peer.channel.send(cmd["text"])
        else:
            self.peer.channel.send(base64.b64decode(cmd["base64"]))

    async def close(self):
        if self.watcher:
            self.watcher.cancel()
        if self.peer:
            await self.peer.close()
        emit("closed")


async def reported(work):
    try:
        await work
    except Exception as e:
        emit("failed", message=repr(e))


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    driver = Driver()
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["op"] == "call":
            asyncio.ensure_future(reported(driver.call(cmd)))
        elif cmd["op"] == "send":
            driver.send(cmd)
        elif cmd["op"] == "close":
            break
    await driver.close()


if __name__ == "__main__":
    asyncio.run(main())
