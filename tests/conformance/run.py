"""Conformance run: CPython's own ``test_asyncio``, shipped with the interpreter, on oxloop.

How the loop is substituted:
- the running Python's default policy class makes oxloop loops (``_loop_factory``), so
  ``asyncio.new_event_loop()``, ``asyncio.run``, ``asyncio.Runner`` and
  ``IsolatedAsyncioTestCase`` all get oxloop, and ``set_event_loop_policy(None)`` keeps it;
- in each module, the loop-generic test classes that build ``SelectorEventLoop`` directly
  (their ``create_event_loop`` / ``new_loop`` hook) are replaced by one subclass whose hook returns
  an oxloop loop (``Oxloop<Name>``); their select/poll/epoll siblings, which would only test
  asyncio's own loop again, are dropped;
- test_subprocess runs its tests once per child watcher class; oxloop watches its children itself
  (a pidfd each) and never asks the watcher, so only one watcher class is kept
  (``KEEP_WATCHER``) and the others are reported as duplicates, not counted.

What "ran on oxloop" means: the test's own loop was oxloop's. If the test case has a ``loop``
attribute that is an event loop (CPython's tests keep the loop they set up there), that loop must
be an oxloop loop; a test with some other loop there (test_tasks' and test_futures' ``TestLoop``,
a bare ``BaseEventLoop``, a mock) does not count even if it made an oxloop loop on the side.
A test without such an attribute (``asyncio.run``, ``Runner``, ``IsolatedAsyncioTestCase``)
counts if an oxloop loop ran (``run_forever`` entered) while it ran.

Each module runs in its own process, in a scratch directory (CPython's ``@test_*_tmp`` files
never land in the checkout); the child writes one START and one RECORD line per test to its own
file (never mixed with the tests' output), and every START must have its RECORD. The run fails on:
- a test that failed and is not an expected failure (``expected/<X.Y>.txt``: an fnmatch pattern over
  test ids, then ``#`` and the reason);
- an unexpected pass (a listed test that passed), and a listed pattern that matched no test of the
  modules that ran;
- a module where fewer tests ran on oxloop than its baseline (``baseline/<X.Y>.json``;
  ``--update-baseline`` rewrites it from this run);
- a crash, a module timeout, a START without a RECORD;
- a test skipped on oxloop that asyncio's own loop runs, unless the expected list names it: every
  skipped test is run again on asyncio's loop (same module, same classes) and the outcomes and skip
  reasons are reported side by side in the JSON.

Usage: python tests/conformance/run.py [--jobs N] [--json FILE] [--update-baseline] [module ...]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import fnmatch
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = pathlib.Path(__file__).resolve().parent
VERSION = "%d.%d" % sys.version_info[:2]
EXPECTED = HERE / "expected" / f"{VERSION}.txt"
BASELINE = HERE / "baseline" / f"{VERSION}.json"
PREFIX = "test.test_asyncio."
# Modules that test other loops or platforms only.
SKIP_MODULES = {"test_windows_events", "test_windows_utils", "test_proactor_events"}
MODULE_TIMEOUT = 180
# One test may take at most this long; then it fails with TestTimedOut and the module goes on.
TEST_TIMEOUT = 60
# test_subprocess: the one child-watcher class kept (see the module docstring).
KEEP_WATCHER = "SubprocessThreadedWatcherTests"


class TestTimedOut(BaseException):
    """Raised into a test that ran longer than TEST_TIMEOUT (BaseException: tests can't eat it)."""


def all_modules() -> list[str]:
    import test.test_asyncio as pkg

    names = sorted(p.stem for p in pathlib.Path(pkg.__file__).parent.glob("test_*.py"))
    return [n for n in names if n not in SKIP_MODULES]


# --------------------------------------------------------------------------------------------
# Child side: run one module and write a START and a RECORD line per test.
# --------------------------------------------------------------------------------------------

# How many times a loop of the kind under test entered run_forever.
LOOP_RUNS = 0


def counting_loop_class(kind: str) -> type:
    """The loop class under test, counting its runs; oxloop's is also the default policy's."""
    import asyncio

    if kind == "oxloop":
        import oxloop

        base = oxloop.Loop
    else:
        base = asyncio.SelectorEventLoop

    class CountingLoop(base):
        def run_forever(self):
            global LOOP_RUNS
            LOOP_RUNS += 1
            return super().run_forever()

    if kind == "oxloop":
        policy_cls = oxloop.EventLoopPolicy.__mro__[1]  # the running Python's default policy
        policy_cls._loop_factory = CountingLoop
    return CountingLoop


def substitute_loop(module, loop_cls) -> list[str]:
    """Point the module's loop-generic test classes at ``loop_cls``; returns the dropped classes."""
    hooks = ("create_event_loop", "new_loop")
    seen_bases = set()
    dropped = []
    watcher_mixin = getattr(module, "SubprocessWatcherMixin", None)
    for name, obj in list(vars(module).items()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)):
            continue
        if watcher_mixin is not None and issubclass(obj, watcher_mixin) and name != KEEP_WATCHER:
            # Left in the module (other tests name these classes), left out of the suite.
            dropped.append(name)
            continue
        hook = next((h for h in hooks if h in obj.__dict__), None)
        if hook is None or obj.__name__.startswith("Base"):
            continue
        delattr(module, name)
        if "Proactor" in name or "Kqueue" in name or obj.__bases__ in seen_bases:
            continue
        seen_bases.add(obj.__bases__)
        new_name = "Oxloop" + name.replace("Selector", "").replace("Select", "").replace(
            "EPoll", ""
        )
        sub = type(new_name, (obj,), {hook: lambda self: loop_cls(), "__module__": module.__name__})
        setattr(module, new_name, sub)
    return dropped


def on_loop_under_test(test, runs_before: int, loop_cls: type) -> bool:
    import asyncio

    own = getattr(test, "loop", None)
    if isinstance(own, asyncio.AbstractEventLoop):
        return isinstance(own, loop_cls.__mro__[1])
    return LOOP_RUNS > runs_before


class Recorder(unittest.TestResult):
    def __init__(self, out, loop_cls):
        super().__init__()
        self.out = out
        self.loop_cls = loop_cls
        self._runs_before = 0
        self._t0 = 0.0

    def _emit(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def startTest(self, test):
        super().startTest(test)
        self._emit("START " + test.id())
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
        self._runs_before = LOOP_RUNS
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
        self._set("failed", "unexpected success of a test CPython marks expectedFailure")

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)
        rec = {
            "id": short_id(test.id()),
            "outcome": self._outcome,
            "on_oxloop": on_loop_under_test(test, self._runs_before, self.loop_cls),
            "seconds": round(time.monotonic() - self._t0, 3),
            "detail": self._detail,
        }
        self._emit("RECORD " + json.dumps(rec))


def short_id(test_id: str) -> str:
    return test_id[len(PREFIX) :] if test_id.startswith(PREFIX) else test_id


def pick_tests(suite, keep):
    """The tests of ``suite`` for which ``keep(test)`` is true, as a flat suite."""
    picked = unittest.TestSuite()
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            picked.addTests(pick_tests(item, keep))
        elif keep(item):
            picked.addTest(item)
    return picked


def child(module_name: str, kind: str, records_path: str, only: str | None) -> int:
    import importlib

    # A parent started from a background shell job inherits SIGINT ignored, and Python then keeps
    # it ignored: the suite's Ctrl-C tests would wait forever. Restore Python's own handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_alarm(signum, frame):
        raise TestTimedOut(f"test ran longer than {TEST_TIMEOUT}s")

    signal.signal(signal.SIGALRM, on_alarm)

    loop_cls = counting_loop_class(kind)
    module = importlib.import_module(PREFIX + module_name)
    dropped = substitute_loop(module, loop_cls)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    wanted = set(pathlib.Path(only).read_text().split()) if only is not None else None
    suite = pick_tests(
        suite,
        lambda t: (
            type(t).__name__ not in dropped and (wanted is None or short_id(t.id()) in wanted)
        ),
    )
    with open(records_path, "w") as out:
        for name in dropped:
            out.write("DROPPED " + name + "\n")
        result = Recorder(out, loop_cls)
        suite.run(result)
        for test, text in result.errors:
            if not hasattr(test, "id") or not test.id().startswith(PREFIX):
                # Errors outside a test (setUpModule, setUpClass, ...): a failure, not a test
                # that ran on oxloop (it must not make up for tests missing from the baseline).
                rec = {
                    "id": f"{module_name}.<setup>: {test}",
                    "outcome": "failed",
                    "on_oxloop": False,
                    "seconds": 0,
                    "detail": text[-3000:],
                }
                out.write("START " + rec["id"] + "\n")
                out.write("RECORD " + json.dumps(rec) + "\n")
        out.write("END\n")
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


class ModuleRun:
    """One module's child process: its records and whatever went wrong outside the tests."""

    def __init__(self, name: str, kind: str = "oxloop", only: list[str] | None = None):
        self.name = name
        self.records: list[dict] = []
        self.dropped: list[str] = []
        self.problems: list[str] = []
        with tempfile.TemporaryDirectory(prefix="oxloop-conformance-") as scratch:
            self._run(pathlib.Path(scratch), kind, only)

    def _run(self, scratch: pathlib.Path, kind: str, only: list[str] | None) -> None:
        records = scratch / "records.txt"
        cmd = [sys.executable, str(HERE / "run.py"), "--child", self.name, "--loop", kind]
        cmd += ["--records", str(records)]
        if only is not None:
            (scratch / "only.txt").write_text("\n".join(only))
            cmd += ["--only", str(scratch / "only.txt")]
        work = scratch / "cwd"
        work.mkdir()
        with open(scratch / "output.txt", "w+") as output:
            proc = subprocess.Popen(
                cmd, cwd=work, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                code = proc.wait(timeout=MODULE_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = f"killed after {MODULE_TIMEOUT}s"
            output.seek(0)
            text = output.read()
        lines = records.read_text().splitlines() if records.exists() else []
        started: list[str] = []
        recorded = set()
        ended = False
        for line in lines:
            tag, _, rest = line.partition(" ")
            if tag == "START":
                started.append(rest)
            elif tag == "RECORD":
                try:
                    rec = json.loads(rest)
                except ValueError:
                    self.problems.append(f"garbled record line: {line[:200]!r}")
                    continue
                self.records.append(rec)
                recorded.add(rec["id"])
            elif tag == "DROPPED":
                self.dropped.append(rest)
            elif tag == "END":
                ended = True
            else:
                self.problems.append(f"unknown record line: {line[:200]!r}")
        for test_id in started:
            if short_id(test_id) not in recorded and test_id not in recorded:
                self.problems.append(f"{short_id(test_id)} started and never recorded an outcome")
        if code != 0 or not ended:
            self.problems.append(
                f"child exit {code}, finished: {ended}; output tail:\n{text[-2000:]}"
            )


def classify(runs, expected, modules):
    """Outcome of every test against the expected failures; returns the report's pieces."""
    used = set()
    counts = collections.Counter()
    failures, xpasses = [], []
    ran_per_module = collections.Counter({m: 0 for m in modules})
    for run in runs:
        for rec in run.records:
            reason = None
            for pattern, why in expected:
                if fnmatch.fnmatchcase(rec["id"], pattern):
                    reason = why
                    used.add(pattern)
                    break
            rec["expected_failure"] = reason
            if rec["outcome"] == "skipped":
                counts["skipped"] += 1
                continue
            if rec["on_oxloop"]:
                ran_per_module[run.name] += 1
                counts["ran"] += 1
            else:
                counts["not_on_oxloop"] += 1
            if rec["outcome"] == "passed":
                if reason is not None:
                    counts["xpass"] += 1
                    xpasses.append(rec)
                elif rec["on_oxloop"]:
                    counts["passed"] += 1
            elif reason is not None:
                counts["xfail"] += 1
            else:
                counts["failed"] += 1
                failures.append(rec)
    unused = [
        (p, why)
        for p, why in expected
        if p not in used and (p.split(".", 1)[0] in modules or "*" in p.split(".", 1)[0])
    ]
    return counts, failures, xpasses, unused, ran_per_module


def compare_skips(runs, jobs):
    """Runs every test skipped on oxloop again on asyncio's loop; returns (id, oxloop reason,
    asyncio outcome, asyncio reason) per skipped test."""
    skipped = {run.name: [r for r in run.records if r["outcome"] == "skipped"] for run in runs}
    todo = {name: recs for name, recs in skipped.items() if recs}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {
            name: pool.submit(ModuleRun, name, "asyncio", [r["id"] for r in recs])
            for name, recs in todo.items()
        }
    rows = []
    problems = []
    for name, recs in todo.items():
        aio = futures[name].result()
        problems += [f"{name} (on asyncio's loop): {p}" for p in aio.problems]
        by_id = {r["id"]: r for r in aio.records}
        for rec in recs:
            other = by_id.get(rec["id"])
            rows.append(
                {
                    "id": rec["id"],
                    "oxloop": rec["detail"],
                    "asyncio_outcome": other["outcome"] if other else "not run",
                    "asyncio": other["detail"] if other else "",
                }
            )
    return rows, problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("modules", nargs="*")
    ap.add_argument("--child")
    ap.add_argument("--loop", default="oxloop", choices=("oxloop", "asyncio"))
    ap.add_argument("--records")
    ap.add_argument("--only")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json")
    ap.add_argument("--update-baseline", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.loop, args.records, args.only)

    modules = args.modules or all_modules()
    debug = bool(os.environ.get("PYTHONASYNCIODEBUG"))
    expected = load_expected()
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(ModuleRun, modules))
    counts, failures, xpasses, unused, ran_per_module = classify(runs, expected, modules)
    skip_rows, skip_problems = compare_skips(runs, args.jobs)
    elapsed = time.monotonic() - t0

    bad = 0
    for rec in failures:
        where = "" if rec["on_oxloop"] else " (not on oxloop's loop)"
        print(
            f"FAIL {rec['id']}{where}\n    " + rec["detail"].strip().replace("\n", "\n    ")[-1500:]
        )
        bad += 1
    for rec in xpasses:
        print(f"UNEXPECTED PASS {rec['id']} (listed in {EXPECTED.relative_to(HERE)})")
        bad += 1
    for pattern, why in unused:
        print(f"UNUSED EXPECTED FAILURE {pattern}  # {why} (matched no test)")
        bad += 1
    for run in runs:
        for problem in run.problems:
            print(f"MODULE PROBLEM {run.name}: {problem}")
            bad += 1
    for problem in skip_problems:
        print(f"MODULE PROBLEM {problem}")
        bad += 1
    below = []
    for name in modules:
        want = baseline.get(name)
        got = ran_per_module[name]
        if want is None:
            if not args.update_baseline:
                print(f"NO BASELINE {name}: {got} ran on oxloop (--update-baseline records it)")
                bad += 1
        elif got < want:
            below.append(name)
            print(f"BELOW BASELINE {name}: {got} tests ran on oxloop, baseline {want}")
            bad += 1
        elif got > want and args.verbose:
            print(f"above baseline {name}: {got} > {want} (--update-baseline raises it)")
    for row in skip_rows:
        if row["asyncio_outcome"] in ("skipped", "not run"):
            continue
        listed = next((p for p, _ in expected if fnmatch.fnmatchcase(row["id"], p)), None)
        row["expected"] = listed is not None
        if listed is not None:
            counts["expected_skips"] += 1
            continue
        print(
            f"SKIPPED ON OXLOOP ONLY {row['id']}: {row['oxloop']!r}; "
            f"asyncio's loop: {row['asyncio_outcome']}"
        )
        bad += 1
    reasons = collections.Counter(r["oxloop"] for r in skip_rows)
    if reasons:
        print(
            f"skips ({len(skip_rows)}; each also skipped on asyncio's loop unless listed above "
            "or in the expected list):"
        )
        for reason, n in reasons.most_common():
            print(f"  {n:4d}  {reason[:110]}")
    dropped = [f"{run.name}.{c}" for run in runs for c in run.dropped]
    if dropped:
        print(f"not run (duplicates: oxloop does not use the child watcher): {', '.join(dropped)}")

    if args.update_baseline:
        merged = dict(baseline)
        merged.update({name: ran_per_module[name] for name in modules})
        BASELINE.parent.mkdir(exist_ok=True)
        BASELINE.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
        print(f"baseline written: {BASELINE}")
    if args.json:
        report = {
            "python": sys.version,
            "asyncio_debug": debug,
            "seconds": round(elapsed),
            "counts": dict(counts),
            "ran_on_oxloop": dict(ran_per_module),
            "baseline": {m: baseline.get(m) for m in modules},
            "skips": skip_rows,
            "dropped_duplicates": dropped,
            "tests": [r for run in runs for r in run.records],
        }
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1))
    mode = " (asyncio debug mode)" if debug else ""
    print(
        f"\nconformance {VERSION}{mode}: {counts['ran']} tests ran on oxloop in {len(modules)} "
        f"modules ({elapsed:.0f}s): {counts['passed']} passed, {counts['xfail']} expected "
        f"failures, {counts['failed']} unexpected failures, {counts['xpass']} unexpected passes; "
        f"{counts['skipped']} skipped ({counts['expected_skips']} listed: asyncio's loop runs "
        f"them), {counts['not_on_oxloop']} not on oxloop's loop"
        + (f"; json: {args.json}" if args.json else "")
    )
    print(f"conformance {VERSION}{mode}: {'FAILED, ' + str(bad) + ' problems' if bad else 'ok'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
