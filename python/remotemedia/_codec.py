"""Conversions between the native module's tagged tuples and the SDK's Python objects."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .node import Audio, Control, Json, Video

OUTPUT_TYPES = "str, bytes, dict, Json, numpy.ndarray, Audio, Video, Control or None"


def from_native(item: tuple) -> Any:
    """An input as the node sees it; array payloads are views over the shared memory."""
    kind = item[0]
    if kind == "audio":
        _, buf, off, n, rate, channels, pts, stream_id, duration, meta = item
        samples = np.frombuffer(buf, dtype=np.float32, count=n, offset=off)
        metadata = json.loads(meta) if meta is not None else None
        return Audio(samples, rate, channels, pts, stream_id, duration, metadata)
    if kind == "video":
        _, buf, off, n, width, height, fmt, pts, keyframe, stream_id = item
        data = np.frombuffer(buf, dtype=np.uint8, count=n, offset=off)
        return Video(data, width, height, fmt, pts, keyframe, stream_id)
    if kind == "tensor":
        _, buf, off, n, shape, dtype, _pts = item
        return np.frombuffer(buf, dtype=np.uint8, count=n, offset=off).view(dtype).reshape(shape)
    if kind == "text":
        return item[1]
    if kind == "json":
        # Objects arrive as dicts; any other JSON value as Json(value), so that a JSON string
        # stays apart from text and a JSON array from a list of outputs.
        value = json.loads(item[1])
        return value if isinstance(value, dict) else Json(value)
    if kind == "binary":
        return item[1]
    if kind == "control":
        return Control(item[1], item[2], item[3])
    raise ValueError(f"unknown input kind {kind!r}")


def input_pts(item: tuple) -> int | None:
    """The timestamp an input came with (outputs without their own take it)."""
    return item[{"audio": 6, "video": 7, "control": 4, "tensor": 6}.get(item[0], 2)]


def to_native(value: Any, pts: int | None) -> tuple:
    """An output as the tagged tuple the native module sends; TypeError names a wrong type."""
    if isinstance(value, str):
        return ("text", value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("binary", bytes(value))
    if isinstance(value, Audio):
        samples = np.ascontiguousarray(value.samples, dtype=np.float32).reshape(-1)
        meta = json.dumps(value.metadata) if value.metadata is not None else None
        return ("audio", samples, int(value.sample_rate), int(value.channels),
                value.pts if value.pts is not None else pts, value.stream_id, value.duration, meta)
    if isinstance(value, Video):
        data = np.ascontiguousarray(value.data, dtype=np.uint8).reshape(-1)
        return ("video", data, int(value.width), int(value.height), value.format,
                value.pts if value.pts is not None else pts, bool(value.keyframe), value.stream_id)
    if isinstance(value, Control):
        return ("control", value.kind, float(value.from_ms), float(value.to_ms))
    if isinstance(value, np.ndarray):
        flat = np.ascontiguousarray(value)
        return ("tensor", flat.reshape(-1).view(np.uint8), list(value.shape), str(flat.dtype))
    if isinstance(value, Json):
        return ("json", json.dumps(value.value))
    if isinstance(value, dict):
        try:
            return ("json", json.dumps(value))
        except TypeError as e:
            raise TypeError(f"returned a dict that is not JSON: {e}") from None
    if isinstance(value, (bool, int, float)):
        return ("json", json.dumps(value))
    raise TypeError(f"returned {type(value).__name__}; a node may return {OUTPUT_TYPES}")
