"""The node SDK: write a node in Python, use it from a manifest.

    from remotemedia import Node, register_node

    @register_node("Shout")
    class Shout(Node):
        async def process(self, data):
            return data.upper()

A manifest runs it with {"id": "s", "node_type": "Shout", "executor": "python",
"python_module": "shout"} (a module name or a path to a .py file, looked up next to the
manifest, in the working directory and on sys.path). The node's "params" arrive as keyword
arguments of the constructor, so a param the node does not take is refused when the pipeline
starts.

What process() receives: str (text), dict (a JSON object), Json (any other JSON value), bytes
(binary), a numpy array (tensor), Audio, Video or Control. Audio samples, video planes and tensors are
read-only numpy views over the shared memory the data arrived in: no copy was made. Keep
at most a few of them past the call (copy with numpy.array(x) to keep more).

What it may return: None (nothing), one output, a list of outputs, or be a generator or an
async generator that yields them. An output is str, bytes, a dict (JSON), Json(value) for
any JSON value, a numpy array (tensor), Audio, Video or Control. process() may be a plain
function or a coroutine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

_REGISTRY: dict[str, type] = {}


def register_node(name: str) -> Callable[[type], type]:
    """Registers a Node subclass under `name`, the manifest's node_type."""

    def deco(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise TypeError(f"@register_node({name!r}) must decorate a subclass of remotemedia.Node")
        if cls.process is Node.process:
            raise TypeError(f"@register_node({name!r}): {cls.__name__} must define process()")
        _REGISTRY[name] = cls
        cls.node_type = name
        return cls

    return deco


def registered_nodes() -> dict[str, type]:
    """Every registered node type, by name."""
    return dict(_REGISTRY)


class Node:
    """Base class of Python nodes. Override process(); the others are optional."""

    node_type: str = ""

    def __init__(self, **params: Any) -> None:
        if params:
            names = ", ".join(sorted(params))
            raise TypeError(f"{type(self).__name__} takes no params, got {names}")
        self.node_id = ""

    async def initialize(self) -> None:
        """Load models and the like; the pipeline starts once this returned."""

    async def process(self, data: Any) -> Any:
        """Handles one input; register_node refuses a class that does not define it."""
        raise TypeError(f"{type(self).__name__} does not define process()")

    async def flush(self) -> Any:
        """End of stream: return (or yield) what the node still holds."""
        return None

    async def reset(self) -> None:
        """Flush (a seek): forget held data and state."""

    async def cleanup(self) -> None:
        """The pipeline stops."""


@dataclass
class Audio:
    """Interleaved float32 audio. `pts` and `duration` are nanoseconds."""

    samples: np.ndarray
    sample_rate: int
    channels: int = 1
    pts: int | None = None
    stream_id: str | None = None
    duration: int | None = None
    metadata: dict | None = None

    def frames(self) -> int:
        return len(self.samples) // max(self.channels, 1)


@dataclass
class Video:
    """A video frame: `data` is uint8 (planes back to back); format I420, NV12, RGB, RGBA or
    ENCODED."""

    data: np.ndarray
    width: int
    height: int
    format: str = "RGB"
    pts: int | None = None
    keyframe: bool = False
    stream_id: str | None = None


@dataclass
class Control:
    """A control message: "eos", "flush" or "cancel_speculation" (with from_ms, to_ms)."""

    kind: str
    from_ms: float = 0.0
    to_ms: float = 0.0


@dataclass
class Json:
    """A JSON output of any shape (a bare list would mean several outputs)."""

    value: Any = field(default=None)
