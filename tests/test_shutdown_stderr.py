"""What a program prints at interpreter exit with a loop it never closed, compared with asyncio.

Each scenario is a small program run in a subprocess twice, with asyncio's loop and with oxloop's,
and the two runs must print the same stdout and stderr (loop class names, addresses and fd
numbers aside) and exit with the same status. These are the exits where finalizers run late:

- a loop left in asyncio's event loop policy, or in a reference cycle, is finalized while
  CPython's module teardown has already set the globals of oxloop's modules to None (they are
  cleared before asyncio's, having been imported after them), and ``BaseEventLoop.__del__``
  calls ``close()`` then;
- a finalizer that runs in the interpreter's last collections, when nothing can be imported any
  more (``sys.meta_path is None``), uses a loop that is still alive.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap

import pytest

# The program's head: `new_loop` is the loop factory of the module named on the command line
# (asyncio's run never imports oxloop).
HEAD = """
import asyncio, gc, importlib, os, socket, sys, threading
new_loop = importlib.import_module(sys.argv[1]).new_event_loop
"""

SCENARIOS = {
    # The commonest: a loop made current and never closed; the policy keeps it to the end.
    "policy": """
        asyncio.set_event_loop(new_loop())
    """,
    "policy-uncaught-exception": """
        loop = new_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.sleep(0))
        raise FileNotFoundError("boom")
    """,
    "policy-system-exit": """
        loop = new_loop()
        asyncio.set_event_loop(loop)
        sys.exit(3)
    """,
    # A loop that only a reference cycle keeps, and the traceback of the uncaught exception.
    "cycle-uncaught-exception": """
        class Holder:
            pass
        h = Holder()
        h.self = h
        h.loop = new_loop()
        asyncio.set_event_loop(h.loop)
        def fail(h):
            raise ValueError("boom")
        fail(h)
    """,
    # A thread used the loop (call_soon_threadsafe) and left a callback pending, with a timer.
    "thread-and-pending-callbacks": """
        loop = new_loop()
        asyncio.set_event_loop(loop)
        def other():
            loop.call_soon_threadsafe(print, "never")
        t = threading.Thread(target=other)
        t.start()
        t.join()
        loop.call_later(3600, print, "never")
        loop.call_soon(print, "never")
        raise KeyError("boom")
    """,
    # A task left pending: "Task was destroyed but it is pending!" or not, as asyncio decides.
    "pending-task": """
        loop = new_loop()
        asyncio.set_event_loop(loop)
        async def forever():
            await asyncio.sleep(3600)
        task = loop.create_task(forever())
        loop.run_until_complete(asyncio.sleep(0))
    """,
    # Open server and connections (socket transports, a server's accept watch), and UDP.
    "open-server-and-transports": """
        loop = new_loop()
        asyncio.set_event_loop(loop)
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            )
            a, b = socket.socketpair()
            await loop.connect_accepted_socket(asyncio.Protocol, a)
            r, w = os.pipe()
            await loop.connect_read_pipe(asyncio.Protocol, os.fdopen(r, "rb", 0))
            await loop.connect_write_pipe(asyncio.BaseProtocol, os.fdopen(w, "wb", 0))
            return server, b
        keep = loop.run_until_complete(main())
        raise RuntimeError("boom")
    """,
    # A signal handler still installed: asyncio's close() skips removing it at this stage.
    "signal-handler": """
        import signal
        loop = new_loop()
        asyncio.set_event_loop(loop)
        loop.add_signal_handler(signal.SIGUSR1, print, "never")
    """,
    # The default executor was started.
    "executor": """
        loop = new_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(loop.run_in_executor(None, sum, [1, 2]))
    """,
    # Loops in a cycle collected by the interpreter's last collections, from a thread too.
    "cycle-in-thread": """
        def other():
            loop = new_loop()
            loop.me = loop
            loop.run_until_complete(asyncio.sleep(0))
        t = threading.Thread(target=other)
        t.start()
        t.join()
    """,
    # A loop running forever in a daemon thread when the main thread exits: the thread is
    # stopped when it next wants the GIL, waking from its poll with a timer or a callback.
    "daemon-thread-running": """
        import time
        started = threading.Event()
        def other():
            loop = new_loop()
            asyncio.set_event_loop(loop)
            def tick():
                started.set()
                loop.call_later(0.001, tick)
            loop.call_soon(tick)
            loop.run_forever()
        threading.Thread(target=other, daemon=True).start()
        started.wait()
        time.sleep(0.01)
    """,
    # A child process still running (its transport open) when the program ends.
    "running-child": """
        loop = new_loop()
        asyncio.set_event_loop(loop)
        async def main():
            return await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import time; time.sleep(1)",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
        proc = loop.run_until_complete(main())
        raise RuntimeError("boom")
    """,
    # A finalizer closes the loop at exit, its child still running.
    "closed-at-exit-with-running-child": """
        loop = new_loop()
        async def main():
            return await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import time; time.sleep(1)", stdin=asyncio.subprocess.PIPE
            )
        proc = loop.run_until_complete(main())
        asyncio.set_event_loop(loop)  # alive through the final collection, which runs __del__
        class Closer:
            def __del__(self):
                os.write(1, b"closing\\n")  # it ran; an error after this is reported on stderr
                loop.close()
        closer = Closer()
    """,
    # A finalizer uses a debug-mode loop at exit (the policy keeps it alive until then), when
    # nothing can be imported any more.
    "debug-loop-used-by-a-finalizer": """
        loop = new_loop()
        loop.set_debug(True)
        asyncio.set_event_loop(loop)
        r, w = os.pipe()
        class Finalizer:
            def __del__(self):
                os.write(1, b"finalizing\\n")  # it ran; an error after this is reported on stderr
                loop.call_soon(print, "never").cancel()
                loop.call_later(3600, print, "never").cancel()
                loop.add_reader(r, print, "never")
                loop.remove_reader(r)
                repr(loop.call_soon_threadsafe(print, "never"))
                loop.create_future().cancel()
                loop.close()
        finalizer = Finalizer()
    """,
    # A loop dropped (not at exit) with a task pending in a timer, and one closed first.
    "dropped-with-pending-task": """
        async def forever():
            await asyncio.sleep(3600)
        loop = new_loop()
        task = loop.create_task(forever())
        loop.run_until_complete(asyncio.sleep(0))
        del loop, task
        gc.collect()
        loop = new_loop()
        task = loop.create_task(forever())
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        del loop, task
        gc.collect()
        print("done")
    """,
}

# Environments: plain, with warnings shown (ResourceWarning), Python's development mode (asyncio's
# debug mode too), and oxloop's monitoring mode (the variable means nothing to asyncio's run).
ENVS = {
    "plain": ([], {}),
    "warnings": (["-W", "default"], {}),
    "dev-mode": (["-X", "dev"], {}),
    "monitor": ([], {"OXLOOP_MONITOR": "1"}),
}


def normalized(text):
    # The loops' class names, addresses and fd numbers differ (asyncio's loop holds other fds:
    # its selector, its self-pipe socketpair); the messages must not.
    text = re.sub(r"0x[0-9a-f]+", "0x...", text)
    text = re.sub(r"fd=\d+", "fd=N", text)
    # NOTE: in debug mode a future's repr names where it was created; oxloop's create_future is
    # Rust, with no frame of its own, so the site named is its caller (asyncio.sleep, say), not
    # the line of BaseEventLoop.create_future that asyncio names. A known, harmless divergence.
    text = re.sub(r"(<Future [^<>]*created at )[^<>]+>", r"\1...>", text)
    text = re.sub(r"<(_UnixSelectorEventLoop|Loop) ", "<LOOP ", text)
    # NOTE: a task destroyed pending shows its coroutine "running at" its line, or "done" if the
    # collector finalized the coroutine first: CPython leaves the order of finalizers in a
    # garbage cycle unspecified (3.12 with monitoring on differs from asyncio's run there).
    text = re.sub(r"(coro=<\w+\(\)) (running at|done, defined at) [^>]*>", r"\1 ...>", text)
    return text


def run(tmp_path, kind, body, flags, env):
    source = HEAD + textwrap.dedent(body)
    compile(source, "prog.py", "exec")  # A scenario that does not even compile proves nothing.
    script = tmp_path / "prog.py"
    script.write_text(source)
    proc = subprocess.run(
        [sys.executable, *flags, str(script), kind],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd=tmp_path,
    )
    return proc.returncode, proc.stdout, normalized(proc.stderr)


# An "Exception ignored" report with its traceback.
UNRAISABLE = re.compile(
    r"Exception ignored in: .*\nTraceback \(most recent call last\):\n(?:  .*\n)+\S.*\n"
)


def without_asyncio_failures(text):
    # asyncio's own loop fails at some of these exits on some versions: on 3.13.0 the repr of a
    # debug-mode handle reads a source line, and linecache imports tokenize, when nothing can be
    # imported any more. oxloop must not copy that: such a report is not expected from it.
    asyncio_dir = os.path.dirname(asyncio.__file__)
    return UNRAISABLE.sub(lambda m: "" if f'File "{asyncio_dir}' in m[0] else m[0], text)


@pytest.mark.parametrize("env", list(ENVS))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_exit_with_an_unclosed_loop_prints_what_asyncio_prints(tmp_path, scenario, env):
    flags, extra = ENVS[env]
    returncode, stdout, stderr = run(tmp_path, "asyncio", SCENARIOS[scenario], flags, extra)
    expected = returncode, stdout, without_asyncio_failures(stderr)
    got = run(tmp_path, "oxloop", SCENARIOS[scenario], flags, extra)
    assert got == expected
