"""Subprocesses of ``oxloop.Loop``: ``subprocess_exec``, ``subprocess_shell`` and their transport.

``subprocess_exec`` / ``subprocess_shell`` are asyncio's own (``_borrowed.py``: the argument
checks, and ``Popen`` called below asyncio's frames as blockbuster expects); they reach oxloop
through ``_make_subprocess_transport``. The pipes are oxloop's Rust pipe transports (through
``connect_read_pipe`` / ``connect_write_pipe``); the exit of a child is oxloop's own business:

- Each child gets a pidfd (``os.pidfd_open``, Linux 5.3+) watched by the reactor. When it becomes
  readable the child has exited, and it is reaped with one ``waitpid(pid, WNOHANG)``: one child,
  one fd, one reaper. No SIGCHLD handler and no global child watcher are involved, so loops in
  several threads (and other code calling ``waitpid`` on its own children) never steal each
  other's exit statuses.
- Where pidfds are unavailable (old kernels, seccomp), a waiter thread per child blocks in
  ``waitpid(pid, 0)`` and hands the status to the loop with ``call_soon_threadsafe``, as asyncio's
  ``ThreadedChildWatcher`` does.
- Closing the loop hands every child still running to a daemon thread that reaps it, so no zombie
  is left behind; its pidfd is closed at once.
- The pipes ``Popen`` makes for the child (stdin, stdout, stderr) hold ``_PIPE_SIZE`` bytes
  instead of Linux's 64 KiB, unless the caller chose ``pipesize=``: see ``_grow_pipes``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
from asyncio import base_subprocess

logger = logging.getLogger("asyncio")

# The capacity given to a child's pipes: one full read of the pipe transports (their read size).
_PIPE_SIZE = 256 * 1024

# Pipes are grown only while the loop has fewer children than this: a non-root user's pipes
# share one budget (/proc/sys/fs/pipe-user-pages-soft, 64 MiB by default), and past it every new
# pipe of that user gets 8 KiB. 8 children with three grown pipes hold 6 MiB of it at most.
_PIPE_GROW_CHILDREN = 8


def _pidfd_open(pid):
    """Return a pidfd for ``pid``, or None where the kernel or a sandbox does not allow one."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return pidfd_open(pid)
    except OSError:
        # ENOSYS before Linux 5.3, EPERM under some seccomp filters.
        return None


def _grow_pipes(proc):
    """Give each pipe Popen made for ``proc`` a capacity of ``_PIPE_SIZE`` bytes, if Linux allows.

    With 64 KiB pipes, streaming through a child takes a read, a write, an epoll wake-up and two
    context switches per 64 KiB; with 256 KiB, a quarter of them (libuv, hence uvloop, gets the
    same effect by giving children socketpairs, whose buffers are larger).
    """
    # NOTE: asyncio leaves Linux's default; the child sees a pipe either way, only its capacity
    # differs. A caller's own pipesize= is kept (Popen applied it), and a refusal (EPERM once the
    # user's pipe budget is spent, or an older kernel) leaves the default.
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is None:
            continue
        try:
            fcntl.fcntl(pipe.fileno(), set_size, _PIPE_SIZE)
        except OSError:
            pass


def _reap(pid, proc):
    """Reap ``pid`` once (non-blocking); return its return code, or None if it still runs."""
    try:
        wpid, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        # Someone else reaped it (``Popen.wait()`` on the transport's Popen object, or a
        # ``waitpid(-1)`` elsewhere in the process). Mirrors PidfdChildWatcher's answer.
        if proc.returncode is not None:
            return proc.returncode
        logger.warning(
            "child process pid %d exit status already read:  will report returncode 255", pid
        )
        return 255
    if wpid == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def _reap_blocking(pid, proc):
    """Wait for ``pid`` to exit and reap it; set ``proc.returncode``; return the return code."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        returncode = proc.returncode if proc.returncode is not None else 255
    else:
        returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode is None:
        proc.returncode = returncode
    return returncode


class _Child:
    """One running child: its pid, its pidfd (or waiter thread), and its transport."""

    __slots__ = ("pid", "pidfd", "thread", "transport")

    def __init__(self, pid, pidfd, transport):
        self.pid = pid
        # The pidfd, owned here; None once closed, or with the waiter-thread fallback.
        self.pidfd = pidfd
        # The fallback's waiter thread (the child's reaper), or None with a pidfd.
        self.thread = None
        self.transport = transport


def _closes_pipes_of_closed_loop():
    """Whether the running Python's ``BaseSubprocessTransport.close`` closes the pipes when the
    loop is already closed (then ``Event loop is closed``); gh-114177 made it skip them (3.14 and
    bug-fix releases of older branches). Asked of asyncio's own method, on a bare instance with
    one recording pipe and no child, so the answer follows the running Python's release."""
    closed = []

    class Pipe:
        def close(self):
            closed.append(True)

    class Proto:
        pipe = Pipe()

    class ClosedLoop:
        def is_closed(self):
            return True

    probe = object.__new__(base_subprocess.BaseSubprocessTransport)
    probe._closed = False
    probe._pipes = {0: Proto()}
    probe._loop = ClosedLoop()
    probe._proc = None
    probe._returncode = None
    try:
        base_subprocess.BaseSubprocessTransport.close(probe)
    except Exception:  # noqa: BLE001 - a changed method: keep the behaviour of 3.11-3.13.0
        return True
    return bool(closed)


_CLOSES_PIPES_OF_CLOSED_LOOP = _closes_pipes_of_closed_loop()


class SubprocessTransport(base_subprocess.BaseSubprocessTransport):
    """asyncio's SubprocessTransport over oxloop pipe transports and a pidfd exit watch."""

    # NOTE: asyncio's BaseSubprocessTransport is reused: it only talks to the loop through
    # connect_read_pipe / connect_write_pipe (oxloop's Rust pipe transports), call_soon and
    # create_task, and it already holds asyncio's exact protocol call order (connection_made,
    # pipe_data_received, pipe_connection_lost, process_exited, connection_lost). What it does
    # with the child itself is replaced: Popen.poll() and Popen.send_signal() call waitpid and
    # would reap the child behind the pidfd's back, so send_signal(), terminate() and kill()
    # signal it through its pidfd, and close() checks it without reaping it (waitid with
    # WNOWAIT) before killing it.

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        # Mirrors _UnixSubprocessTransport._start.
        self._child = None
        self._proc = subprocess.Popen(
            args,
            shell=shell,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            universal_newlines=False,
            bufsize=bufsize,
            **kwargs,
        )
        if kwargs.get("pipesize", -1) == -1 and len(self._loop._children) < _PIPE_GROW_CHILDREN:
            _grow_pipes(self._proc)
        self._loop._watch_child(self)

    def _has_exited(self):
        """True if the child has exited (reaped or not): ``close()`` must not kill it then."""
        proc = self._proc
        if proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _signal(self, sig):
        child = self._child
        if self._returncode is not None or self._proc.returncode is not None:
            return  # Popen.send_signal does nothing once the child is reaped.
        if child is not None and child.pidfd is not None:
            signal.pidfd_send_signal(child.pidfd, sig)
        else:
            os.kill(self._proc.pid, sig)

    def send_signal(self, signal):
        self._check_proc()
        self._signal(signal)

    def terminate(self):
        self._check_proc()
        self._signal(signal.SIGTERM)

    def kill(self):
        self._check_proc()
        self._signal(signal.SIGKILL)

    def close(self):
        # Mirrors BaseSubprocessTransport.close, without reaping the child.
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            if proto is None:
                continue
            if not _CLOSES_PIPES_OF_CLOSED_LOOP and (not self._loop or self._loop.is_closed()):
                continue  # As the running Python's (gh-114177): its pipes went with the loop.
            proto.pipe.close()
        if self._proc is not None and self._returncode is None and not self._has_exited():
            if self._loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            # NOTE: Popen.kill(), as asyncio calls it (tests patch it). Its poll() can only reap
            # a child that exited after the check above; _reap then takes Popen's return code.
            try:
                self._proc.kill()
            except ProcessLookupError:
                pass


class SubprocessMixin:
    """The subprocess transport hook and oxloop's own child-exit watching."""

    async def _make_subprocess_transport(
        self, protocol, args, shell, stdin, stdout, stderr, bufsize, extra=None, **kwargs
    ):
        # Mirrors _UnixSelectorEventLoop._make_subprocess_transport, minus the child watcher.
        waiter = self.create_future()
        transp = SubprocessTransport(
            self,
            protocol,
            args,
            shell,
            stdin,
            stdout,
            stderr,
            bufsize,
            waiter=waiter,
            extra=extra,
            **kwargs,
        )
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    # -- child-exit watching -------------------------------------------------------------------

    def _watch_child(self, transport):
        """Start watching the exit of ``transport``'s child (just started by Popen)."""
        # NOTE: the pidfd is watched with the loop's own _add_reader (Rust reactor, Python
        # callback) rather than a Rust NativeWatcher: a child exits once, so this is a cold path,
        # and the reaping and the transport's bookkeeping are Python either way.
        pid = transport._proc.pid
        child = _Child(pid, _pidfd_open(pid), transport)
        transport._child = child
        self._children[pid] = child
        if child.pidfd is not None:
            try:
                self._add_reader(child.pidfd, self._child_ready, child)
            except Exception:  # noqa: BLE001 - the child is running: watch it some other way
                os.close(child.pidfd)
                child.pidfd = None
            else:
                return
        child.thread = threading.Thread(
            target=self._wait_child_thread,
            args=(child,),
            name=f"oxloop-waitpid-{pid}",
            daemon=True,
        )
        child.thread.start()

    def _child_ready(self, child):
        # The pidfd is readable: the child has exited. Reap it, once.
        transport = child.transport
        returncode = _reap(child.pid, transport._proc)
        if returncode is None:
            return  # Spurious wake-up: the pidfd stays watched.
        self._unwatch_child(child)
        if transport._proc.returncode is None:
            transport._proc.returncode = returncode
        # NOTE: one more hop through the ready queue, as asyncio's child watchers have
        # (call_soon_threadsafe), so process_exited comes after the pipe data read in this tick.
        self.call_soon(_process_exited, transport, returncode)

    def _unwatch_child(self, child, _close_fd=os.close):
        # NOTE: `os.close` is bound at import: Loop.close calls this (through _close_children)
        # at interpreter exit too, after module teardown may have set the globals to None.
        self._children.pop(child.pid, None)
        if child.pidfd is not None:
            self._remove_reader(child.pidfd)
            _close_fd(child.pidfd)
            child.pidfd = None

    def _wait_child_thread(self, child):
        # The fallback without pidfds: this thread is the child's only reaper.
        returncode = _reap_blocking(child.pid, child.transport._proc)
        try:
            self.call_soon_threadsafe(self._child_done_threadsafe, child, returncode)
        except RuntimeError:
            pass  # The loop is closed: the child is reaped, no one waits for it.

    def _child_done_threadsafe(self, child, returncode):
        if self._children.pop(child.pid, None) is not None:
            _process_exited(child.transport, returncode)

    def _close_children(
        self, _is_finalizing=sys.is_finalizing, _thread=threading.Thread, _reap=_reap_blocking
    ):
        """Hand every child still running to a reaper thread; close the pidfds (loop close)."""
        # NOTE: the globals are bound at import, as in Loop._close_now (interpreter exit).
        children = self._children
        for child in list(children.values()):
            transport = child.transport
            self._unwatch_child(child)
            transport._child = None
            proc = transport._proc
            if child.thread is not None or proc is None or proc.returncode is not None:
                continue  # A waiter thread already reaps it, or it is reaped.
            if _is_finalizing():
                # The interpreter is exiting (and refuses new threads from 3.12 on): the child
                # outlives the process and is reaped by init, as under asyncio's watchers.
                continue
            _thread(
                target=_reap,
                args=(child.pid, proc),
                name=f"oxloop-reap-{child.pid}",
                daemon=True,
            ).start()
        children.clear()


def _process_exited(transport, returncode):
    if transport._returncode is None:
        transport._process_exited(returncode)
