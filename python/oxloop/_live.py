"""The live view's server: monitored loops' statistics on a Unix socket only the user can open.

With monitoring on, the process listens on ``$XDG_RUNTIME_DIR/oxloop/<pid>.sock`` (else
``/tmp/oxloop-<uid>/<pid>.sock``), in a directory of mode 0700 owned by the user, the socket
itself 0600. Each connection gets one JSON document (a line) and is closed: the process's pid
and command line, and ``oxloop.stats()`` of each monitored loop. ``python -m oxloop top`` reads it.
The server is a daemon thread blocked in ``accept`` (no GIL while waiting); it builds the answer
with the GIL, as any thread does, and never runs on the loop's thread.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import socket
import stat
import sys
import threading

_server: "_Server | None" = None
_lock = threading.Lock()


def socket_dir(create: bool = False) -> str:
    """The directory of the live sockets; with ``create``, made (0700) and checked to be ours."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        path = os.path.join(runtime, "oxloop")
    else:
        path = f"/tmp/oxloop-{os.getuid()}"
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
        # Refuse a directory someone else made (or a symlink), or one others can open.
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(f"{path} is not a private directory of this user")
    return path


def socket_path(pid: int) -> str:
    """The live socket of process ``pid``."""
    return os.path.join(socket_dir(), f"{pid}.sock")


def snapshot() -> dict:
    """What a client receives: this process and the stats of each monitored loop."""
    from . import _monitor

    loops = []
    for loop in list(_monitor._monitors.keys()):
        try:
            s = _monitor.stats(loop)
        except Exception:
            continue
        loops.append({"id": hex(id(loop)), "running": loop.is_running(), **dataclasses.asdict(s)})
    return {"pid": os.getpid(), "argv": sys.argv, "python": sys.version.split()[0], "loops": loops}


class _Server(threading.Thread):
    def __init__(self, path):
        super().__init__(name="oxloop-live", daemon=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)  # a stale socket of an earlier process with our pid
        old = os.umask(0o177)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self.sock.listen(8)
        self.closed = False

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with conn:
                    conn.settimeout(2.0)
                    conn.sendall(json.dumps(snapshot(), default=str).encode() + b"\n")
            except OSError:
                pass

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            os.unlink(self.path)
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def serve() -> None:
    """Start the process's live socket once (monitoring mode calls it)."""
    global _server
    with _lock:
        if _server is not None and _server.path == socket_path(os.getpid()):
            return
        try:
            server = _Server(os.path.join(socket_dir(create=True), f"{os.getpid()}.sock"))
        except OSError as exc:
            import logging

            logging.getLogger("oxloop").warning("live view socket not available: %s", exc)
            return
        server.start()
        _server = server


@atexit.register
def _close():
    if _server is not None:
        _server.close()
