"""oxloop's side-by-side benchmark: every loop, every benchmark, one interleaved run.

    python benchmarks/run.py            # full run (make bench): about 10 minutes on 2 cores
    python benchmarks/run.py --quick    # quick run (make bench-quick): under 2 minutes

Each (benchmark, loop) cell runs in a process of its own (worker.py for the micro-benchmarks; for
the echo benchmarks a server on the loop under test and a client on CPython's own loop, net.py), so
a crash or a missing API is an error cell and the run goes on. Loops are interleaved (A B C A B C
...) inside every repetition, and ratios are taken per repetition between cells that ran side by
side, then their median. Every loop gets the same work, the same interpreter and no tuning.

Writes ``benchmarks/results/<date>-<label>.json`` (every repetition), ``benchmarks/chart.png`` and
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import select
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import micro
import report
from loops import LOOPS

PY = sys.executable
CELL_TIMEOUT = 120.0  # seconds for one cell before it is killed and shown as "timeout"

# Echo benchmark rows: (server kind, family, message size, total requests of a full run).
ECHO_KINDS = ("protocol", "streams", "sock")
ECHO_FAMILIES = ("tcp", "unix")
ECHO_SIZES = ((1024, 10_000), (100 * 1024, 1_000))
ECHO_CONNS = 4


def _last_result(stdout: str):
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return None


def _crash(proc_rc, stderr: str) -> dict:
    tail = stderr.strip().splitlines()[-20:]
    why = f"crash: exit {proc_rc}" if proc_rc else "crash: no result"
    return {"ok": False, "error": why, "traceback": "\n".join(tail)}


def run_worker(args: list[str], timeout: float = CELL_TIMEOUT) -> dict:
    try:
        proc = subprocess.run(
            [PY, os.path.join(HERE, "worker.py"), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {"ok": False, "error": f"timeout after {timeout:.0f} s", "traceback": stderr}
    result = _last_result(proc.stdout)
    return result if result is not None else _crash(proc.returncode, proc.stderr)


class Line:
    """Reads ``PREFIX payload`` lines from a child's stdout, with a deadline."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def expect(self, deadline: float) -> tuple[str, str]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "TIMEOUT", ""
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                return "EOF", ""
            word, _, payload = line.strip().partition(" ")
            if word in ("READY", "ERROR", "STATS", "WARM", "RESULT"):
                return word, payload


def _spawn(args: list[str], stderr) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, os.path.join(HERE, "net.py"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        bufsize=1,
    )


def _send(proc: subprocess.Popen, line: str) -> None:
    try:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
    except (BrokenPipeError, OSError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    _send(proc, "quit")
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_echo(loop: str, kind: str, family: str, size: int, requests: int, tmp: str) -> dict:
    """One echo cell: server on ``loop``, the stdlib client, server CPU read around the run."""
    deadline = time.monotonic() + CELL_TIMEOUT
    path = os.path.join(tmp, f"echo-{os.getpid()}.sock")
    if os.path.exists(path):
        os.unlink(path)
    with tempfile.TemporaryFile("w+") as server_err, tempfile.TemporaryFile("w+") as client_err:
        server = _spawn(["server", loop, kind, family, path], server_err)
        client = None
        try:
            word, payload = Line(server).expect(deadline)
            if word == "ERROR":
                return {"ok": False, **json.loads(payload)}
            if word != "READY":
                return _child_failure("server", word, server, server_err)
            warmup = max(ECHO_CONNS, requests // 10)
            client = _spawn(
                ["client", family, payload, str(size), str(ECHO_CONNS), str(requests), str(warmup)],
                client_err,
            )
            word, _ = Line(client).expect(deadline)
            if word != "WARM":
                if word == "RESULT":
                    return json.loads(_)
                return _child_failure("client", word, client, client_err)
            _send(server, "stats")
            word, before = Line(server).expect(deadline)
            if word != "STATS":
                return _child_failure("server", word, server, server_err)
            _send(client, "GO")
            word, result = Line(client).expect(deadline)
            if word != "RESULT":
                return _child_failure("client", word, client, client_err)
            result = json.loads(result)
            if not result["ok"]:
                return result
            _send(server, "stats")
            word, after = Line(server).expect(deadline)
            if word != "STATS":
                return _child_failure("server", word, server, server_err)
            before, after = json.loads(before), json.loads(after)
            cpu = (after["user"] - before["user"]) + (after["sys"] - before["sys"])
            return {
                **result,
                "server_cpu": cpu,
                "server_user": after["user"] - before["user"],
                "server_sys": after["sys"] - before["sys"],
                "server_maxrss_kib": after["maxrss_kib"],
            }
        finally:
            for proc in (client, server):
                if proc is not None:
                    _stop(proc)


def _child_failure(who: str, word: str, proc: subprocess.Popen, err_file) -> dict:
    if word == "TIMEOUT":
        return {
            "ok": False,
            "error": f"timeout after {CELL_TIMEOUT:.0f} s ({who})",
            "traceback": "",
        }
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass
    err_file.seek(0)
    result = _crash(proc.returncode, err_file.read())
    result["error"] = f"{who} {result['error']}"
    return result


def plan(quick: bool, only: str | None) -> list[dict]:
    """The benchmark rows of this run, in table order."""
    rows = []
    for bench in micro.MICRO:
        n = micro.size(bench, quick)
        rows.append(
            {
                "name": bench.name,
                "group": "micro",
                "unit": bench.unit,
                "n": n,
                "warmup": min(bench.warmup, n),
            }
        )
    for family in ECHO_FAMILIES:
        for kind in ECHO_KINDS:
            for size, requests in ECHO_SIZES:
                label = f"{size // 1024} KiB"
                rows.append(
                    {
                        "name": f"echo_{kind}_{family}_{label.replace(' ', '')}",
                        "group": "echo",
                        "unit": "request",
                        "kind": kind,
                        "family": family,
                        "size": size,
                        "n": requests // 4 if quick else requests,
                        "conns": ECHO_CONNS,
                    }
                )
    if only:
        rows = [r for r in rows if re.search(only, r["name"])]
    return rows


def run_cell(row: dict, loop: str, tmp: str) -> dict:
    if row["group"] == "micro":
        return run_worker(["micro", loop, row["name"], str(row["n"]), str(row["warmup"])])
    return run_echo(loop, row["kind"], row["family"], row["size"], row["n"], tmp)


def _short(result: dict, row: dict) -> str:
    if not result["ok"]:
        return result["error"][:40]
    n = result["ops"] if row["group"] == "micro" else result["requests"]
    return report.si(n / result["wall"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, less work")
    parser.add_argument("--reps", type=int, help="repetitions (default: 5 full, 2 quick)")
    parser.add_argument("--only", help="regular expression: run only the matching benchmarks")
    parser.add_argument("--loops", help="comma-separated loops (default: all that import)")
    parser.add_argument("--label", help="run label, e.g. 'smoke' (default: full or quick)")
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    label = args.label or ("quick" if args.quick else "full")
    started = time.time()

    probe = run_worker(["probe"], timeout=60)
    available = [name for name in LOOPS if probe.get(name, {}).get("ok")]
    if args.loops:
        wanted = args.loops.split(",")
        available = [name for name in available if name in wanted]
    for name in LOOPS:
        status = probe.get(name, {}).get("version") or probe.get(name, {}).get("error")
        print(f"  {name:8} {status}", file=sys.stderr)
    rows = plan(args.quick, args.only)

    runs = []
    with tempfile.TemporaryDirectory(prefix="oxloop-bench-") as tmp:
        for rep in range(reps):
            for row in rows:
                cells = []
                for loop in available:
                    result = run_cell(row, loop, tmp)
                    runs.append({"bench": row["name"], "loop": loop, "rep": rep, **result})
                    cells.append(f"{loop} {_short(result, row)}")
                elapsed = time.time() - started
                print(
                    f"[{elapsed:5.0f}s rep {rep + 1}/{reps}] {row['name']}: " + " | ".join(cells),
                    file=sys.stderr,
                )

    meta = {
        "label": label,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(PY), *sys.argv]),
        "quick": args.quick,
        "reps": reps,
        "seconds": round(time.time() - started, 1),
        "python": sys.version.split()[0],
        "machine": report.machine(),
        "loops": probe,
        "columns": available,
    }
    data = {"meta": meta, "rows": rows, "runs": runs}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = os.path.join(HERE, "results", f"{stamp}-{label}.json")
    with open(out, "w") as f:
        json.dump(data, f, indent=1)
    report.write(data, os.path.relpath(out, HERE))
    print(
        f"wrote {os.path.relpath(out)}, benchmarks/README.md ({meta['seconds']:.0f} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
