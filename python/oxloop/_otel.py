"""OpenTelemetry metrics of monitored loops, when ``opentelemetry-api`` is installed.

Observable instruments on the meter ``oxloop``, read at each collection from ``oxloop.stats()``
of every monitored loop (attribute ``loop``, the loop's id):

- ``oxloop.loop.lag`` (gauge, s): lag over the last 10 s, attribute ``quantile`` = p50/p99/max;
- ``oxloop.loop.busy_ratio`` (gauge): busy time / (busy + waiting in the poller) since start;
- ``oxloop.loop.slow_events`` (counter): callbacks or task steps over the slow threshold;
- ``oxloop.loop.callbacks`` (counter), ``oxloop.loop.ticks`` (counter).

The API has no observable histogram, so lag is exported as quantile gauges. Without the package,
nothing is imported.
"""

from __future__ import annotations

import importlib.util

_registered = False


def available() -> bool:
    """Whether ``opentelemetry-api`` is installed."""
    try:
        return importlib.util.find_spec("opentelemetry.metrics") is not None
    except ModuleNotFoundError:
        return False


def _each():
    from . import _monitor

    for loop in list(_monitor._monitors.keys()):
        try:
            yield hex(id(loop)), _monitor.stats(loop)
        except Exception:
            continue


def register() -> bool:
    """Create the instruments once per process; ``False`` without opentelemetry-api."""
    global _registered
    if _registered:
        return True
    if not available():
        return False
    from opentelemetry import metrics

    def lag(options):
        for loop_id, s in _each():
            if s.lag_p50 is None:
                continue
            for q, v in (("p50", s.lag_p50), ("p99", s.lag_p99), ("max", s.lag_max)):
                yield metrics.Observation(v, {"loop": loop_id, "quantile": q})

    def busy(options):
        for loop_id, s in _each():
            if s.busy_ratio is not None:
                yield metrics.Observation(s.busy_ratio, {"loop": loop_id})

    def counter(field):
        def observe(options):
            for loop_id, s in _each():
                yield metrics.Observation(getattr(s, field), {"loop": loop_id})

        return observe

    meter = metrics.get_meter("oxloop")
    meter.create_observable_gauge(
        "oxloop.loop.lag", [lag], unit="s", description="Loop lag over the last 10 s"
    )
    meter.create_observable_gauge(
        "oxloop.loop.busy_ratio", [busy], description="Share of loop time spent running code"
    )
    meter.create_observable_counter(
        "oxloop.loop.slow_events",
        [counter("slow_callbacks")],
        description="Callbacks or task steps that held the loop past slow_callback_duration",
    )
    meter.create_observable_counter(
        "oxloop.loop.callbacks", [counter("callbacks")], description="Callbacks run"
    )
    meter.create_observable_counter(
        "oxloop.loop.ticks", [counter("ticks")], description="Loop iterations"
    )
    _registered = True
    return True
