"""B1: CPU cost of remotemediapipeline (PassThrough manifest) against identity, same
pipeline otherwise, 30000 buffers of 480 samples at 48 kHz, alternating runs, median of each.

    cargo build --release -p gst-plugin-remotemedia && .venv/bin/python benches/b1_element_overhead.py
"""

import os
import pathlib
import resource
import statistics
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUFFERS = int(os.environ.get("B1_BUFFERS", "30000"))
ROUNDS = 11
SOURCE = f"audiotestsrc num-buffers={BUFFERS} samplesperbuffer=480 ! audio/x-raw,format=F32LE,rate=48000,channels=1"
CASES = {
    "identity": "identity",
    "remotemediapipeline": f"remotemediapipeline manifest={ROOT / 'examples/launch/passthrough.json'}",
}


def cpu_of(element: str, env: dict) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["gst-launch-1.0", "-q", *f"{SOURCE} ! {element} ! fakesink".split()], env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    env = dict(os.environ, GST_PLUGIN_PATH=str(ROOT / "target" / "release"))
    for element in CASES.values():  # warm the registry and page cache
        cpu_of(element, env)
    times = {name: [] for name in CASES}
    for _ in range(ROUNDS):
        for name, element in CASES.items():
            times[name].append(cpu_of(element, env))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"B1 element overhead, {BUFFERS} buffers x 480 samples, median of {ROUNDS} runs (CPU s, user+sys)")
    for name in CASES:
        print(f"  {name:22s} {med[name]:.3f} s   runs: {' '.join(f'{t:.3f}' for t in times[name])}")
    print(f"  ratio remotemediapipeline/identity  {med['remotemediapipeline'] / med['identity']:.3f}")


if __name__ == "__main__":
    main()
