"""remotemedia-server as a child process on loopback, for the tests that need one."""

import os
import re
import signal
import subprocess
import tempfile

from conftest import ROOT

BINARY = ROOT / "target" / "debug" / "remotemedia-server"


class ServerProcess:
    """Starts the server with `args` (ports default to free ones) and reads the bound ports."""

    def __init__(self, *args, grpc="127.0.0.1:0", ws="127.0.0.1:0", metrics="127.0.0.1:0", env=None):
        assert BINARY.exists(), f"{BINARY} missing: run cargo build -p remotemedia-signaling"
        self.argv = [str(BINARY), "--grpc-bind", grpc, "--ws-bind", ws, "--metrics-bind", metrics, *args]
        self.env = {**os.environ, "RUST_LOG": "warn", **(env or {})}
        # The log goes to a file, not a pipe nobody reads (a full pipe would block the server).
        self.log = tempfile.NamedTemporaryFile("w+", prefix="remotemedia-server-", suffix=".log")
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.log, text=True, env=self.env)
        line = self.proc.stdout.readline()
        m = re.search(r"grpc=(\S+) ws=(\S+) metrics=(\S+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r}; log: {self.log_text()}")
        self.grpc, self.ws, self.metrics = m.groups()
        self.grpc_port = int(self.grpc.rsplit(":", 1)[1])
        self.ws_port = int(self.ws.rsplit(":", 1)[1]) if self.ws != "off" else None

    def log_text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def kill(self):
        """Dies at once, as a crashed or rebooted server would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
