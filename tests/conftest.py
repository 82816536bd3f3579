import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "examples" / "launch"


@pytest.fixture(scope="session")
def gst_env():
    """The environment a user has after the README's setup: GST_PLUGIN_PATH and nothing else."""
    env = dict(os.environ)
    env["GST_PLUGIN_PATH"] = str(ROOT / "target" / "debug")
    for var in ("ORT_DYLIB_PATH", "VIRTUAL_ENV"):
        env.pop(var, None)
    assert shutil.which("gst-launch-1.0"), "gst-launch-1.0 missing: run scripts/setup.sh"
    return env


@pytest.fixture(scope="session")
def known_segments():
    import json

    return json.loads((LAUNCH / "speech.segments.json").read_text())["segments_ms"]
