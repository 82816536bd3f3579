"""Round-trip latency of one 20 ms audio frame (48 kHz mono float32: 960 samples, 3840 bytes), or with
--video of one 1920x1080 RGB frame (6 220 800 bytes), from this process to a child Python process that
echoes it back, over two transports:

  iceoryx2-python       iceoryx2's own Python bindings: a publish-subscribe service of bytes in each
                        direction plus an event service each, so both sides block in a listener wait
                        (no polling, no sleeps); the frame is copied into a loaned sample on each hop.
  multiprocessing-pipe  multiprocessing.Pipe, the frame pickled each way.

    .venv/bin/python benches/hop_baselines.py [--count N] [--only iceoryx2|pipe] [--video]

Prints one JSON line per transport: p50, p99 and mean of N timed round trips (after 200 untimed ones), in us.
"""

import argparse
import ctypes
import json
import multiprocessing
import uuid
from time import perf_counter_ns

import iceoryx2 as iox2
import numpy as np

AUDIO_SAMPLES = 960
VIDEO_SHAPE = (1080, 1920, 3)
WARMUP = 200
VIDEO_WARMUP = 20
CHECK_EVERY = 100
TIMEOUT = iox2.Duration.from_secs(10)  # a wait this long means the other side is gone
IOX_PREFIX = "hopbench_"  # prefix of every file iceoryx2 creates in /dev/shm and /tmp/iceoryx2
Bytes = iox2.Slice[ctypes.c_uint8]


def make_frame(video: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    if video:
        return rng.integers(0, 256, VIDEO_SHAPE, dtype=np.uint8)
    return rng.standard_normal(AUDIO_SAMPLES).astype(np.float32)


def measure(transport: str, roundtrip, count: int, video: bool) -> dict:
    """Times `count` calls of roundtrip(frame) -> echo after the untimed warm-up ones, checking the echo."""
    frame = make_frame(video)
    flat = frame.reshape(-1)
    warmup = VIDEO_WARMUP if video else WARMUP
    latencies = np.empty(count, dtype=np.int64)
    for i in range(warmup + count):
        flat[0] = i % 256  # a different frame each time, so a stale echo cannot pass the check
        t0 = perf_counter_ns()
        echo = roundtrip(frame)
        t1 = perf_counter_ns()
        if i % CHECK_EVERY == 0 and not np.array_equal(echo.reshape(-1), flat):
            raise AssertionError(f"{transport}: round trip {i} echoed different data")
        if i >= warmup:
            latencies[i - warmup] = t1 - t0
    us = latencies / 1000
    p50, p99 = np.percentile(us, [50, 99])
    return {"transport": transport, "p50_us": round(p50, 1), "p99_us": round(p99, 1),
            "mean_us": round(us.mean(), 1), "count": count}


def finish(child, stop) -> None:
    """Sends the child its stop message and waits for it to exit cleanly."""
    stop()
    child.join(TIMEOUT.as_secs())
    if child.is_alive():
        child.kill()
        child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"echo process exited with {child.exitcode}")


# --- iceoryx2 ---------------------------------------------------------------------------------------------

class IoxPorts:
    """One side's ports: publisher + notifier towards the other side, subscriber + listener from it. The
    process that runs first creates the services (create=True), the other opens them."""

    def __init__(self, service: str, send: str, recv: str, create: bool, nbytes: int):
        config = iox2.config.default()
        config.global_cfg.prefix = iox2.FileName.new(IOX_PREFIX)
        self.node = iox2.NodeBuilder.new().config(config).create(iox2.ServiceType.Ipc)

        def services(direction: str):
            name = iox2.ServiceName.new(f"{service}/{direction}")
            pubsub = self.node.service_builder(name).publish_subscribe(Bytes)
            event = self.node.service_builder(name).event()
            return (pubsub.create(), event.create()) if create else (pubsub.open(), event.open())

        data, event = services(send)
        self.publisher = data.publisher_builder().initial_max_slice_len(nbytes).create()
        self.notifier = event.notifier_builder().create()
        data, event = services(recv)
        self.subscriber = data.subscriber_builder().create()
        self.listener = event.listener_builder().create()

    def send(self, address: int, nbytes: int) -> None:
        """Copies nbytes at address into a loaned sample, publishes it and wakes the other side."""
        sample = self.publisher.loan_slice_uninit(nbytes)
        ctypes.memmove(sample.payload_ptr, address, nbytes)
        sample.assume_init().send()
        self.notifier.notify()

    def receive(self):
        """Blocks until the other side's next sample arrives. The sample is published before its event is
        sent, so after a wake-up it is there; the loop only guards against a wake-up without one."""
        while True:
            if not self.listener.timed_wait(TIMEOUT):
                raise TimeoutError("no event from the other side")
            sample = self.subscriber.receive()
            if sample is not None:
                return sample


def iceoryx2_echo(service: str, nbytes: int) -> None:
    """Child: sends one empty sample to say its ports exist, then echoes every sample until an empty one."""
    ports = IoxPorts(service, send="pong", recv="ping", create=False, nbytes=nbytes)
    ports.send(0, 0)
    while True:
        sample = ports.receive()
        nbytes = sample.header.number_of_elements
        if nbytes == 0:
            return
        ports.send(sample.payload_ptr, nbytes)  # copy straight from the received sample into the reply
        sample.delete()


def run_iceoryx2(count: int, video: bool) -> dict:
    service = f"hopbench/{uuid.uuid4().hex}"
    echo = np.empty_like(make_frame(video))
    nbytes = echo.nbytes
    ports = IoxPorts(service, send="ping", recv="pong", create=True, nbytes=nbytes)
    child = multiprocessing.get_context("spawn").Process(target=iceoryx2_echo, args=(service, nbytes))
    child.start()
    ports.receive().delete()  # the child's ready message
    echo_address = echo.ctypes.data  # fixed; the sent frame's address is looked up per call, as a sender would

    def roundtrip(frame: np.ndarray) -> np.ndarray:
        ports.send(frame.ctypes.data, nbytes)
        reply = ports.receive()
        ctypes.memmove(echo_address, reply.payload_ptr, nbytes)  # out of shared memory, as a consumer would
        reply.delete()
        return echo

    try:
        return measure("iceoryx2-python", roundtrip, count, video)
    finally:
        finish(child, lambda: ports.send(0, 0))


# --- multiprocessing.Pipe ---------------------------------------------------------------------------------

def pipe_echo(conn) -> None:
    """Child: echoes every frame until None."""
    while (frame := conn.recv()) is not None:
        conn.send(frame)


def run_pipe(count: int, video: bool) -> dict:
    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    child = context.Process(target=pipe_echo, args=(child_conn,))
    child.start()

    def roundtrip(frame: np.ndarray) -> np.ndarray:
        conn.send(frame)
        return conn.recv()

    try:
        return measure("multiprocessing-pipe", roundtrip, count, video)
    finally:
        finish(child, lambda: conn.send(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="timed round trips per transport")
    parser.add_argument("--only", choices=["iceoryx2", "pipe"], help="run one transport")
    parser.add_argument("--video", action="store_true", help="a 1920x1080 RGB frame instead of 20 ms of audio")
    args = parser.parse_args()
    runs = {"iceoryx2": run_iceoryx2, "pipe": run_pipe}
    for name, run in runs.items():
        if args.only in (None, name):
            print(json.dumps(run(args.count, args.video)), flush=True)


if __name__ == "__main__":
    main()
