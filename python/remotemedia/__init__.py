"""RemoteMedia for Python: run RemoteMedia manifests on the native runtime.

    import asyncio, json
    from remotemedia import runtime
    outputs = asyncio.run(runtime.execute_pipeline_with_input(manifest_json, ["hello"]))
"""

from . import runtime
from ._native import ManifestError, PipelineError
from .node import Audio, Control, Json, Node, Video, register_node, registered_nodes

__version__ = runtime.get_runtime_version()
__all__ = [
    "runtime",
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
