"""Loaded into scaletrain's rank process by loop_overhead.py (through PYTHONPATH), nowhere else.

Records this process's CPU clock (time.process_time) each time scaletrain closes a log window
(ThroughputMeter.read, the same instants as its wall-clock step_time_s windows), and writes the list as JSON to
$BENCH_CPU_PROBE when the loop asks for its totals (ThroughputMeter.totals, once, after the last step; the
worker leaves through os._exit, so atexit would never run). CPU seconds per step barely move when other
processes load the machine, unlike wall seconds. Costs one clock read per log window.
"""

import os

_out = os.environ.get("BENCH_CPU_PROBE")
if _out and "RANK" in os.environ:  # a rank, not the launcher (which inherits the same environment)
    import json
    import time

    from scaletrain.rank import metrics

    _marks: list[float] = []
    _read = metrics.ThroughputMeter.read
    _totals = metrics.ThroughputMeter.totals

    def _read_and_mark(self, *args, **kwargs):
        _marks.append(time.process_time())
        return _read(self, *args, **kwargs)

    def _totals_and_dump(self, *args, **kwargs):
        with open(_out, "w") as f:
            json.dump(_marks, f)
        return _totals(self, *args, **kwargs)

    metrics.ThroughputMeter.read = _read_and_mark
    metrics.ThroughputMeter.totals = _totals_and_dump
