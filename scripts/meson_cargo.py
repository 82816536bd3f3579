"""Called by meson.build: builds the plugin and the SRT relay with cargo and copies both to
meson's output directory."""

import shutil
import subprocess
import sys

cargo, source_dir, target_dir, profile, outdir = sys.argv[1:]
cmd = [cargo, "build", "--manifest-path", f"{source_dir}/Cargo.toml", "--target-dir", target_dir,
       "-p", "gst-plugin-remotemedia"]
if profile == "release":
    cmd.append("--release")
subprocess.run(cmd, check=True)
for name in ("libgstremotemedia.so", "remotemedia-srt-relay"):
    shutil.copy2(f"{target_dir}/{profile}/{name}", f"{outdir}/{name}")
