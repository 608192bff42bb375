"""Conformance run: CPython's own ``test_asyncio``, shipped with the interpreter, on oxloop.

How the loop is substituted:
- the running Python's default policy class makes oxloop loops (``_loop_factory``), so
  ``asyncio.new_event_loop()``, ``asyncio.run``, ``asyncio.Runner`` and
  ``IsolatedAsyncioTestCase`` all get oxloop, and ``set_event_loop_policy(None)`` keeps it;
- in each module, the loop-generic test classes that build ``SelectorEventLoop`` directly
  (their ``create_event_loop`` / ``new_loop`` hook) are replaced by one subclass whose hook returns
  an oxloop loop (``Oxloop<Name>``); their select/poll/epoll siblings, which would only test
  asyncio's own loop again, are dropped.

A test counts only if an oxloop loop was created while it ran. Each module runs in its own
process (a crash is reported, not fatal to the run). Expected failures live in
``expected/<X.Y>.txt`` (an fnmatch pattern over test ids, then ``#`` and the reason); the run
fails on any unexpected failure and reports every unexpected pass.

Usage: python tests/conformance/run.py [--jobs N] [--json FILE] [module ...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import unittest

HERE = pathlib.Path(__file__).resolve().parent
VERSION = "%d.%d" % sys.version_info[:2]
EXPECTED = HERE / "expected" / f"{VERSION}.txt"
PREFIX = "test.test_asyncio."
# Modules that test other loops or platforms only.
SKIP_MODULES = {"test_windows_events", "test_windows_utils", "test_proactor_events"}
MODULE_TIMEOUT = 300
# One test may take at most this long; then it fails with TestTimedOut and the module goes on.
TEST_TIMEOUT = 60


class TestTimedOut(BaseException):
    """Raised into a test that ran longer than TEST_TIMEOUT (BaseException: tests can't eat it)."""


def all_modules() -> list[str]:
    import test.test_asyncio as pkg

    names = sorted(p.stem for p in pathlib.Path(pkg.__file__).parent.glob("test_*.py"))
    return [n for n in names if n not in SKIP_MODULES]


# --------------------------------------------------------------------------------------------
# Child side: run one module and print a JSON record per test.
# --------------------------------------------------------------------------------------------

LOOPS_CREATED = 0


def patch_loop() -> None:
    import asyncio.unix_events

    import oxloop

    class CountingLoop(oxloop.Loop):
        def __init__(self):
            global LOOPS_CREATED
            LOOPS_CREATED += 1
            super().__init__()

    policy_cls = oxloop.EventLoopPolicy.__mro__[1]  # the running Python's default policy
    policy_cls._loop_factory = CountingLoop
    asyncio.unix_events.__dict__.setdefault("_oxloop_counting_loop", CountingLoop)
    return CountingLoop


def oxloopify(module, loop_cls) -> None:
    hooks = ("create_event_loop", "new_loop")
    seen_bases = set()
    for name, obj in list(vars(module).items()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)):
            continue
        hook = next((h for h in hooks if h in obj.__dict__), None)
        if hook is None or obj.__name__.startswith("Base"):
            continue
        delattr(module, name)
        if "Proactor" in name or "Kqueue" in name or obj.__bases__ in seen_bases:
            continue
        seen_bases.add(obj.__bases__)
        new_name = "Oxloop" + name.replace("Select", "").replace("EPoll", "").replace(
            "Selector", ""
        )
        sub = type(new_name, (obj,), {hook: lambda self: loop_cls(), "__module__": module.__name__})
        setattr(module, new_name, sub)


class Recorder(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.records = []
        self._before = 0
        self._t0 = 0.0

    def startTest(self, test):
        super().startTest(test)
        print("@@START " + test.id(), flush=True)
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
        self._before = LOOPS_CREATED
        self._t0 = time.monotonic()
        self._outcome = "passed"
        self._detail = ""

    def _set(self, outcome, detail=""):
        # The first failure wins (a failing test can also error in tearDown).
        if (
            self._outcome == "passed"
            or outcome in ("failed", "error")
            and self._outcome == "skipped"
        ):
            self._outcome, self._detail = outcome, detail

    def addError(self, test, err):
        super().addError(test, err)
        self._set("failed", self._exc_info_to_string(err, test)[-3000:])

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set("failed", self._exc_info_to_string(err, test)[-3000:])

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._set("failed", f"{subtest}: " + self._exc_info_to_string(err, test)[-3000:])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set("skipped", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set("skipped", "expectedFailure in CPython's suite")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)
        test_id = test.id()
        if test_id.startswith(PREFIX):
            test_id = test_id[len(PREFIX) :]
        rec = {
            "id": test_id,
            "outcome": self._outcome,
            "on_oxloop": LOOPS_CREATED > self._before,
            "seconds": round(time.monotonic() - self._t0, 3),
            "detail": self._detail,
        }
        print("@@RECORD " + json.dumps(rec), flush=True)


def child(module_name: str) -> int:
    import importlib

    # A parent started from a background shell job inherits SIGINT ignored, and Python then keeps
    # it ignored: the suite's Ctrl-C tests would wait forever. Restore Python's own handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_alarm(signum, frame):
        raise TestTimedOut(f"test ran longer than {TEST_TIMEOUT}s")

    signal.signal(signal.SIGALRM, on_alarm)

    loop_cls = patch_loop()
    module = importlib.import_module(PREFIX + module_name)
    oxloopify(module, loop_cls)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    result = Recorder()
    suite.run(result)
    for test, text in result.errors:
        if not hasattr(test, "id") or not test.id().startswith(PREFIX):
            # Errors outside a test (setUpModule, setUpClass, ...).
            rec = {
                "id": f"{module_name}.<setup>",
                "outcome": "failed",
                "on_oxloop": True,
                "seconds": 0,
                "detail": text[-3000:],
            }
            print("@@RECORD " + json.dumps(rec), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Parent side.
# --------------------------------------------------------------------------------------------


def load_expected() -> list[tuple[str, str]]:
    entries = []
    if not EXPECTED.exists():
        return entries
    for line in EXPECTED.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, reason = line.partition("#")
        entries.append((pattern.strip(), reason.strip()))
    return entries


def run_module(name: str) -> tuple[str, list[dict], str]:
    env = dict(os.environ)
    env.setdefault("PYTHONASYNCIODEBUG", env.get("PYTHONASYNCIODEBUG", ""))
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name],
            capture_output=True,
            text=True,
            timeout=MODULE_TIMEOUT,
            env=env,
        )
        out, err, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, code = f"timed out after {MODULE_TIMEOUT}s", -1
    lines = out.splitlines()
    records = [json.loads(x[9:]) for x in lines if x.startswith("@@RECORD ")]
    problem = ""
    if code != 0:
        started = [x[8:] for x in lines if x.startswith("@@START ")]
        last = f" (last test started: {started[-1]})" if started else ""
        problem = f"exit code {code}{last}: {err[-2000:]}"
    return name, records, problem


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("modules", nargs="*")
    ap.add_argument("--child")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.child:
        return child(args.child)

    modules = args.modules or all_modules()
    expected = load_expected()
    used_patterns = set()
    t0 = time.monotonic()
    results, crashes = [], []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for name, records, problem in pool.map(run_module, modules):
            results.extend(records)
            if problem:
                crashes.append((name, problem))
            if args.verbose:
                print(f"  {name}: {len(records)} tests", flush=True)

    counts = dict(passed=0, failed=0, xfail=0, xpass=0, skipped=0, not_on_oxloop=0)
    unexpected, xpasses, foreign_failures = [], [], []
    for rec in results:
        reason = None
        for pattern, why in expected:
            if fnmatch.fnmatchcase(rec["id"], pattern):
                reason = why
                used_patterns.add(pattern)
                break
        if not rec["on_oxloop"]:
            counts["not_on_oxloop"] += 1
            if rec["outcome"] == "failed" and reason is None:
                foreign_failures.append(rec)
            continue
        if rec["outcome"] == "skipped":
            counts["skipped"] += 1
        elif rec["outcome"] == "passed":
            if reason is not None:
                counts["xpass"] += 1
                xpasses.append(rec)
            else:
                counts["passed"] += 1
        else:
            if reason is not None:
                counts["xfail"] += 1
            else:
                counts["failed"] += 1
                unexpected.append(rec)

    for rec in unexpected + foreign_failures:
        where = "" if rec["on_oxloop"] else " (did not run on oxloop)"
        print(
            f"FAIL {rec['id']}{where}\n    " + rec["detail"].strip().replace("\n", "\n    ")[-1500:]
        )
    for rec in xpasses:
        print(f"UNEXPECTED PASS {rec['id']} (listed in expected/{VERSION}.txt)")
    for name, problem in crashes:
        print(f"MODULE PROBLEM {name}: {problem}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    elapsed = time.monotonic() - t0
    ran = counts["passed"] + counts["failed"] + counts["xfail"] + counts["xpass"]
    print(
        f"\nconformance: {ran} tests ran on oxloop in {len(modules)} modules ({elapsed:.0f}s): "
        f"{counts['passed']} passed, {counts['failed']} unexpected failures, "
        f"{counts['xfail']} expected failures, {counts['xpass']} unexpected passes; "
        f"{counts['skipped']} skipped by CPython's suite, "
        f"{counts['not_on_oxloop']} did not use the loop"
    )
    print(
        f"conformance: {counts['passed'] + counts['xpass']} passed, "
        f"{counts['failed'] + len(foreign_failures) + len(crashes)} failed"
    )
    return 1 if unexpected or foreign_failures or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
