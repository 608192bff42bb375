"""Turns a run's JSON into benchmarks/README.md and benchmarks/chart.png.

Medians and min-max over the repetitions that succeeded; ratios are paired: for each repetition
the loop's figure over the baseline's from the same repetition (they ran side by side), then the
median of those ratios. A ratio above 1 is always better for the loop: more throughput, or less
CPU per operation. For CPU per operation the best-of ratio (the baseline's minimum over the
loop's minimum) is kept too: noise on a shared machine only ever adds CPU, so minima are the
steadier figure.

    python benchmarks/report.py benchmarks/results/RUN.json   # rewrite the tables from a run
"""

from __future__ import annotations

import os
import platform
import statistics

from loops import LOOPS, MONITORED

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINES = ("asyncio", "uvloop")
# The other event loops: the headline table compares oxloop with the fastest of them per row.
PEERS = ("asyncio", "uvloop", "rloop", "rsloop")
# The project README's copy of the headline table sits between these lines.
README_START = "<!-- bench-table:start (benchmarks/report.py writes this table) -->"
README_END = "<!-- bench-table:end -->"


def machine() -> dict:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
    }


def si(x: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


# Each metric: (key, how to compute it from one repetition, higher is better).
def _throughput(r):
    return (r["ops"] if "ops" in r else r["requests"]) / r["wall"]


def _cpu_per_op(r):
    if "ops" in r:
        return r["cpu"] / r["ops"] * 1e6
    return r["server_cpu"] / r["requests"] * 1e6


def _cpu_util(r):
    return 100.0 * (r["cpu"] if "ops" in r else r["server_cpu"]) / r["wall"]


def _rss(r):
    return r.get("maxrss_kib", r.get("server_maxrss_kib", 0)) / 1024.0


def _kib_per_conn(r):
    return r.get("kib_per_conn", 0.0)


METRICS = {
    "throughput": (_throughput, True),
    "cpu_us": (_cpu_per_op, False),
    "cpu_util": (_cpu_util, False),
    "rss_mib": (_rss, False),
    "kib_per_conn": (_kib_per_conn, False),
}


def summarise(data: dict) -> dict:
    """{bench: {loop: {"error": str} | {metric: (median, lo, hi)}, "ratios": {...}}}."""
    by = {}
    for run in data["runs"]:
        by.setdefault(run["bench"], {}).setdefault(run["loop"], {})[run["rep"]] = run
    out = {}
    for row in data["rows"]:
        cells = {}
        for loop in data["meta"]["columns"]:
            reps = by.get(row["name"], {}).get(loop, {})
            good = [r for r in reps.values() if r["ok"]]
            if not good:
                first = next(iter(reps.values()), {"error": "not installed"})
                cells[loop] = {"error": first["error"]}
                continue
            cell = {"failed": len(reps) - len(good)}
            for key, (fn, _) in METRICS.items():
                values = [fn(r) for r in good]
                cell[key] = (statistics.median(values), min(values), max(values))
            bases = PEERS + (("oxloop",) if loop in (MONITORED, "native") else ())
            for base in bases:
                if base == loop:
                    continue
                base_good = [b for b in by[row["name"]].get(base, {}).values() if b["ok"]]
                if base_good and _cpu_per_op(min(good, key=_cpu_per_op)) > 0:
                    best = min(_cpu_per_op(b) for b in base_good)
                    cell[f"cpu_us_best_vs_{base}"] = best / min(_cpu_per_op(r) for r in good)
                for key in ("throughput", "cpu_us"):
                    fn, higher = METRICS[key]
                    ratios = [
                        fn(r) / fn(b) if higher else fn(b) / fn(r)
                        for rep, r in reps.items()
                        if r["ok"]
                        and (b := by[row["name"]].get(base, {}).get(rep))
                        and b["ok"]
                        and fn(r) > 0
                        and fn(b) > 0
                    ]
                    if ratios:
                        cell[f"{key}_vs_{base}"] = statistics.median(ratios)
            cells[loop] = cell
        out[row["name"]] = cells
    return out


def _cell(cell: dict, key: str, fmt) -> str:
    if "error" in cell:
        return f"*{cell['error']}*"
    med, lo, hi = cell[key]
    text = f"{fmt(med)} ({fmt(lo)}–{fmt(hi)})"
    if cell["failed"]:
        text += f" [{cell['failed']} failed]"
    return text


def _ratio(cell: dict, key: str, loop: str) -> str:
    parts = []
    for base in BASELINES:
        value = None if base == loop else cell.get(f"{key}_vs_{base}")
        parts.append("–" if value is None else f"{value:.2f}x")
    return " / ".join(parts)


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def _rows(data, summary, group):
    return [row for row in data["rows"] if row["group"] == group and row["name"] in summary]


def _fmt_us(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def _fmt_pct(x):
    return f"{x:.0f}%"


def _fmt_kib(x):
    return f"{x:.1f}"


def _fmt_mib(x):
    return f"{x:.0f}"


def markdown(data: dict, json_path: str, chart_path: str | None) -> str:
    meta = data["meta"]
    summary = summarise(data)
    loops = meta["columns"]
    lines = ["# Benchmarks", ""]
    if meta["label"] != "full":
        lines += [SMOKE.format(label=meta["label"].upper(), reps=meta["reps"]), ""]
    loop_versions = "; ".join(
        f"{name} {info.get('version') or '(' + info.get('error', '?') + ')'}"
        for name, info in meta["loops"].items()
    )
    lines += [
        METHOD.format(echo=ECHO_NOTE).strip(),
        "",
        "## Machine",
        "",
        f"- CPU: {meta['machine']['cpu']}, {meta['machine']['cores']} cores",
        f"- OS: {meta['machine']['os']}; Python {meta['python']}",
        f"- Loops: {loop_versions}",
        f"- Command: `{meta['command']}` ({_reps(meta)}, {meta['seconds']:.0f} s)",
        f"- Date: {meta['date']}",
        f"- Every repetition: [`{json_path}`]({json_path})",
        "",
    ]
    table = headline(data, summary)
    if table:
        lines += ["## oxloop against the fastest peer", "", HEADLINE_NOTE, "", *table, ""]
    if chart_path:
        lines += [f"![each loop relative to asyncio]({chart_path})", ""]
    else:
        lines += ["*(no chart: matplotlib is not installed)*", ""]

    micro_rows = _rows(data, summary, "micro")
    echo_loops = loops
    loops = [lp for lp in loops if lp != "native"]  # the native ceiling has echo rows only
    echo_rows = _rows(data, summary, "echo")
    if micro_rows:
        lines += [
            "## Scheduling micro-benchmarks",
            "",
            "Operations per second (higher is better):",
            "",
        ]
        lines += _table(
            ["benchmark", "unit", *loops],
            [
                [r["name"], f"{r['unit']} ×{si(r['n'])}"]
                + [_cell(summary[r["name"]][lp], "throughput", si) for lp in loops]
                for r in micro_rows
            ],
        )
        lines += ["", "Throughput ratio vs asyncio / vs uvloop (paired medians, higher is better):"]
        lines += ["", *_ratio_table(summary, micro_rows, loops, "throughput"), ""]
        lines += ["CPU per operation, ratio vs asyncio / vs uvloop (higher is better):", ""]
        lines += [*_ratio_table(summary, micro_rows, loops, "cpu_us"), ""]
        lines += ["CPU µs per operation (lower is better) and peak RSS in MiB:", ""]
        lines += _pair_table(summary, micro_rows, loops, ("cpu_us", "CPU µs", _cell, _fmt_us))
        lines.append("")
    if echo_rows:
        lines += ["## Echo servers", "", f"{ECHO_NOTE.capitalize()}.", ""]
        lines += ["Requests per second (higher is better):", ""]
        lines += _metric_table(summary, echo_rows, echo_loops, "throughput", si)
        lines += ["", "Server CPU µs per request (lower is better):", ""]
        lines += _metric_table(summary, echo_rows, echo_loops, "cpu_us", _fmt_us)
        lines += ["", "Server CPU µs per request, ratio vs asyncio / vs uvloop (higher is better):"]
        lines += ["", *_ratio_table(summary, echo_rows, echo_loops, "cpu_us"), ""]
        lines += ["Server CPU utilisation and server peak RSS in MiB (medians):", ""]
        lines += _pair_table(
            summary, echo_rows, echo_loops, ("cpu_util", "CPU", _short_cell, _fmt_pct)
        )
        lines.append("")
        idle_rows = [r for r in echo_rows if r.get("idle")]
        if idle_rows:
            lines += [
                "Idle connections: server memory per connection in KiB (RSS growth while the idle",
                "connections were opened, divided by their number; lower is better):",
                "",
            ]
            lines += _metric_table(summary, idle_rows, echo_loops, "kib_per_conn", _fmt_kib)
            lines.append("")
    lines += _monitor_cost(summary, micro_rows + echo_rows, loops)
    lines += _monitor_instructions(data.get("monitor_instructions"))
    lines += [PEERS_FROM_SOURCE.strip(), ""]
    lines += _problems(data)
    return "\n".join(lines)


def _reps(meta: dict) -> str:
    by_kind = meta.get("reps_by_kind")
    if not by_kind:
        return f"{meta['reps']} repetitions"
    return "repetitions: " + ", ".join(f"{kind} {n}" for kind, n in by_kind.items())


def _key(row) -> str:
    """The figure a row compares: throughput for scheduling rows, server CPU for network rows."""
    return "throughput" if row["group"] == "micro" else "cpu_us"


def fastest_peer(cells: dict, row: dict) -> str | None:
    """The peer loop with the best median figure in this row, or None if none ran."""
    key = _key(row)
    ran = [p for p in PEERS if p in cells and "error" not in cells[p]]
    if not ran:
        return None
    pick = max if key == "throughput" else min
    return pick(ran, key=lambda p: cells[p][key][0])


def headline(data: dict, summary: dict) -> list[str]:
    """oxloop against asyncio, uvloop and the fastest peer of each row (paired medians)."""
    rows = [r for r in data["rows"] if r["name"] in summary]
    if not rows or "oxloop" not in data["meta"]["columns"]:
        return []

    def ratio(cell, key):
        return "–" if cell.get(key) is None else f"{cell[key]:.2f}x"

    lines = []
    for r in rows:
        cells, key = summary[r["name"]], _key(r)
        ox = cells.get("oxloop", {"error": "not run"})
        if "error" in ox:
            lines.append([r["name"], key, *["*" + ox["error"][:40] + "*"] * 4, "–"])
            continue
        peer = fastest_peer(cells, r)
        vs_peer = "–" if peer is None else ratio(ox, f"{key}_vs_{peer}")
        if peer is not None and key == "cpu_us" and ox.get(f"cpu_us_best_vs_{peer}"):
            vs_peer += f" (best-of {ox[f'cpu_us_best_vs_{peer}']:.2f}x)"
        native = cells.get("native", {})
        ceiling = "–"
        if key == "cpu_us" and "error" not in native and native.get("cpu_us_vs_oxloop"):
            ceiling = f"{native['cpu_us_vs_oxloop']:.2f}x"
        lines.append(
            [
                r["name"],
                "ops/s" if key == "throughput" else "server CPU/request",
                ratio(ox, f"{key}_vs_asyncio"),
                ratio(ox, f"{key}_vs_uvloop"),
                peer or "–",
                vs_peer,
                ceiling,
            ]
        )
    return _table(
        [
            "benchmark",
            "compared on",
            "oxloop vs asyncio",
            "oxloop vs uvloop",
            "fastest peer",
            "oxloop vs fastest peer",
            "native vs oxloop",
        ],
        lines,
    )


HEADLINE_NOTE = """\
Each ratio is oxloop's figure over the other loop's, paired per repetition, then the median; above
1 is better for oxloop (more operations per second on scheduling rows, less server CPU per request
on network rows). The fastest peer is the one of asyncio, uvloop, rloop and rsloop with the best
median in that row; for CPU rows the best-of ratio (minimum over minimum) follows in brackets.
`native vs oxloop` is how much less CPU the same service takes in Rust with no Python (the
ceiling)."""


def _monitor_cost(summary, rows, loops) -> list[str]:
    """oxloop with monitoring mode on relative to oxloop, per row (paired medians)."""
    if MONITORED not in loops or "oxloop" not in loops:
        return []

    def cost(cell, key):
        value = cell.get(f"{key}_vs_oxloop")
        return "–" if value is None else f"{(1 - value) * 100:+.1f}%"

    lines = [
        "## Cost of monitoring mode",
        "",
        f"`{MONITORED}` against `oxloop` in the same run, per repetition, then the median: how",
        "much less throughput and how much more CPU per operation (server CPU per request for",
        "echo rows) monitoring mode costs. The two run side by side and change order every other",
        "repetition. Negative figures are noise in oxloop's favour; the instruction counts below",
        "are the steadier measure.",
        "",
    ]
    lines += _table(
        ["benchmark", "throughput lost", "CPU per operation added"],
        [
            [
                r["name"],
                cost(summary[r["name"]][MONITORED], "throughput"),
                cost(summary[r["name"]][MONITORED], "cpu_us"),
            ]
            for r in rows
            if "error" not in summary[r["name"]].get(MONITORED, {"error": 1})
        ],
    )
    return [*lines, ""]


def _monitor_instructions(cost: dict | None) -> list[str]:
    """The callgrind table of ``monitor_cost.py --json``: the robust view of the same cost."""
    if not cost:
        return []
    rows = cost["rows"]
    layouts = max(len(r.get("runs", [None])) for r in rows)
    lines = [
        "### Cost of monitoring mode in instructions",
        "",
        "Instructions of the loop thread per operation, monitoring off and on (callgrind,",
        f"`benchmarks/monitor_cost.py`, {cost['date']}, Python {cost['python']}), no sample",
        "within the run: a count that other load on the machine does not move. Every child",
        "imports monitoring's modules and runs an idle thread, as `instructions.py --idle-thread`",
        "does, so the columns differ in monitoring alone. Heap layout still moves a row by a few",
        "percent either way (glibc serves the echo's 1 KiB `bytes` from another bin), so network",
        f"rows run in up to {layouts} layouts (a different malloc'd pad before the loop, the same",
        "for both columns): *cost* is the median of the per-layout differences, *range* their",
        "spread. *Hooks* counts the loop thread's instructions in oxloop's own extension, on",
        "minus off: the monitor's per-tick and per-callback code, which layout does not move.",
        "The echo server's client is another process, which valgrind does not follow.",
        "`echo_sock_unix` is left out: its work per request depends on whether the client's",
        "next message is already there when `sock_recv` is called, a race (see",
        "`monitor_cost.py`); `sock_echo_1KiB` measures the same `sock_*` paths. The issue's",
        "line: under 1% on network rows, under 3% on scheduling rows. The watchdog's own work",
        "depends on time, not on load (at most 500 samples a second).",
        "",
    ]

    def hooks(r):
        if "own_on" not in r:
            return "–"
        added = r["own_on"] - r["own_off"]
        return f"{added:+,.0f} ({100 * added / r['off']:+.2f}%)"

    def spread(r):
        runs = r.get("runs") or []
        if len(runs) < 2:
            return "–"
        return f"{r['cost_min']:+.1f}% .. {r['cost_max']:+.1f}% ({len(runs)})"

    def median_cost(r):
        value = r.get("cost", 100 * (r["on"] - r["off"]) / r["off"])
        return f"{value:+.1f}%"

    lines += _table(
        ["benchmark", "kind", "off, instr/op", "on, instr/op", "cost", "range (layouts)", "hooks"],
        [
            [
                r["bench"],
                r.get("kind", "–"),
                f"{r['off']:,.0f}",
                f"{r['on']:,.0f}",
                median_cost(r),
                spread(r),
                hooks(r),
            ]
            for r in rows
        ],
    )
    return [*lines, ""]


def _problems(data: dict) -> list[str]:
    """Error cells and oddities, grouped: what failed, on which loop, in which benchmarks."""
    errors, notes = {}, {}
    for run in data["runs"]:
        if not run["ok"]:
            errors.setdefault((run["loop"], run["error"]), set()).add(run["bench"])
            continue
        for text in run.get("exception_handler_calls", []):
            notes.setdefault((run["loop"], f"exception handler called: {text}"), set()).add(
                run["bench"]
            )
        if run.get("close_error"):
            notes.setdefault((run["loop"], f"close(): {run['close_error']}"), set()).add(
                run["bench"]
            )
    if not errors and not notes:
        return []
    lines = ["## Error cells and notes", ""]
    lines += ["Tracebacks are in the JSON file (`traceback` of each failed repetition).", ""]
    lines += _table(
        ["loop", "what", "benchmarks"],
        [
            [loop, text.replace("|", "\\|")[:200], ", ".join(sorted(benches))]
            for (loop, text), benches in sorted({**errors, **notes}.items())
        ],
    )
    return [*lines, ""]


SMOKE = """\
> **{label} RUN**: {reps} repetition(s) on a shared machine while others compiled and tested. The
> numbers are noisy: they show that the harness works, not where oxloop stands. The lead commits the
> table of a full run made on a quiet machine."""

METHOD = """
Every loop, every benchmark, one interleaved run: `make bench` (full, about 10 minutes on 2 cores)
or `make bench-quick` (under 2 minutes). `benchmarks/run.py --help` lists the options (`--only
REGEX`, `--loops`, `--reps`, `--label`). Both install the peer loops and matplotlib from
`benchmarks/requirements.txt` first; a loop that does not install or import shows "not installed"
in its column (why: under Machine).

## How it is measured

- Each (benchmark, loop) cell runs in a process of its own, so a crash, a hang or a missing API is
  an error cell and the run goes on. Loops are interleaved (A B C A B C ...) within every
  repetition; a cell shows the median and, in brackets, the min–max over the repetitions.
- Ratios are paired: per repetition, the loop's figure over asyncio's (or uvloop's) from the same
  repetition, then the median of those ratios. Above 1 is better for the loop: more operations per
  second, or fewer CPU µs per operation.
- Same work for every loop, same interpreter, default settings, no tuning. Each micro cell first
  runs a warm-up of a tenth of the work in the same process and discards it; the echo client warms
  every connection up before the measured part.
- CPU is user + system time of the benchmark process (all its threads, from `getrusage`), peak RSS
  its maximum resident set. Every benchmark checks its answer (counts, sums, order of turns,
  every echoed byte): a wrong answer is an error cell, not a fast one.
- Echo: the server runs on the loop under test; the client is one program for every loop, on
  CPython's own asyncio loop in another process, {echo}. Server CPU µs per request is the server
  process's user + system time during the measured requests over their number; utilisation is
  that CPU time over the wall time. The Python client can be the bottleneck for the fastest
  servers, so requests per second flatten out first: server CPU per request is the figure to
  compare.
"""

ECHO_NOTE = "4 concurrent ping-pong connections, each message checked byte for byte"

PEERS_FROM_SOURCE = """
## rsloop, built from source

rsloop publishes no wheel for CPython 3.11, and its sdist pins a nightly Rust in
`rust-toolchain.toml` (`nightly-2026-09-25` for 0.1.66). When `import rsloop` fails, `make bench`
runs `make bench-rsloop`, which builds the sdist with the nightly toolchain rustup has:

```
rustup toolchain install nightly          # if `rustup toolchain list` shows none
RUSTUP_TOOLCHAIN=nightly RUSTFLAGS="-Zcrate-attr=feature(allocator_api)" \\
    .venv/bin/pip install --no-binary rsloop rsloop
```

`RUSTUP_TOOLCHAIN` overrides the pin. `-Zcrate-attr=feature(allocator_api)` is needed with a
nightly older than the pinned one (here 2026-05-19): rsloop uses the `allocator_api` library
feature without a gate, which those nightlies still require; a newer nightly only warns about it.
The build compiles aws-lc-sys and takes about 15 minutes on 2 busy cores; the log is
`.venv/rsloop-build.log`, and a failed build leaves the column "not installed" with its last line.
No rsloop code is in this repository.

What rsloop does on call_soon: the same work as the other loops. The benchmark counts the
callbacks that ran and rsloop's count matches. Its `Handle` is a PyO3 class without
`__traverse__`, so, as rloop's, it is not tracked by the garbage collector: a cycle through a
handle that has run (`obj.h = loop.call_soon(obj.method)`) is never collected (checked on
0.1.66), and a burst of pending handles costs the collector nothing. That, not less work, is most
of its lead on uvloop, whose handles the collector tracks: timed on this machine (best of 5, 100k
callbacks, under load), uvloop's call_soon took 4.5 µs with the collector on and 2.1 µs with it
off, rsloop's 2.0 and 2.2 µs; with the collector off rsloop was no faster than uvloop. oxloop's handles are untracked too
while only the loop holds them, with the loop reporting what they hold to the collector, so such
cycles are still collected (`tests/test_gc.py`).
"""


def _metric_table(summary, rows, loops, key, fmt):
    return _table(
        ["benchmark", *loops],
        [[r["name"]] + [_cell(summary[r["name"]][lp], key, fmt) for lp in loops] for r in rows],
    )


def _pair_table(summary, rows, loops, first):
    """A table of one metric per loop (``first``: key, header, cell function, format), then RSS."""
    key, header, cell, fmt = first
    return _table(
        ["benchmark", *[f"{lp} {header}" for lp in loops], *[f"{lp} MiB" for lp in loops]],
        [
            [r["name"]]
            + [cell(summary[r["name"]][lp], key, fmt) for lp in loops]
            + [_short_cell(summary[r["name"]][lp], "rss_mib", _fmt_mib) for lp in loops]
            for r in rows
        ],
    )


def _short_cell(cell, key, fmt):
    return "–" if "error" in cell else fmt(cell[key][0])


def _ratio_table(summary, rows, loops, key):
    others = [lp for lp in loops if lp != "asyncio"]
    return _table(
        ["benchmark", *others],
        [
            [r["name"]]
            + [
                "–"
                if "error" in summary[r["name"]][lp]
                else _ratio(summary[r["name"]][lp], key, lp)
                for lp in others
            ]
            for r in rows
        ],
    )


CHART_PANELS = (
    ("micro", "throughput", "micro-benchmarks: ops/s ÷ asyncio's"),
    ("echo", "cpu_us", "echo: asyncio's server CPU per request ÷ the loop's"),
)


def _colour(loop: str) -> str:
    return f"C{LOOPS.index(loop)}"


def chart(data: dict, path: str) -> bool:
    """Bars per benchmark, one colour per loop, relative to asyncio (log scale; above 1 = better)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        return False
    summary = summarise(data)
    loops = data["meta"]["columns"]
    panels = [
        (key, title, [r["name"] for r in _rows(data, summary, group)])
        for group, key, title in CHART_PANELS
    ]
    panels = [p for p in panels if p[2]]
    if not panels:
        return False
    widest = max(len(names) for _, _, names in panels)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(8, 0.3 * widest * max(1, len(loops))), 5 * len(panels))
    )
    axes = [axes] if len(panels) == 1 else list(axes)
    width = 0.8 / max(1, len(loops))
    for ax, (key, title, names) in zip(axes, panels, strict=True):
        for i, loop in enumerate(loops):
            xs, ys = [], []
            for j, name in enumerate(names):
                cell = summary[name][loop]
                if "error" in cell:
                    continue
                value = 1.0 if loop == "asyncio" else cell.get(f"{key}_vs_asyncio")
                if value:
                    xs.append(j + (i - (len(loops) - 1) / 2) * width)
                    ys.append(value)
            ax.bar(xs, ys, width, color=_colour(loop))
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=40, ha="right", fontsize=8)
        ax.set_title(title + " (paired medians; no bar = error cell)", fontsize=10)
        # One fixed colour per loop, whether or not it has bars in this panel.
        ax.legend(handles=[Patch(color=_colour(lp), label=lp) for lp in loops], fontsize=8)
    meta = data["meta"]
    fig.suptitle(f"oxloop benchmarks: {meta['label']} run, {meta['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write(data: dict, json_path: str) -> None:
    chart_ok = chart(data, os.path.join(HERE, "chart.png"))
    text = markdown(data, json_path, "chart.png" if chart_ok else None)
    with open(os.path.join(HERE, "README.md"), "w") as f:
        f.write(text)
    if data["meta"]["label"] == "full" and not data["meta"].get("partial"):
        write_project_readme(data, json_path)


def write_project_readme(data: dict, json_path: str) -> None:
    """Replace the headline table in the project README (between its markers) with this run's."""
    path = os.path.join(HERE, "..", "README.md")
    with open(path) as f:
        text = f.read()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return
    meta = data["meta"]
    table = headline(data, summarise(data))
    block = [
        README_START,
        "",
        f"Full run of {meta['date']} on this machine ({meta['machine']['cores']} cores, CPython "
        f"{meta['python']}, {_reps(meta)}, {meta['seconds']:.0f} s; "
        f"[`benchmarks/{json_path}`](benchmarks/{json_path})). {HEADLINE_NOTE}",
        "",
        *table,
        "",
    ]
    with open(path, "w") as f:
        f.write(text[:start] + "\n".join(block) + text[end:])


def main() -> None:
    import json
    import sys

    # report.py RESULTS.json [--monitor-cost PATH]: the table of a saved run; PATH (a
    # monitor_cost.py --json file) replaces the monitoring instruction table the run holds.
    path = sys.argv[1]
    with open(path) as f:
        data = json.load(f)
    cost = os.path.join(HERE, "results", "monitor-cost.json")
    if "--monitor-cost" in sys.argv:
        with open(sys.argv[sys.argv.index("--monitor-cost") + 1]) as f:
            data["monitor_instructions"] = json.load(f)
    elif "monitor_instructions" not in data and os.path.exists(cost):
        with open(cost) as f:
            data["monitor_instructions"] = json.load(f)
    write(data, os.path.relpath(os.path.abspath(path), HERE))


if __name__ == "__main__":
    main()
