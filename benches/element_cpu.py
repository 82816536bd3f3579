"""CPU cost of remotemediapipeline against GStreamer's own element for the same job, in the
same pipeline otherwise: 30000 buffers of 480 samples at 48 kHz from audiotestsrc into
fakesink, alternating runs, medians of the whole process's CPU time (user + sys).

    cargo build --release -p gst-plugin-remotemedia
    .venv/bin/python benches/element_cpu.py B1   # PassThrough manifest vs identity
    .venv/bin/python benches/element_cpu.py R1   # FastResampleNode 48k->16k vs audioresample
"""

import os
import pathlib
import resource
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "examples" / "launch"
BUFFERS = int(os.environ.get("BENCH_BUFFERS", "30000"))
ROUNDS = 11
SOURCE = f"audiotestsrc num-buffers={BUFFERS} samplesperbuffer=480 ! audio/x-raw,format=F32LE,rate=48000,channels=1"
BENCHES = {
    "B1": ("element overhead", {
        "identity": "identity",
        "remotemediapipeline": f"remotemediapipeline manifest={LAUNCH / 'passthrough.json'}",
    }),
    "R1": ("resampling 48 kHz -> 16 kHz", {
        "audioresample": "audioresample ! audio/x-raw,rate=16000",
        "remotemediapipeline": f"remotemediapipeline manifest={LAUNCH / 'resample.json'}",
    }),
}


def cpu_of(element: str, env: dict) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["gst-launch-1.0", "-q", *f"{SOURCE} ! {element} ! fakesink".split()], env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "B1"
    title, cases = BENCHES[name]
    env = dict(os.environ, GST_PLUGIN_PATH=str(ROOT / "target" / "release"))
    for element in cases.values():  # warm the registry and page cache
        cpu_of(element, env)
    times = {case: [] for case in cases}
    for _ in range(ROUNDS):
        for case, element in cases.items():
            times[case].append(cpu_of(element, env))
    med = {case: statistics.median(t) for case, t in times.items()}
    baseline, ours = list(cases)
    print(f"{name} {title}, {BUFFERS} buffers x 480 samples, median of {ROUNDS} runs (CPU s, user+sys)")
    for case in cases:
        print(f"  {case:22s} {med[case]:.3f} s   runs: {' '.join(f'{t:.3f}' for t in times[case])}")
    print(f"  ratio {ours}/{baseline}  {med[ours] / med[baseline]:.3f}")


if __name__ == "__main__":
    main()
