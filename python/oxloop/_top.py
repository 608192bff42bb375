"""``python -m oxloop top [PID]``: a live view of a monitored oxloop program, refreshing like top.

It reads the program's live socket (see ``_live``) once per refresh and shows, per loop: lag,
callbacks per second, busy share, the tasks using the most loop time, and the recent slow or
blocking events with the line they were at. ``q`` or Ctrl-C quits; it also ends when the program
does. Without a terminal (or with ``-n``) it prints plain screens, one per refresh.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import select
import shutil
import socket
import sys
import time

from . import _live


def fetch(path: str) -> dict:
    """One snapshot from the live socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5.0)
        s.connect(path)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return json.loads(b"".join(chunks))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(path: str) -> None:
    # The socket of a program killed by a signal (no exit handler ran); the directory is ours.
    try:
        os.unlink(path)
    except OSError:
        pass


def find(pid: "int | None") -> "tuple[int, str] | str":
    """The pid and socket to watch, or an error message."""
    if pid is not None:
        path = _live.socket_path(pid)
        if not os.path.exists(path):
            return f"process {pid} has no oxloop live socket ({path}); is it monitored?"
        if not _alive(pid):
            _remove_stale(path)
            return f"process {pid} is not running"
        return pid, path
    found = []
    for path in sorted(glob.glob(os.path.join(_live.socket_dir(), "*.sock"))):
        name = os.path.basename(path)[: -len(".sock")]
        if not name.isdigit():
            continue
        if _alive(int(name)):
            found.append((int(name), path))
        else:
            _remove_stale(path)
    if not found:
        return (
            "no monitored oxloop program found; run it with `python -m oxloop --monitor`, "
            "OXLOOP_MONITOR=1 or oxloop.run(main(), monitor=True)"
        )
    if len(found) > 1:
        return "several monitored programs, name one: " + " ".join(str(p) for p, _ in found)
    return found[0]


def _ms(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.2f} ms"


def _rate(now, prev, key, dt) -> str:
    if prev is None or dt <= 0:
        return f"{now[key] / now['uptime']:,.0f}" if now["uptime"] > 0 else "-"
    return f"{(now[key] - prev[key]) / dt:,.0f}"


def _busy(now, prev) -> str:
    if now["busy_time"] is None:
        return "-"
    b, w = now["busy_time"], now["wait_time"]
    if prev is not None and prev.get("busy_time") is not None:
        b, w = b - prev["busy_time"], w - prev["wait_time"]
    total = b + w
    return f"{100 * b / total:.1f}%" if total > 0 else "-"


def render(snap: dict, prev: "dict | None", dt: float, width: int) -> list[str]:
    """The screen's lines for one snapshot (``prev``: the one before, ``dt`` seconds earlier)."""
    argv = " ".join(snap.get("argv") or [])
    lines = [
        f"oxloop top - pid {snap['pid']} - {argv} - Python {snap['python']}"
        f"    {time.strftime('%H:%M:%S')}",
    ]
    prev_loops = {lp["id"]: lp for lp in (prev or {}).get("loops", [])}
    if not snap["loops"]:
        lines.append("no monitored loop in this process right now")
    for lp in snap["loops"]:
        before = prev_loops.get(lp["id"])
        state = "running" if lp["running"] else "not running"
        lines += [
            "",
            f"loop {lp['id']} {state}  uptime {lp['uptime']:.1f} s  "
            f"tasks {lp['tasks_pending']} (created {lp['tasks_created']})",
            f"lag (last 10 s)  p50 {_ms(lp['lag_p50'])}  p99 {_ms(lp['lag_p99'])}  "
            f"max {_ms(lp['lag_max'])}",
            f"callbacks/s {_rate(lp, before, 'callbacks', dt)}  "
            f"ticks/s {_rate(lp, before, 'ticks', dt)}  "
            f"I/O events/s {_rate(lp, before, 'io_events', dt)}  busy {_busy(lp, before)}  "
            f"slow events {lp['slow_callbacks']}",
            "",
            f"{'TASK':<24} {'COROUTINE':<28} {'LOOP TIME':>10} {'% BUSY':>7} {'STEPS':>7}",
        ]
        busy = lp["busy_time"] or 0.0
        for t in lp["top_tasks"]:
            share = f"{100 * t['time'] / busy:.1f}" if busy > 0 else "-"
            name = t["name"] + (" (done)" if t["done"] else "")
            lines.append(
                f"{name[:24]:<24} {(t['coro'] or '-')[:28]:<28} {_ms(t['time']):>10} "
                f"{share:>7} {t['steps']:>7}"
            )
        lines += ["", "RECENT SLOW / BLOCKING (newest first)"]
        if not lp["slow_events"]:
            lines.append("none")
        for e in reversed(lp["slow_events"][-8:]):
            who = f"task {e['task']!r} ({e['coro']}())" if e["task"] else "callback"
            held = "holding" if e["blocking"] else "held"
            at = f"{e['where']} in {e['function']}" if e["where"] else "(no stack captured)"
            stamp = time.strftime("%H:%M:%S", time.localtime(e["at"]))
            lines.append(f"{stamp} {held} {_ms(e['duration']):>9}  {who}  {at}")
    return [line[:width] for line in lines]


class _Screen:
    """The terminal: alternate screen and cbreak input on a tty, plain prints otherwise."""

    def __init__(self, interactive: bool):
        self.interactive = interactive
        self.saved = None

    def __enter__(self):
        if self.interactive:
            import termios
            import tty

            self.saved = termios.tcgetattr(sys.stdin.fileno())
            tty.setcbreak(sys.stdin.fileno())
            sys.stdout.write("\x1b[?1049h\x1b[?25l")
        return self

    def __exit__(self, *exc):
        if self.interactive:
            import termios

            sys.stdout.write("\x1b[?25h\x1b[?1049l")
            sys.stdout.flush()
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self.saved)

    def show(self, lines: list[str]) -> None:
        if self.interactive:
            # Never write past the last row: the terminal would scroll.
            rows = shutil.get_terminal_size().lines
            lines = [*lines[: max(rows - 2, 1)], "", "(q quits)"][:rows]
            body = "\x1b[K\r\n".join(lines)
            sys.stdout.write("\x1b[H" + body + "\x1b[K\x1b[J")
        else:
            sys.stdout.write("\n".join(lines) + "\n\n")
        sys.stdout.flush()

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; ``True`` if the user asked to quit."""
        if not self.interactive:
            time.sleep(seconds)
            return False
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sys.stdin], [], [], left)
            if ready:
                key = os.read(sys.stdin.fileno(), 32)
                if b"q" in key or b"Q" in key:
                    return True
        return False


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m oxloop top", description="Live view of a monitored oxloop program."
    )
    parser.add_argument(
        "pid", nargs="?", type=int, help="the program's pid (default: the only one)"
    )
    parser.add_argument("-d", "--delay", type=float, default=1.0, help="seconds between refreshes")
    parser.add_argument("-n", "--iterations", type=int, default=0, help="stop after N screens")
    args = parser.parse_args(argv)
    found = find(args.pid)
    if isinstance(found, str):
        print(f"oxloop top: {found}", file=sys.stderr)
        return 1
    pid, path = found
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and args.iterations == 0
    prev = None
    shown = 0
    ended = None
    try:
        with _Screen(interactive) as screen:
            while True:
                try:
                    snap = fetch(path)
                except (OSError, ValueError):
                    ended = f"oxloop top: process {pid} ended"
                    break
                now = time.monotonic()
                dt = now - prev[0] if prev else 0.0
                width = shutil.get_terminal_size().columns if interactive else 10_000
                screen.show(render(snap, prev[1] if prev else None, dt, width))
                prev = (now, snap)
                shown += 1
                if args.iterations and shown >= args.iterations:
                    break
                if screen.wait(args.delay):
                    break
    except KeyboardInterrupt:
        pass
    if ended:
        print(ended)
    return 0
