"""``python -m oxloop``: run any asyncio program, or an async REPL, on oxloop.

python -m oxloop SCRIPT [ARGS...]    run a script as __main__
python -m oxloop -m MODULE [ARGS...] run a module as __main__
python -m oxloop                     async REPL with top-level await (like python -m asyncio)
python -m oxloop --monitor ...       any of the above in monitoring mode (as OXLOOP_MONITOR=1)
python -m oxloop top [PID]           live view of a monitored oxloop program (q quits)
"""

from __future__ import annotations

import ast
import asyncio
import code
import concurrent.futures
import inspect
import os
import runpy
import sys
import threading
import types
import warnings

import oxloop

USAGE = __doc__


class _Console(code.InteractiveConsole):
    """An interactive console whose input may use top-level ``await``; code runs on the loop."""

    def __init__(self, locals, loop):
        super().__init__(locals)
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self.loop = loop
        self.task = None
        self.interrupted = False

    def runcode(self, code):
        result = concurrent.futures.Future()

        def run_on_loop():
            self.task = None
            self.interrupted = False
            func = types.FunctionType(code, self.locals)
            try:
                value = func()
            except SystemExit:
                raise
            except KeyboardInterrupt as exc:
                self.interrupted = True
                result.set_exception(exc)
                return
            except BaseException as exc:
                result.set_exception(exc)
                return
            if not inspect.iscoroutine(value):
                result.set_result(value)
                return
            try:
                self.task = self.loop.create_task(value)
                asyncio.futures._chain_future(self.task, result)
            except BaseException as exc:
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(run_on_loop)
        try:
            return result.result()
        except SystemExit:
            raise
        except BaseException:
            if self.interrupted:
                self.write("\nKeyboardInterrupt\n")
            else:
                self.showtraceback()


def _repl() -> None:
    loop = oxloop.new_event_loop()
    asyncio.set_event_loop(loop)
    console = _Console({"asyncio": asyncio, "oxloop": oxloop, "__name__": "__console__"}, loop)
    try:
        import readline  # noqa: F401  (line editing when available)
    except ImportError:
        pass

    def interact():
        try:
            console.interact(
                banner=(
                    f"oxloop {oxloop.__version__} REPL, Python {sys.version} on {sys.platform}\n"
                    'Use "await" directly instead of "asyncio.run()".\n'
                    f"{getattr(sys, 'ps1', '>>> ')}import asyncio"
                ),
                exitmsg="exiting oxloop REPL...",
            )
        finally:
            warnings.filterwarnings(
                "ignore", message=r"^coroutine .* was never awaited$", category=RuntimeWarning
            )
            loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=interact, daemon=True).start()
    while True:
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            if console.task is not None and not console.task.done():
                console.task.cancel()
                console.interrupted = True
            continue
        break
    loop.close()


def main(argv: list[str]) -> int:
    if argv and argv[0] == "top":
        from . import _top

        return _top.main(argv[1:])
    if argv and argv[0] == "--monitor":
        # The same switch as the environment variable, so loops made any way are monitored.
        os.environ["OXLOOP_MONITOR"] = "1"
        argv = argv[1:]
    if not argv:
        _repl()
        return 0
    if argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    # The policy is how asyncio.run() and asyncio.new_event_loop() in the program find oxloop:
    # 3.14 deprecates the public setter, so its private one (the same function without the
    # warning) is used where it exists, as asyncio's own code does.
    set_policy = getattr(asyncio.events, "_set_event_loop_policy", None)
    if set_policy is None:
        set_policy = asyncio.set_event_loop_policy
    set_policy(oxloop.EventLoopPolicy())
    if argv[0] == "-m":
        if len(argv) < 2:
            print("python -m oxloop: -m needs a module name", file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    sys.argv = argv[:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
    runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
