"""Run real libraries' own test suites on asyncio's loop and on oxloop, and compare.

    python ecosystem/run.py [--suites uvicorn anyio] [--loops asyncio oxloop] [-- PYTEST ARGS]

(`make ecosystem SUITES="uvicorn anyio" ARGS="..."` does the same.) For each suite (suites.py):

1. its tests at the pinned version: the PyPI sdist, or ecosystem/vendor/ when the sdist has none;
2. a venv of its own (ecosystem/.work/<suite>/venv) with the library from PyPI at that version,
   its test requirements, and the oxloop wheel built once from this checkout;
3. pytest on asyncio's loop (`python -m pytest`) and on oxloop (`python -m oxloop -m pytest`), one
   after the other, serially, each with the probe plugin (oxloop_eco_probe.py) that records which
   loop class every test ran and each test's outcome;
4. the tests that pass on asyncio and fail on oxloop are run again, alone, on both loops: a test
   that then passes on oxloop (or fails on asyncio) is reported as flaky, not as an oxloop failure;
5. the results go to ecosystem/results.json (committed: one entry per suite, plus a history of
   runs) and the table to docs/ecosystem.md.

Loopback only: the suites' network-marked tests are deselected where the suite marks them.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
RESULTS = HERE / "results.json"
DOC = ROOT / "docs" / "ecosystem.md"

sys.path.insert(0, str(HERE))
from causes import UNCLASSIFIED, cause_of  # noqa: E402
from suites import SUITES, Suite  # noqa: E402

#: how each loop runs pytest; the probe plugin is on PYTHONPATH
LOOP_COMMANDS = {
    "asyncio": ["-m", "pytest"],
    "oxloop": ["-m", "oxloop", "-m", "pytest"],
}
#: one suite run may take this long on one loop before it is stopped (seconds)
RUN_LIMIT = 3 * 3600


def log(msg: str) -> None:
    print(f"[ecosystem {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, **kw) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kw)


# -- the oxloop wheel ----------------------------------------------------------------------------


def build_wheel(python: str) -> Path:
    """Build the checkout's oxloop wheel for `python` (cargo's cache makes a rebuild cheap)."""
    out = WORK / "wheels"
    shutil.rmtree(out, ignore_errors=True)
    maturin = ROOT / ".venv" / "bin" / "maturin"
    log(f"building the oxloop wheel for {python}")
    run(
        [maturin, "build", "--release", "--quiet", "--interpreter", python, "--out", out],
        cwd=ROOT,
    )
    (wheel,) = out.glob("oxloop-*.whl")
    return wheel


# -- a suite's tests and venv --------------------------------------------------------------------


def sdist(suite: Suite) -> Path:
    """The suite's sdist, downloaded once into ecosystem/.work/sdist."""
    cache = WORK / "sdist"
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{suite.dist.replace('-', '_')}-{suite.version}"
    for path in cache.glob("*.tar.gz"):
        if path.name.lower() in (f"{stem}.tar.gz".lower(), f"{suite.dist}-{suite.version}.tar.gz"):
            return path
    log(f"downloading the {suite.dist} {suite.version} sdist")
    run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        + ["--no-binary", suite.dist, f"{suite.dist}=={suite.version}", "-d", cache]
    )
    return sdist(suite)


def tests_dir(suite: Suite) -> Path:
    """A fresh copy of the suite's tests (and its pytest configuration), without its sources."""
    dest = WORK / suite.name / "src"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    if suite.vendor:
        shutil.copytree(HERE / "vendor" / suite.vendor, dest, dirs_exist_ok=True)
        # No configuration of its own: without one, pytest would climb to this repository's.
        (dest / "pytest.ini").write_text("[pytest]\n")
        return dest
    with tarfile.open(sdist(suite)) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts[1:]
            if not parts or parts[0] in suite.drop:
                continue
            member.name = str(Path(*parts))
            tar.extract(member, dest, filter="data")
    return dest


def venv(suite: Suite, python: str, wheel: Path) -> Path:
    """The suite's venv with its requirements (reinstalled when they change) and this oxloop."""
    env_dir = WORK / suite.name / "venv"
    py = env_dir / "bin" / "python"
    reqs = [suite.requirement, *suite.deps]
    key = hashlib.sha256(json.dumps([python, reqs]).encode()).hexdigest()
    stamp = env_dir / ".eco-stamp"
    if not stamp.exists() or stamp.read_text() != key:
        shutil.rmtree(env_dir, ignore_errors=True)
        log(f"{suite.name}: creating its venv")
        run([python, "-m", "venv", env_dir])
        run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"])
        run([py, "-m", "pip", "install", "-q", *reqs])
        stamp.write_text(key)
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel])
    return py


# -- running and reading -------------------------------------------------------------------------


def pytest_run(suite: Suite, py: Path, src: Path, loop: str, tag: str, extra: list[str]) -> dict:
    """Run the suite's pytest on one loop; return the probe's record (with the wall time)."""
    out = WORK / suite.name / "out"
    out.mkdir(parents=True, exist_ok=True)
    probe_file = out / f"{tag}-{loop}.json"
    probe_file.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(suite.env)
    env["PYTHONPATH"] = str(HERE)
    env["OXLOOP_ECO_PROBE_OUT"] = str(probe_file)
    env.pop("PYTHONASYNCIODEBUG", None)
    cmd = [py, *LOOP_COMMANDS[loop]]
    if suite.user:
        env["HOME"] = str(out)
        cmd = ["runuser", "-u", suite.user, "--", *cmd]
        run(["chown", "-R", suite.user, out, src])
    cmd += ["-p", "oxloop_eco_probe", "-p", "no:cacheprovider", "-q", "-rN", f"--rootdir={src}"]
    cmd += [f"--junitxml={out / f'{tag}-{loop}.xml'}", "-o", f"timeout={suite.timeout}"]
    cmd += extra
    log(f"{suite.name} on {loop}: {' '.join(str(c) for c in cmd)[:200]}")
    start = time.monotonic()
    with open(out / f"{tag}-{loop}.log", "w") as logf:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=src,
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=RUN_LIMIT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            # Servers and workers a test left behind go with the run.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    seconds = time.monotonic() - start
    if not probe_file.exists():
        return {
            "exitstatus": proc.returncode,
            "counts": {},
            "outcomes": {},
            "loops": {},
            "seconds": seconds,
            "broken": f"pytest exited {proc.returncode} with no report",
        }
    result = json.loads(probe_file.read_text())
    result["seconds"] = seconds
    probe_file.write_text(json.dumps(result))
    log(f"{suite.name} on {loop}: {result['counts']} in {seconds:.0f} s")
    return result


def loop_proof(result: dict) -> dict:
    """How many tests ran a loop, and on which: oxloop's, or only some other loop."""
    on_oxloop = on_other = 0
    for nodeid, classes in result["loops"].items():
        if nodeid.startswith("<"):
            continue
        if any(c.startswith("oxloop.") for c in classes):
            on_oxloop += 1
        else:
            on_other += 1
    return {"tests_on_oxloop": on_oxloop, "tests_on_other_loops_only": on_other}


BAD = ("failed", "error")


def outcome(outcomes: dict, nodeid: str) -> str:
    return outcomes.get(nodeid, ["not run"])[0]


def short(msg: str, limit: int = 200) -> str:
    line = msg.strip().splitlines()[0] if msg.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def ensure_user(name: str) -> None:
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        log(f"creating the unprivileged user {name}")
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])


def run_suite(
    suite: Suite, python: str, wheel: Path, loops: list[str], extra: list[str], reuse: bool
) -> dict:
    if suite.user:
        ensure_user(suite.user)
    src = tests_dir(suite)
    py = venv(suite, suite.python or python, wheel)
    args = [*suite.options, *(extra or suite.paths)]
    results = {}
    for loop in loops:
        previous = WORK / suite.name / "out" / f"full-{loop}.json"
        if reuse and previous.exists():
            results[loop] = json.loads(previous.read_text())
            results[loop].setdefault("seconds", 0)
        else:
            results[loop] = pytest_run(suite, py, src, loop, "full", args)
    entry = {
        "title": suite.title,
        "python": subprocess.run(
            [py, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        "args": args,
        "loops": {
            loop: {
                "counts": r["counts"],
                "exitstatus": r["exitstatus"],
                "seconds": round(r["seconds"]),
                **({"broken": r["broken"]} if "broken" in r else {}),
                **loop_proof(r),
            }
            for loop, r in results.items()
        },
    }
    if "asyncio" in results and "oxloop" in results:
        base, ox = results["asyncio"]["outcomes"], results["oxloop"]["outcomes"]
        diff = sorted(n for n, (o, _) in ox.items() if o in BAD and outcome(base, n) == "passed")
        news = sorted(n for n, (o, _) in base.items() if o in BAD and outcome(ox, n) == "passed")
        flaky = []
        if diff:
            # Each one again, on both loops: only the failures that repeat count.
            argfile = WORK / suite.name / "out" / "rerun-args.txt"
            argfile.write_text("\n".join(diff) + "\n")
            again = {
                loop: pytest_run(suite, py, src, loop, "rerun", [*suite.options, f"@{argfile}"])
                for loop in ("asyncio", "oxloop")
            }
            for n in diff:
                ox_again = outcome(again["oxloop"]["outcomes"], n)
                base_again = outcome(again["asyncio"]["outcomes"], n)
                if ox_again not in BAD or base_again != "passed":
                    flaky.append(n)
        entry["oxloop_only_failures"] = [
            {"test": n, "outcome": ox[n][0], "message": short(ox[n][1])}
            for n in diff
            if n not in flaky
        ]
        entry["flaky"] = [{"test": n, "message": short(ox[n][1])} for n in flaky]
        entry["asyncio_only_failures"] = [{"test": n, "message": short(base[n][1])} for n in news]
    return entry


# -- the report ----------------------------------------------------------------------------------


def oxloop_commit() -> str:
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    # The last commit that changed oxloop itself, not the one that changed this runner.
    head = git("log", "-1", "--format=%h", "--", "crates", "python", "Cargo.toml", "Cargo.lock")
    return head + ("+dirty" if git("status", "--porcelain", "--", "crates", "python") else "")


def passed(counts: dict) -> int:
    return counts.get("passed", 0)


def table_row(entry: dict) -> str:
    loops = entry["loops"]
    cells = []
    for loop in ("asyncio", "oxloop"):
        r = loops.get(loop)
        if r is None:
            cells.append("–")
        elif "broken" in r:
            cells.append(f"did not run ({r['broken']})")
        else:
            c = r["counts"]
            cells.append(
                f"{passed(c)} pass, {c.get('failed', 0) + c.get('error', 0)} fail, "
                f"{c.get('skipped', 0)} skip"
            )
    ox = loops.get("oxloop", {})
    proof = f"{ox.get('tests_on_oxloop', 0)} / {ox.get('tests_on_other_loops_only', 0)}"
    only = len(entry.get("oxloop_only_failures", []))
    flaky = len(entry.get("flaky", []))
    times = " / ".join(f"{loops[lp]['seconds']} s" for lp in ("asyncio", "oxloop") if lp in loops)
    return f"| {entry['title']} | {cells[0]} | {cells[1]} | {only} | {flaky} | {proof} | {times} |"


HEADER = (
    "| suite | asyncio | oxloop | pass on asyncio, fail on oxloop | flaky | "
    "tests run on oxloop / on another loop only | time asyncio / oxloop |\n"
    "|---|---|---|---|---|---|---|"
)


def write_doc(data: dict) -> None:
    lines = [
        "# oxloop under real libraries' own test suites",
        "",
        "Generated by `make ecosystem` (ecosystem/run.py) from ecosystem/results.json: do not",
        "edit; the causes come from ecosystem/causes.py.",
        "Each suite runs at its pinned version in its own venv, with pytest's own counts, on",
        "asyncio's loop (`python -m pytest`) and on oxloop (`python -m oxloop -m pytest`). The",
        "probe plugin (ecosystem/oxloop_eco_probe.py) records the loop class every test ran:",
        '"tests run on oxloop" counts the tests of the oxloop run that ran an oxloop loop,',
        '"on another loop only" those that ran only another one (a suite\'s test that builds',
        'asyncio\'s loop on purpose, or a server thread the suite starts with `loop="asyncio"`).',
        "A test that fails on oxloop and passes on asyncio is run again alone on both loops; if",
        "it then passes on oxloop (or fails on asyncio) it is counted as flaky, not as a failure.",
        "",
        "```sh",
        "make ecosystem                                  # every suite (aiohttp takes longest)",
        'make ecosystem SUITES="uvicorn anyio"           # some suites',
        'make ecosystem SUITES=aiohttp ARGS="tests/test_web_functional.py"   # part of a suite',
        "```",
        "",
        "## Latest run",
        "",
        HEADER,
    ]
    for name in SUITES:
        if name in data["suites"]:
            lines.append(table_row(data["suites"][name]))
    lines.append("")
    for name in SUITES:
        entry = data["suites"].get(name)
        if entry is None:
            continue
        lines += [
            f"### {entry['title']}",
            "",
            f"Python {entry['python']}, oxloop {entry['oxloop']}, {entry['date']}; "
            f"pytest {' '.join(entry['args'])}",
            "",
        ]
        fails = entry.get("oxloop_only_failures", [])
        if fails:
            lines.append("Pass on asyncio, fail on oxloop, by cause:")
            lines.append("")
            by_cause: dict[str, list[dict]] = {}
            for f in fails:
                by_cause.setdefault(cause_of(f["test"], f["message"]), []).append(f)
            causes = sorted(by_cause, key=lambda c: (c == UNCLASSIFIED, -len(by_cause[c])))
            for cause in causes:
                n = len(by_cause[cause])
                lines.append(f"- {cause}: {n} test{'s' if n != 1 else ''}")
                for f in by_cause[cause]:
                    lines.append(f"  - `{f['test']}` ({f['outcome']}): {f['message'] or '–'}")
            lines.append("")
        else:
            lines += ["No test passes on asyncio and fails on oxloop.", ""]
        for key, what in (
            ("flaky", "Failed once on oxloop, not again (flaky)"),
            ("asyncio_only_failures", "Fail on asyncio, pass on oxloop"),
        ):
            if entry.get(key):
                lines += [f"{what}:", ""]
                lines += [f"- `{f['test']}`: {f['message'] or '–'}" for f in entry[key]]
                lines.append("")
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    if data.get("history"):
        lines += [
            "## History",
            "",
            "| date | oxloop | suite | asyncio pass | oxloop pass "
            "| pass on asyncio, fail on oxloop |",
            "|---|---|---|---|---|---|",
        ]
        for h in data["history"]:
            cells = (h["date"], h["oxloop"], h["suite"], h["asyncio"], h["oxloop_pass"])
            lines.append("| " + " | ".join(map(str, cells)) + f" | {h['oxloop_only']} |")
        lines.append("")
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("\n".join(lines))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", nargs="*", default=list(SUITES), help="default: all")
    parser.add_argument("--loops", nargs="*", default=["asyncio", "oxloop"])
    parser.add_argument("--python", default="python3.11", help="the Python the venvs use")
    parser.add_argument("--wheel", help="an oxloop wheel to use instead of building one")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the last full runs' records (report only)"
    )
    parser.add_argument(
        "--report", action="store_true", help="only rewrite docs/ecosystem.md from results.json"
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    opts = parser.parse_args(argv)
    unknown = [s for s in opts.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suites {unknown}; known: {' '.join(SUITES)}")
    if opts.report:
        write_doc(json.loads(RESULTS.read_text()))
        return 0
    python = shutil.which(opts.python) or opts.python
    wheel = Path(opts.wheel) if opts.wheel else build_wheel(python)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"suites": {}, "history": []}
    commit = oxloop_commit()
    for name in opts.suites:
        suite = SUITES[name]
        entry = run_suite(suite, python, wheel, opts.loops, opts.pytest_args, opts.reuse)
        entry["oxloop"] = commit
        entry["date"] = datetime.date.today().isoformat()
        if opts.pytest_args:
            entry["title"] += f" ({' '.join(opts.pytest_args)})"
        # Re-read: another run (another suite) may have written since this one started.
        if RESULTS.exists():
            data = json.loads(RESULTS.read_text())
        data["suites"][name] = entry
        data["history"].append(
            {
                "date": entry["date"],
                "oxloop": commit,
                "suite": entry["title"],
                "asyncio": passed(entry["loops"].get("asyncio", {}).get("counts", {})),
                "oxloop_pass": passed(entry["loops"].get("oxloop", {}).get("counts", {})),
                "oxloop_only": len(entry.get("oxloop_only_failures", [])),
            }
        )
        RESULTS.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        write_doc(data)
        log(f"{name}: {table_row(entry)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
