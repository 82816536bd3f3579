"""Called by meson.build: builds the plugin with cargo and copies it to meson's output."""

import shutil
import subprocess
import sys

cargo, source_dir, target_dir, profile, output = sys.argv[1:]
cmd = [cargo, "build", "--manifest-path", f"{source_dir}/Cargo.toml", "--target-dir", target_dir,
       "-p", "gst-plugin-remotemedia"]
if profile == "release":
    cmd.append("--release")
subprocess.run(cmd, check=True)
shutil.copyfile(f"{target_dir}/{profile}/libgstremotemedia.so", output)
