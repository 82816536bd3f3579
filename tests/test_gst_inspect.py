"""Every element's gst-inspect-1.0 output against a checked-in snapshot (tests/gst-inspect/), so a
property, pad template or signal that changes by accident fails CI. After an intended change,
UPDATE_SNAPSHOTS=1 makes this test write the snapshots; review their diff like code."""

import os
import subprocess
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).resolve().parent / "gst-inspect"
ELEMENTS = ["remotemediapipeline", "remotemediaingest", "remotemediawebrtcsink", "remotemediawebrtcsrc",
            "remotemediawebrtcserver"]
# Lines that change with the build, not with the element.
VARYING = ("Filename", "Version", "Source release date")


def inspect(element, env):
    out = subprocess.run(["gst-inspect-1.0", element], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return "".join(line + "\n" for line in out.stdout.splitlines()
                   if not line.strip().startswith(VARYING))


@pytest.mark.parametrize("element", ELEMENTS)
def test_the_element_is_what_its_snapshot_says(element, gst_env):
    text = inspect(element, gst_env)
    path = SNAPSHOTS / f"{element}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.exists(), f"no snapshot for {element}: run with UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), (
        f"gst-inspect-1.0 {element} differs from {path.relative_to(SNAPSHOTS.parent.parent)}; if the change "
        "is intended, run this test with UPDATE_SNAPSHOTS=1 and commit the snapshot")


def test_every_element_has_a_snapshot(gst_env):
    out = subprocess.run(["gst-inspect-1.0", "remotemedia"], capture_output=True, text=True, env=gst_env, timeout=60)
    listed = sorted(line.split(":")[0].strip() for line in out.stdout.splitlines()
                    if line.strip().startswith("remotemedia") and ":" in line)
    assert listed == sorted(ELEMENTS)
