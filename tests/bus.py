"""A pipeline's bus as the WebRTC tests read it: element messages kept in order, errors
collected (or failing the test at once), and an awaitable wait for one message."""

import asyncio
import time

from gi.repository import GLib, Gst


def field_values(s):
    """A structure's fields as Python values that outlive it (GBytes become bytes)."""
    values = {s.nth_field_name(i): s.get_value(s.nth_field_name(i)) for i in range(s.n_fields())}
    return {k: bytes(v.get_data() or b"") if isinstance(v, GLib.Bytes) else v for k, v in values.items()}


class BusLog:
    def __init__(self, pipeline, fail_on_error=True):
        self.pipeline = pipeline
        self.fail_on_error = fail_on_error
        self.messages = []
        self.errors = []

    def poll(self):
        bus = self.pipeline.get_bus()
        while (msg := bus.pop_filtered(Gst.MessageType.ELEMENT | Gst.MessageType.ERROR)) is not None:
            if msg.type == Gst.MessageType.ERROR:
                err, dbg = msg.parse_error()
                if self.fail_on_error:
                    raise AssertionError(f"pipeline error: {err.message} {dbg}")
                self.errors.append(f"{err.message} {dbg}")
                continue
            s = msg.get_structure()
            fields = field_values(s)
            self.messages.append((s.get_name(), fields))

    async def message(self, name, timeout=15, **fields):
        """The first element message `name` whose fields include `fields`, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            for n, f in self.messages:
                if n == name and all(f.get(k) == v for k, v in fields.items()):
                    return f
            await asyncio.sleep(0.05)
        seen = [m for m in self.messages if m[0] != "remotemedia"][:20]
        raise AssertionError(f"no {name} {fields} on the bus; saw {seen}")
