"""Can vp9 be the default video codec? Encoding speed of 1280x720 at 30 fps on this machine, vp8
against vp9 (and x264 for reference), with the encoder settings `remotemediawebrtcsink` uses
(plugins/src/webrtc/send.rs: realtime deadline, cpu-used 8, no lag, CBR at the default 2000
kbit/s, 2 threads).

    .venv/bin/python benches/video_codec_speed.py [--seconds 20]

Each codec encodes --seconds of video as fast as it can (no clock), one after the other, from
two sources: `videotestsrc pattern=smpte` with a moving ball on it (a scene with motion) and
`pattern=snow` (noise, the worst case). Real time needs at least 30 frames per second; the
table gives frames per second (source included) and the CPU of the encoder alone (the run's
CPU less that of the same source into fakesink), in % of one core at 30 fps.
"""

import argparse
import resource
import subprocess
import time

WIDTH, HEIGHT, FPS = 1280, 720, 30
ENCODERS = {
    "vp8": "vp8enc deadline=1 cpu-used=8 lag-in-frames=0 end-usage=cbr target-bitrate=2000000 "
           "keyframe-max-dist=600 threads=2 error-resilient=default",
    "vp9": "vp9enc deadline=1 cpu-used=8 lag-in-frames=0 end-usage=cbr target-bitrate=2000000 "
           "keyframe-max-dist=600 threads=2 error-resilient=default",
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast bitrate=2000 key-int-max=600",
    "none": "identity",  # the source alone, subtracted from the others' CPU
}
SOURCES = ("motion", "noise")


def source(kind: str, frames: int) -> str:
    caps = f"video/x-raw,width={WIDTH},height={HEIGHT},framerate={FPS}/1,format=I420"
    if kind == "motion":
        return (f"videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=8 ! {caps} ! mix. "
                f"videotestsrc num-buffers={frames} pattern=ball motion=sweep ! {caps} ! mix. "
                f"compositor name=mix ! videoconvert ! {caps}")
    return f"videotestsrc num-buffers={frames} pattern=snow ! {caps}"


def encode(codec: str, kind: str, frames: int) -> tuple[float, float]:
    """Encodes `frames` frames; returns (frames per second, CPU seconds used)."""
    cmd = ["gst-launch-1.0", "-q", *f"{source(kind, frames)} ! {ENCODERS[codec]} ! fakesink".split()]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(cmd, check=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return frames / wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    frames = int(args.seconds * FPS)
    print("| source | codec | frames/s (real time: 30) | CPU % of a core at 30 fps |")
    print("|---|---|---|---|")
    for kind in SOURCES:
        _, source_cpu = encode("none", kind, frames)
        for codec in ENCODERS:
            if codec == "none":
                continue
            fps, cpu = encode(codec, kind, frames)
            print(f"| {kind} | {codec} | {fps:.1f} | {100 * (cpu - source_cpu) / args.seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
