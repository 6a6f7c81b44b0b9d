"""Timing helpers: calibrated batches, cases interleaved round by round so that background load
hits every case alike, and medians with their spread."""

from __future__ import annotations

import gc
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Call = Callable[[], Any]


@dataclass
class Case:
    """One thing to time: `fn()` is one operation."""

    group: str  # e.g. "verify"
    name: str  # e.g. "pyjwt.decode"
    variant: str  # e.g. "RS256"
    fn: Call
    n: int = 0
    per_op: list[float] = field(default_factory=list)  # seconds per operation, one per round

    @property
    def key(self) -> str:
        return f"{self.group}/{self.name}/{self.variant}"

    def summary(self) -> dict[str, Any]:
        values = sorted(self.per_op)
        quartiles = statistics.quantiles(values, n=4) if len(values) >= 2 else values * 3
        return {
            "group": self.group,
            "name": self.name,
            "variant": self.variant,
            "ops_per_batch": self.n,
            "rounds": len(values),
            "median_us": statistics.median(values) * 1e6,
            "min_us": values[0] * 1e6,
            "p25_us": quartiles[0] * 1e6,
            "p75_us": quartiles[-1] * 1e6,
            "samples_us": [v * 1e6 for v in self.per_op],
        }


def run_batch(fn: Call, n: int) -> float:
    """Seconds for `n` calls of `fn`, with the garbage collector paused (as timeit does)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in itertools.repeat(None, n):
            fn()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def calibrate(fn: Call, batch_seconds: float) -> int:
    """How many calls fill about `batch_seconds`."""
    n = 1
    while True:
        elapsed = run_batch(fn, n)
        if elapsed >= batch_seconds / 5 or n >= 1 << 24:
            return max(1, int(n * batch_seconds / max(elapsed, 1e-9)))
        n *= 4


def interleaved(cases: Sequence[Case], rounds: int, batch_seconds: float) -> None:
    """Times every case once per round; fills each case's `per_op`."""
    for case in cases:
        case.fn()  # warm up (and a first correctness check by the caller's fn)
        case.n = calibrate(case.fn, batch_seconds)
    for _ in range(rounds):
        for case in cases:
            case.per_op.append(run_batch(case.fn, case.n) / case.n)


def threaded_throughput(fn: Call, threads: int, n_per_thread: int) -> float:
    """Operations per second with `threads` threads each calling `fn` `n_per_thread` times."""
    barrier = threading.Barrier(threads + 1)
    done = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in itertools.repeat(None, n_per_thread):
            fn()
        done.wait()

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    done.wait()
    elapsed = time.perf_counter() - start
    for w in workers:
        w.join()
    return threads * n_per_thread / elapsed
