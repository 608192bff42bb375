"""The event loops under comparison: how to import each one and make a loop of it.

Every loop is built by ``new_event_loop()`` of its package with default settings: no per-loop
tuning. ``probe()`` runs in a worker process, so a loop that fails to import never touches the
orchestrator.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import platform

# Column order of every table: the baseline first, oxloop, then the native ceiling.
LOOPS = ("asyncio", "uvloop", "rloop", "rsloop", "oxloop", "oxloop+monitor", "native")

# oxloop with monitoring mode on (oxloop.run(..., monitor=True)): the column shows what it costs.
MONITORED = "oxloop+monitor"

# "native" is no Python loop: the network rows' ceiling, the same services in Rust on
# oxloop-core's reactor (crates/oxloop-core/examples/echo_server.rs, built by `make native-echo`).
NATIVE_ECHO = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "examples", "echo_server"
)


def _version(name: str) -> str:
    if name == "asyncio":
        return "CPython " + platform.python_version()
    if name == MONITORED:
        return _version("oxloop") + ", monitoring mode on"
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return getattr(importlib.import_module(name), "__version__", "?")


def factory(name: str):
    """Return a zero-argument callable that makes a new loop of ``name``."""
    if name == "native":
        raise ImportError("the native ceiling runs the network servers only")
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == MONITORED:
        import oxloop
        from oxloop import _monitor

        def monitored():
            loop = oxloop.new_event_loop()
            _monitor.enable(loop)
            return loop

        return monitored
    module = importlib.import_module(name)
    return module.new_event_loop


def _build_note(name: str) -> str:
    """Why a peer built from source (`make bench-rsloop`) is missing: its build log's last line."""
    log = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", ".venv", name + "-build.log"
    )
    try:
        with open(log) as f:
            last = [line.strip() for line in f if line.strip()][-1:]
    except OSError:
        return ""
    return f" (source build: {last[0][:120]})" if last else ""


def probe() -> dict:
    """For each loop: its version, or why it cannot be used ("not installed: ...")."""
    found = {}
    for name in LOOPS:
        if name == "native":
            ok = os.access(NATIVE_ECHO, os.X_OK)
            found[name] = (
                {"ok": True, "version": "Rust echo and HTTP on oxloop-core, no Python"}
                if ok
                else {"ok": False, "error": "not built: make native-echo"}
            )
            continue
        try:
            loop = factory(name)()
            loop.close()
            found[name] = {"ok": True, "version": _version(name)}
        except ImportError as exc:
            found[name] = {"ok": False, "error": f"not installed: {exc}{_build_note(name)}"}
        except Exception as exc:  # noqa: BLE001 - a broken loop is a result, not a crash
            found[name] = {"ok": False, "error": f"broken: {type(exc).__name__}: {exc}"}
    return found
