"""Remote execution on a remotemedia-server over gRPC, the same service that
`RemotePipelineNode` and other gRPC clients use:

    from remotemedia import remote
    outputs = await remote.execute_pipeline("grpc://127.0.0.1:50051", manifest, [audio])

Inputs and outputs are those of `remotemedia.runtime` (audio dicts, text, JSON, bytes, numpy
tensors).
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable

from . import _native
from ._native import RemoteError
from .runtime import _manifest_text, _to_native

__all__ = ["execute_pipeline", "RemoteError"]


async def execute_pipeline(
    url: str,
    manifest: str | dict,
    inputs: Iterable[Any] = (),
    *,
    timeout_ms: int = 30_000,
    auth_token: str | None = None,
    max_attempts: int = 3,
) -> list[dict]:
    """Runs `manifest` once on the server at `url` (grpc://host:port or grpcs://host:port)
    over `inputs` and returns every output, in order, each with the far node's "node_id".

    A server that is away or overloaded is tried again up to `max_attempts` times, waiting
    100 ms, 200 ms, ... (at most 2 s) between tries. Raises RemoteError naming the cause: an
    invalid manifest or a node failure on the server, a refused token, a time limit, or an
    unreachable server."""
    items = [_to_native(item) for item in inputs]
    return await asyncio.to_thread(
        _native.remote_execute, url, _manifest_text(manifest), items, int(timeout_ms), auth_token, int(max_attempts)
    )
