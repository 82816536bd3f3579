"""A test RTSP server (gst-rtsp-server through PyGObject) on 127.0.0.1, serving a WAV file as
Opus in real time from its start to every client, or (FILE = `sine`) one live 440 Hz tone
encoded once and shared by every client (for the benchmarks), or (FILE = `slow-sine`) a live
tone whose first packet leaves 2.5 s after PLAY, as from a server slow to start its stream:

    python tests/rtsp_server.py PORT FILE.wav|sine|slow-sine [MOUNT]
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(port, path, mount="/test"):
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    if path == "sine":
        source = "audiotestsrc is-live=true wave=sine volume=0.3"
        factory.set_shared(True)
    elif path == "slow-sine":
        source = ("audiotestsrc is-live=true wave=sine volume=0.3 ! queue min-threshold-time=2500000000 "
                  "max-size-time=0 max-size-buffers=0 max-size-bytes=0")
    else:
        source = f"filesrc location={path} ! wavparse"
    factory.set_launch(
        f"( {source} ! audioconvert ! audioresample ! "
        "audio/x-raw,rate=48000 ! opusenc ! rtpopuspay name=pay0 pt=96 )"
    )
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], *sys.argv[3:])
