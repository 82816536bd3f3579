"""The worker process that hosts one Python node: `python -m remotemedia.worker ...`.

The runtime starts it for every Python node of a pipeline run. It loads the node's module,
builds the node with the manifest's params, awaits initialize(), says ready, then serves
requests from the shared-memory channel until the host says stop. It also stops when its
stdin closes, which happens when the host process ends in any way (even SIGKILL), and then
removes the shared memory the dead host left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import faulthandler
import importlib
import importlib.util
import inspect
import json
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from . import _native
from ._codec import from_native, input_pts, to_native
from .node import Node, registered_nodes

# Grace for a node still busy when the host is gone.
_ORPHAN_GRACE_S = 5.0


class LoadError(Exception):
    """The node could not be loaded; the message says what was searched."""


def _load_module(spec: str, search_path: list[str]) -> None:
    looks_like_path = spec.endswith(".py") or os.sep in spec
    if looks_like_path:
        candidates = [Path(spec)] if Path(spec).is_absolute() else [Path(d) / spec for d in search_path]
        for path in candidates:
            if path.is_file():
                name = "remotemedia_user_" + path.stem
                mod_spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(mod_spec)
                sys.modules[name] = module
                mod_spec.loader.exec_module(module)
                return
        tried = ", ".join(str(p) for p in candidates)
        raise LoadError(f"python_module {spec!r} not found: looked for {tried}")
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as e:
        if e.name != spec and not spec.startswith(f"{e.name}."):
            raise  # the module exists; something it imports does not
        raise LoadError(
            f"python_module {spec!r} not found: searched {', '.join(sys.path)}"
        ) from None


def load_node(node_type: str, module: str | None, params: dict, search_path: list[str]) -> Node:
    """Imports the module, finds the registered class and builds it with the params."""
    for d in reversed(search_path):
        if d not in sys.path:
            sys.path.insert(0, d)
    importlib.import_module("remotemedia.nodes")  # the built-in Python nodes
    if module:
        _load_module(module, search_path)
    cls = registered_nodes().get(node_type)
    if cls is None:
        known = ", ".join(sorted(registered_nodes())) or "none"
        where = f"module {module!r}" if module else "no python_module given, so only the built-in nodes"
        raise LoadError(
            f"node_type {node_type!r} is not registered with @register_node ({where}; registered: {known})"
        )
    try:
        node = cls(**params)
    except TypeError as e:
        raise LoadError(f"{node_type} rejected its params: {_param_problems(cls, params, e)}") from None
    except ValueError as e:
        raise LoadError(f"{node_type} rejected its params: {e}") from None
    return node


def _param_problems(cls: type, params: dict, error: TypeError) -> str:
    """Why the constructor refused the params: unknown names with the closest known ones."""
    accepted = _accepted_params(cls)
    problems = []
    for name in (n for n in params if n not in accepted):
        close = difflib.get_close_matches(name, accepted, n=2)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        problems.append(f"unknown param {name!r}{hint}")
    if not problems:
        return str(error)
    return f"{'; '.join(problems)}; it takes: {', '.join(accepted) or 'no params'}"


def _accepted_params(cls: type) -> list[str]:
    """The keyword params a node class's constructors name, up the class chain."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is Node:
            continue
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names:
                names.append(p.name)
    return names


async def _resume(coro: Any, suspended: Any) -> Any:
    """Finishes, under the event loop, a coroutine that suspended on its first step."""
    while True:
        if suspended is None:  # a bare yield, as asyncio.sleep(0) does
            await asyncio.sleep(0)
        else:
            # No task saw the first yield, so the future still says "blocking"; a fresh await
            # must find it cleared. Its result or error reaches the coroutine by its own await.
            suspended._asyncio_future_blocking = False
            try:
                await suspended
            except BaseException:  # noqa: BLE001
                pass
        try:
            suspended = coro.send(None)
        except StopIteration as done:
            return done.value


async def _drain(agen: Any) -> list:
    return [item async for item in agen if item is not None]


def _outputs(loop: asyncio.AbstractEventLoop, result: Any) -> list:
    """Whatever a node call gave, as a list of outputs. A coroutine that completes without
    suspending (the usual process()) runs without a trip through the event loop."""
    if inspect.iscoroutine(result):
        # The loop counts as running during the first step, so asyncio calls in it work.
        asyncio._set_running_loop(loop)
        try:
            suspended = result.send(None)
        except StopIteration as done:
            result = done.value
        else:
            asyncio._set_running_loop(None)
            result = loop.run_until_complete(_resume(result, suspended))
        finally:
            asyncio._set_running_loop(None)
    if result is None:
        return []
    if inspect.isasyncgen(result):
        return loop.run_until_complete(_drain(result))
    if inspect.isgenerator(result) or isinstance(result, list):
        return [item for item in result if item is not None]
    return [result]


def _report(message: str, exc: BaseException | None) -> str:
    tb = "".join(traceback.format_exception(exc)) if exc is not None else ""
    return json.dumps({"message": message, "traceback": tb})


def _watch_host(waker: Any) -> None:
    """Stops the worker once the host is gone (stdin reaches end of file)."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    waker.stop()
    timer = threading.Timer(_ORPHAN_GRACE_S, os._exit, args=(3,))
    timer.daemon = True
    timer.start()


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.chan = _native.WorkerChannel(args.channel, args.prefix)
        self.loop = asyncio.new_event_loop()
        self.node: Node | None = None
        self.label = f"{args.node_type} (node {args.node_id!r})"

    def start(self) -> bool:
        args = self.args
        try:
            params = json.loads(args.params)
            search = [*args.search_path, os.getcwd()]
            self.node = load_node(args.node_type, args.module, params, search)
            self.node.node_id = args.node_id
            _outputs(self.loop, self.node.initialize())
        except LoadError as e:
            self.chan.send_error(_report(str(e), None))
            return False
        except Exception as e:  # noqa: BLE001 - reported to the host with its traceback
            self.chan.send_error(_report(f"{self.label} failed to start: {type(e).__name__}: {e}", e))
            return False
        self.chan.send_ready(json.dumps({"node_type": args.node_type, "pid": os.getpid()}))
        return True

    def handle(self, kind: str, item: tuple | None) -> None:
        node = self.node
        if kind == "process":
            pts = input_pts(item)
            outputs = _outputs(self.loop, node.process(from_native(item)))
        elif kind == "finish":
            pts = None
            outputs = _outputs(self.loop, node.flush())
        else:
            pts = None
            outputs = _outputs(self.loop, node.reset())
        # Convert all first: a wrong type fails the request before anything is sent.
        items = [to_native(out, pts) for out in outputs]
        if not items:
            self.chan.send_done()
        for i, item in enumerate(items):
            # The last output also says the request is done: one message for the usual case.
            self.chan.send_output(item, pts, last=i == len(items) - 1)

    def serve(self) -> None:
        while True:
            kind, item = self.chan.recv()
            if kind == "stop":
                return
            try:
                self.handle(kind, item)
            except TypeError as e:
                if "a node may return" in str(e) or "not JSON" in str(e):
                    self.chan.send_error(_report(f"{self.label} {e}", None))
                else:
                    self.chan.send_error(_report(f"{type(e).__name__}: {e}", e))
            except Exception as e:  # noqa: BLE001 - reported to the host with its traceback
                self.chan.send_error(_report(f"{type(e).__name__}: {e}", e))

    def run(self) -> int:
        threading.Thread(target=_watch_host, args=(self.chan.waker(),), daemon=True).start()
        if self.start():
            self.serve()
            if self.node is not None:
                try:
                    _outputs(self.loop, self.node.cleanup())
                except Exception:  # noqa: BLE001 - the pipeline is ending anyway
                    traceback.print_exc()
        else:
            # Wait for the host to read the report and say stop (or go away).
            while self.chan.recv()[0] != "stop":
                pass
        self.loop.close()
        return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m remotemedia.worker", description=__doc__)
    p.add_argument("--channel", required=True, help="iceoryx2 service name of this node's channel")
    p.add_argument("--prefix", required=True, help="prefix of the shared-memory files")
    p.add_argument("--node-id", required=True)
    p.add_argument("--node-type", required=True)
    p.add_argument("--params", default="{}", help="the node's params as JSON")
    p.add_argument("--module", help="module name or .py path that registers the node")
    p.add_argument("--search-path", action="append", default=[], help="directory for modules")
    args = p.parse_args(argv)
    faulthandler.enable()
    worker = Worker(args)
    code = worker.run()
    del worker
    # A host that died could not remove its shared memory; clean up after it.
    _native.cleanup_dead(args.prefix)
    return code


if __name__ == "__main__":
    sys.exit(main())
