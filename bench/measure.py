"""Clocks and memory gauges: warm-up, calibrated inner loops, the median of
repeated runs with min and max; tracemalloc and the RSS high-water mark;
which BLAS and thread pools a process loaded."""
import gc
import statistics
import time
import tracemalloc
from dataclasses import dataclass


@dataclass
class Settings:
    min_run_s: float = 0.05     # one run repeats the call until it lasts this long
    repeats: int = 5            # at least this many runs ...
    max_repeats: int = 15       # ... and more while the budget lasts
    budget_s: float = 2.0

    @classmethod
    def for_mode(cls, quick, workload, device="cpu"):
        if workload == "epoch":     # one call is seconds long already
            return cls(0.0, 2, 2, 0.0) if quick else cls(0.0, 3, 5, 8.0)
        if quick:
            return cls(0.01, 3, 3, 0.2)
        if device == "cuda":        # steady clocks, and gpu_check.sh has minutes
            return cls(0.02, 5, 10, 1.0)
        return cls()


def summarize(per_call):
    return {"median": statistics.median(per_call), "min": min(per_call),
            "max": max(per_call), "runs": len(per_call)}


class WallClock:
    """perf_counter and process_time around a run; `block` waits for the
    library's asynchronous work (JAX) before the clock stops."""
    name = "wall clock (perf_counter), CPU time (process_time)"

    def __init__(self, block):
        self.block = block

    def run(self, fn, n):
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            out = fn()
        self.block(out)
        self.last = out
        return time.perf_counter() - w, time.process_time() - c


def calibrate(fn, clock, settings, warmup=None):
    """After one warm-up call (`warmup`, default fn): how many calls one run
    makes so that it lasts settings.min_run_s."""
    gc.collect()
    clock.run(warmup or fn, 1)
    n = 1
    while True:
        wall, _ = clock.run(fn, n)
        if wall >= settings.min_run_s or n >= 1 << 20:
            return n
        n = min(n * 10, max(n * 2, int(n * settings.min_run_s / max(wall, 1e-9) * 1.2)))


# ---- memory -------------------------------------------------------------------
def _proc_status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0]) * 1024
    return out


def _reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory(fn, block, use_tracemalloc):
    """Peak bytes allocated while fn() runs once: by tracemalloc (arrays of
    NumPy-based libraries are reported to it) and by the RSS high-water mark
    (VmHWM reset through /proc/self/clear_refs), above the level before."""
    gc.collect()
    if use_tracemalloc:
        tracemalloc.start()
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
    reset = _reset_hwm()
    rss0 = _proc_status()["VmRSS"]
    out = fn()
    block(out)
    st = _proc_status()
    res = {"rss_peak": st["VmHWM"] - rss0 if reset else None,
           "rss_note": "VmHWM after a reset, minus VmRSS before" if reset
           else "clear_refs not writable: no RSS figure"}
    if use_tracemalloc:
        res["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
    del out
    return res


def threadpools():
    """The BLAS / OpenMP pools loaded in this process (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed"}]
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads",
            "threading_layer", "architecture")
    return [{k: p[k] for k in keep if k in p} for p in threadpool_info()]
