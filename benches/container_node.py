"""B20: container nodes. The start of a node whose image must first be built (its packages
installed by pip over the base image), a warm start (image cached, a new container), and a local
worker's start beside them; then the B3 hop of a 20 ms 48 kHz frame through a Python echo node,
run in a local worker and in a container one after the other in one run: first as the scheduler
places the processes, then with the host pinned to one core (`taskset -c 0`; a worker inherits
the host's CPU affinity, in a container too, through the engine's exec).

    .venv/bin/python benches/container_node.py [--count 5000] [--starts 5]

The cold start removes the node images (label remotemedia.spec) first; tests and pipelines
rebuild theirs on demand. Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import asyncio
import json
import os
import pathlib
import statistics
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "runtime-bridge" / "tests" / "fixtures" / "test_nodes.py"
ENGINE = os.environ.get("REMOTEMEDIA_CONTAINER_ENGINE", "podman")


def json_lines(cmd):
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def start_seconds(docker):
    """Seconds from asking for a one-node pipeline to its first output (then it is torn down)."""
    from remotemedia import runtime

    node = {"id": "echo", "node_type": "Echo", "python_module": str(FIXTURE)}
    if docker is not None:
        node["docker"] = docker
    manifest = {"version": "v1", "nodes": [node]}
    t = time.perf_counter()
    out = asyncio.run(runtime.execute_pipeline_with_input(manifest, ["x"]))
    assert out[0]["text"] == "x", out
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--starts", type=int, default=5)
    args = p.parse_args()
    spec = {"python_packages": ["humanize"]}
    images = subprocess.run([ENGINE, "images", "-q", "--filter", "label=remotemedia.spec"], check=True,
                            capture_output=True, text=True).stdout.split()
    if images:
        subprocess.run([ENGINE, "rmi", "-f", *images], check=True, capture_output=True)
    cold = start_seconds(spec)
    warm = statistics.median(start_seconds(spec) for _ in range(args.starts))
    local = statistics.median(start_seconds(None) for _ in range(args.starts))
    print("| start | seconds |\n|---|---|")
    print(f"| container, image built first (pip: humanize) | {cold:.2f} |")
    print(f"| container, image cached (median of {args.starts}) | {warm:.2f} |")
    print(f"| local worker (median of {args.starts}) | {local:.2f} |")

    bench = ["cargo", "bench", "-q", "-p", "remotemedia-runtime", "--bench", "python_hop", "--", "--count",
             str(args.count)]
    for label, prefix in (("unpinned", []), ("pinned to one core", ["taskset", "-c", "0"])):
        hop, in_graph = json_lines([*prefix, *bench])
        c_hop, c_in_graph = json_lines([*prefix, *bench, "--container"])
        print(f"\n{label}:\n\n| transport | p50 us | p99 us | mean us |\n|---|---|---|---|")
        for r in (hop, c_hop, in_graph, c_in_graph):
            print(f"| {r['transport']} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['mean_us']:.1f} |")
        for local_r, cont in ((hop, c_hop), (in_graph, c_in_graph)):
            print(f"\n{cont['transport']}: p50 / local {cont['p50_us'] / local_r['p50_us']:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
