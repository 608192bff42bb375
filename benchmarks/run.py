"""oxloop's side-by-side benchmark: every loop, every benchmark, one interleaved run.

    python benchmarks/run.py            # full run (make bench): about 15 minutes on 2 cores
    python benchmarks/run.py --quick    # quick run (make bench-quick): about 3 minutes

Each (benchmark, loop) cell runs in a process of its own (worker.py for the micro-benchmarks; for
the echo benchmarks a server on the loop under test and a client on CPython's own loop, net.py), so
a crash or a missing API is an error cell and the run goes on. Loops are interleaved (A B C A B C
...) inside every repetition, and ratios are taken per repetition between cells that ran side by
side, then their median. Every loop gets the same work, the same interpreter and no tuning.
Rows differ in repetitions (``REPS``): the echo rows, the noisiest for their cost, get the most;
the idle-connection rows, whose set-up dominates, the fewest. ``oxloop`` and ``oxloop+monitor``
swap places every other repetition, so neither always runs first.

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
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import micro
import report
from loops import LOOPS, MONITORED

PY = sys.executable
# Seconds for one cell before it is killed and shown as "timeout" (then skipped in later
# repetitions, so a hanging loop costs one timeout per benchmark, not one per repetition).
CELL_TIMEOUT = 90.0

# Echo benchmark rows: (server kind, family, message size, total requests of a full run).
ECHO_KINDS = ("protocol", "streams", "sock")
ECHO_FAMILIES = ("tcp", "unix")
ECHO_SIZES = ((1024, 12_000), (100 * 1024, 3_000))
ECHO_CONNS = 4
# HTTP keep-alive row: wrk with this many connections on one thread, for this long.
HTTP_CONNS = 32
# Idle-connection rows: this many silent connections, then ECHO_CONNS hot ones (1 KiB echo).
IDLE_COUNTS = (1_000, 5_000, 10_000)
HTTP_SECONDS = (2, 5)  # quick, full
# Repetitions per kind of row, (quick, full); --reps sets them all.
REPS = {"micro": (3, 5), "echo": (3, 6), "idle": (1, 2), "http": (2, 3)}


def _last_result(stdout: str):
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return None


def _crash(returncode, stderr: str) -> dict:
    tail = stderr.strip().splitlines()[-30:]
    if returncode is not None and returncode < 0:
        why = f"crash: {signal.Signals(-returncode).name}"
    else:
        why = f"crash: exit {returncode}" if returncode else "crash: no result"
    return {"ok": False, "error": why, "traceback": "\n".join(tail)}


def _dump_stacks(proc: subprocess.Popen) -> None:
    """Ask a hung child for its Python stacks (faulthandler on SIGUSR1 writes them to stderr)."""
    try:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
    except ProcessLookupError:
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child and whatever it started (each child leads a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_worker(args: list[str], timeout: float | None = None) -> dict:
    timeout = timeout or CELL_TIMEOUT
    proc = subprocess.Popen(
        [PY, os.path.join(HERE, "worker.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _dump_stacks(proc)
        _kill_group(proc)
        _, stderr = proc.communicate()
        return {"ok": False, "error": f"timeout after {timeout:.0f} s", "traceback": stderr}
    result = _last_result(stdout)
    return result if result is not None else _crash(proc.returncode, stderr)


class Child:
    """A net.py process that talks in ``WORD payload`` lines on stdin and stdout, with deadlines."""

    def __init__(self, who: str, args: list[str]):
        self.who = who
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [PY, os.path.join(HERE, "net.py"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
        )
        # NOTE: raw reads into our own buffer: select() cannot see lines a buffered reader holds.
        self.buffer = b""

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died; expect() reports how

    def expect(self, want: str, deadline: float) -> str:
        """The payload of the next ``want`` line; raises CellError if anything else comes."""
        fd = self.proc.stdout.fileno()
        while True:
            line, sep, rest = self.buffer.partition(b"\n")
            if sep:
                self.buffer = rest
                word, _, payload = line.decode().strip().partition(" ")
                if word == want:
                    return payload
                if word == "ERROR" or (word == "RESULT" and not json.loads(payload)["ok"]):
                    raise CellError(json.loads(payload))
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                _dump_stacks(self.proc)
                raise CellError(
                    {
                        "error": f"timeout after {CELL_TIMEOUT:.0f} s ({self.who})",
                        "traceback": self._stderr_tail(),
                    }
                )
            if select.select([fd], [], [], left)[0]:
                data = os.read(fd, 65536)
                if not data:
                    raise CellError(self._crash())
                self.buffer += data

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return "\n".join(self.stderr.read().strip().splitlines()[-30:])

    def _crash(self) -> dict:
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        result = _crash(self.proc.returncode, self._stderr_tail())
        result["error"] = f"{self.who} {result['error']}"
        return result

    def stop(self) -> None:
        self.send("quit")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                stream.close()
            except OSError:
                pass  # stdin's last flush to a child that is gone


class CellError(Exception):
    """The cell failed; its argument is the error cell (``error``, ``traceback``)."""


def run_echo(
    loop: str, kind: str, family: str, size: int, requests: int, tmp: str, idle: int = 0
) -> dict:
    """One echo cell: server on ``loop``, the stdlib client, server CPU read around the run.

    With ``idle``, the client first holds that many silent connections open; the server's peak
    RSS before and after them gives the memory per connection.
    """
    deadline = time.monotonic() + CELL_TIMEOUT
    path = os.path.join(tmp, "echo.sock")
    if os.path.exists(path):
        os.unlink(path)
    children = []
    try:
        server = Child("server", ["server", loop, kind, family, path])
        children.append(server)
        address = server.expect("READY", deadline)
        warmup = max(ECHO_CONNS, requests // 10)
        args = [family, address, str(size), str(ECHO_CONNS), str(requests), str(warmup)]
        if idle:
            server.send("stats")
            baseline = json.loads(server.expect("STATS", deadline))
            args.append(str(idle))
        client = Child("client", ["client", *args])
        children.append(client)
        if idle:
            client.expect("IDLE", deadline)
            server.send("stats")
            loaded = json.loads(server.expect("STATS", deadline))
            client.send("GO")
        client.expect("WARM", deadline)
        server.send("stats")
        before = json.loads(server.expect("STATS", deadline))
        client.send("GO")
        result = json.loads(client.expect("RESULT", deadline))
        server.send("stats")
        after = json.loads(server.expect("STATS", deadline))
    except CellError as exc:
        return {"ok": False, **exc.args[0]}
    finally:
        for child in reversed(children):
            child.stop()
    user, sys_ = after["user"] - before["user"], after["sys"] - before["sys"]
    if idle:
        key = "rss_kib" if "rss_kib" in loaded else "maxrss_kib"  # the native server: peak only
        result["kib_per_conn"] = (loaded[key] - baseline[key]) / idle
    return {
        **result,
        "server_cpu": user + sys_,
        "server_user": user,
        "server_sys": sys_,
        "server_maxrss_kib": after["maxrss_kib"],
    }


def run_http(loop: str, seconds: int, tmp: str) -> dict:
    """One HTTP cell: the httptools server on ``loop``, wrk as the load, server CPU around it."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"ok": False, "error": "wrk not installed (Debian package wrk)", "traceback": ""}
    deadline = time.monotonic() + CELL_TIMEOUT
    server = None
    try:
        server = Child("server", ["server", loop, "http", "tcp", os.path.join(tmp, "unused")])
        host, port = json.loads(server.expect("READY", deadline))
        url = f"http://{host}:{port}/"
        # Warm-up, not measured.
        subprocess.run(
            [wrk, "-t1", f"-c{HTTP_CONNS}", "-d1s", url], capture_output=True, timeout=30
        )
        server.send("stats")
        before = json.loads(server.expect("STATS", deadline))
        t0 = time.perf_counter()
        out = subprocess.run(
            [wrk, "-t1", f"-c{HTTP_CONNS}", f"-d{seconds}s", url],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        ).stdout
        wall = time.perf_counter() - t0
        server.send("stats")
        after = json.loads(server.expect("STATS", deadline))
    except CellError as exc:
        return {"ok": False, **exc.args[0]}
    finally:
        if server is not None:
            server.stop()
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if done is None or bad or errors:
        return {
            "ok": False,
            "error": "wrk: " + (out.strip().splitlines() or ["no output"])[-1],
            "traceback": out,
        }
    requests = int(done.group(1))
    wrk_wall = float(done.group(2)) / (1000.0 if done.group(3) == "ms" else 1.0)
    user, sys_ = after["user"] - before["user"], after["sys"] - before["sys"]
    return {
        "ok": True,
        "requests": requests,
        "wall": wrk_wall or wall,
        "server_cpu": user + sys_,
        "server_user": user,
        "server_sys": sys_,
        "server_maxrss_kib": after["maxrss_kib"],
    }


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
                "reps": REPS["micro"][not quick],
            }
        )
    for family in ECHO_FAMILIES:
        for kind in ECHO_KINDS:
            for size, requests in ECHO_SIZES:
                rows.append(
                    {
                        "name": f"echo_{kind}_{family}_{size // 1024}KiB",
                        "group": "echo",
                        "unit": "request",
                        "kind": kind,
                        "family": family,
                        "size": size,
                        "n": requests // 4 if quick else requests,
                        "conns": ECHO_CONNS,
                        "reps": REPS["echo"][not quick],
                    }
                )
    for idle in IDLE_COUNTS:
        rows.append(
            {
                "name": f"idle_{idle // 1000}k_tcp_hot{ECHO_CONNS}",
                "group": "echo",
                "unit": "request",
                "kind": "protocol",
                "family": "tcp",
                "size": 1024,
                "n": 1_500 if quick else 6_000,
                "conns": ECHO_CONNS,
                "idle": idle,
                "reps": REPS["idle"][not quick],
            }
        )
    rows.append(
        {
            "name": "http_keepalive_tcp",
            "group": "echo",
            "unit": "request",
            "kind": "http",
            "family": "tcp",
            "seconds": HTTP_SECONDS[0] if quick else HTTP_SECONDS[1],
            "n": 0,
            "conns": HTTP_CONNS,
            "reps": REPS["http"][not quick],
        }
    )
    if only:
        rows = [r for r in rows if re.search(only, r["name"])]
    return rows


def run_cell(row: dict, loop: str, tmp: str) -> dict:
    if row.get("kind") == "http":
        return run_http(loop, row["seconds"], tmp)
    if row["group"] == "micro":
        return run_worker(["micro", loop, row["name"], str(row["n"]), str(row["warmup"])])
    return run_echo(
        loop, row["kind"], row["family"], row["size"], row["n"], tmp, row.get("idle", 0)
    )


def _short(result: dict, row: dict) -> str:
    if not result["ok"]:
        return result["error"][:40]
    n = result["ops"] if row["group"] == "micro" else result["requests"]
    return report.si(n / result["wall"])


def _order(loops: list[str], rep: int) -> list[str]:
    """The loops in run order: ``oxloop`` and ``oxloop+monitor`` change places every other rep."""
    order = list(loops)
    if rep % 2 and "oxloop" in order and MONITORED in order:
        i, j = order.index("oxloop"), order.index(MONITORED)
        order[i], order[j] = order[j], order[i]
    return order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, less work")
    parser.add_argument("--reps", type=int, help="repetitions of every row (default: REPS)")
    parser.add_argument("--only", help="regular expression: run only the matching benchmarks")
    parser.add_argument("--loops", help="comma-separated loops (default: all that import)")
    parser.add_argument("--label", help="run label, e.g. 'smoke' (default: full or quick)")
    args = parser.parse_args()
    label = args.label or ("quick" if args.quick else "full")
    started = time.time()

    probe = run_worker(["probe"], timeout=60)
    # Every loop gets a column; one that does not import shows "not installed" in every cell.
    columns = args.loops.split(",") if args.loops else list(LOOPS)
    available = [name for name in columns if probe.get(name, {}).get("ok")]
    for name in LOOPS:
        status = probe.get(name, {}).get("version") or probe.get(name, {}).get("error")
        print(f"  {name:8} {status}", file=sys.stderr)
    rows = plan(args.quick, args.only)
    if args.reps:
        for row in rows:
            row["reps"] = args.reps
    reps = max((row["reps"] for row in rows), default=0)

    runs = []
    hung = {}  # (benchmark, loop) -> error cell for the repetitions after a timeout
    with tempfile.TemporaryDirectory(prefix="oxloop-bench-") as tmp:
        for rep in range(reps):
            for row in rows:
                if rep >= row["reps"]:
                    continue
                cells = []
                for loop in _order(available, rep):
                    if loop == "native" and row["group"] != "echo":
                        continue  # the native ceiling serves network rows only
                    at = round(time.time() - started, 2)
                    if (row["name"], loop) in hung:
                        result = {"ok": False, "error": hung[row["name"], loop], "traceback": ""}
                    else:
                        result = run_cell(row, loop, tmp)
                    if not result["ok"] and result["error"].startswith("timeout"):
                        # Keep the run bounded: a cell that hung once is not run again.
                        hung[row["name"], loop] = f"skipped: {result['error']} in rep {rep + 1}"
                    runs.append(
                        {"bench": row["name"], "loop": loop, "rep": rep, "at": at, **result}
                    )
                    cells.append(f"{loop} {_short(result, row)}")
                elapsed = time.time() - started
                print(
                    f"[{elapsed:5.0f}s rep {rep + 1}/{reps}] {row['name']}: " + " | ".join(cells),
                    file=sys.stderr,
                )
            left = (time.time() - started) / (rep + 1) * (reps - rep - 1)
            print(f"rep {rep + 1}/{reps} done, about {left:.0f} s left", file=sys.stderr)

    meta = {
        "label": label,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(PY), *sys.argv]),
        "quick": args.quick,
        "reps": reps,
        "reps_by_kind": {kind: r[int(not args.quick)] for kind, r in REPS.items()}
        if not args.reps
        else None,
        "seconds": round(time.time() - started, 1),
        "python": sys.version.split()[0],
        "machine": report.machine(),
        "loops": probe,
        "columns": columns,
    }
    data = {"meta": meta, "rows": rows, "runs": runs}
    # The instruction cost of monitoring mode (make bench runs monitor_cost.py first).
    cost = os.path.join(HERE, "results", "monitor-cost.json")
    if os.path.exists(cost):
        with open(cost) as f:
            data["monitor_instructions"] = json.load(f)
    data["summary"] = report.summarise(data)
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
