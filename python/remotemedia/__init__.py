"""RemoteMedia for Python: run RemoteMedia manifests on the native runtime.

    import asyncio, json
    from remotemedia import runtime
    outputs = asyncio.run(runtime.execute_pipeline_with_input(manifest_json, ["hello"]))

`remotemedia.ingest(uri)` yields a live or recorded source's audio and video; the WebRTC
server API is in `remotemedia.webrtc`; `remotemedia.remote.execute_pipeline(url, manifest,
inputs)` runs a manifest on a remotemedia-server over gRPC.
"""

from . import remote, runtime
from .ingest import IngestError, ingest, register_ingest_plugin
from ._native import ManifestError, PipelineError
from .node import Audio, Control, Json, Node, Video, register_node, registered_nodes

__version__ = runtime.get_runtime_version()
__all__ = [
    "runtime",
    "remote",
    "ingest",
    "IngestError",
    "register_ingest_plugin",
    "ManifestError",
    "PipelineError",
    "Node",
    "register_node",
    "registered_nodes",
    "Audio",
    "Video",
    "Control",
    "Json",
    "__version__",
]
