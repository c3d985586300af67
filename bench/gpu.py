"""python -m bench --gpu: MLP train steps on a CUDA GPU.

Variants: hand-written CuPy backprop (bench.handwritten with xp=cupy, the
denominator), gpuprop eager, gpuprop jit, gpuprop jit with CUDA graphs (when
gp.jit has a cuda_graph option), PyTorch CUDA eager, JAX jit on the GPU.
Every peer is optional.  Cases: the three MLP sizes at their own batch and at
batch 4096.  Timed with CUDA events (CuPy's or PyTorch's) where the library
runs on the current stream, else by the wall clock around a full sync (JAX).
Beside the time: kernels launched per step (CUPTI through torch.profiler,
when PyTorch is installed), peak device memory of one step, and the step's
time over the time of its matrix products alone.
"""
import sys
import time

from . import report, runner
from .runner import choose_variants, finish
from .cases import BASELINE, SIZES, VARIANTS_GPU, Case, mlp_label
from .measure import WallClock

BIG_BATCH = 4096


def gpu_cases(quick):
    out = []
    for size in (["small"] if quick else ["small", "medium", "large"]):
        sizes, batch = SIZES[size]
        out.append(Case(f"train/{size}", "train", f"train {mlp_label(size)}", sizes, batch))
        out.append(Case(f"train/{size}-b{BIG_BATCH}", "train",
                        f"train {'-'.join(map(str, sizes))} b{BIG_BATCH}", sizes, BIG_BATCH))
    return out


# ---- clocks --------------------------------------------------------------------
class CudaEventClock:
    """Elapsed time between two CUDA events around the runs, on the current
    stream; the CPU time of the process beside it."""

    def __init__(self, kind):
        self.kind = kind
        self.name = f"CUDA events ({kind})"
        if kind == "torch":
            import torch
            self._event = lambda: torch.cuda.Event(enable_timing=True)
            self._elapsed = lambda a, b: a.elapsed_time(b)
            self._sync = torch.cuda.synchronize
        else:
            import cupy
            self._event = cupy.cuda.Event
            self._elapsed = cupy.cuda.get_elapsed_time
            self._sync = cupy.cuda.runtime.deviceSynchronize

    def run(self, fn, n):
        self._sync()
        start, end = self._event(), self._event()
        c, w = time.process_time(), time.perf_counter()
        start.record()
        for _ in range(n):
            out = fn()
        end.record()
        end.synchronize()
        self._sync()
        wall = time.perf_counter() - w
        self.last = out
        events = self._elapsed(start, end) / 1e3
        if events < 0.5 * wall:
            # the work ran on a stream of its own that the events did not see:
            # the wall clock around a device-wide sync is the honest figure
            self.name = f"wall clock + device sync (CUDA events of {self.kind} missed the work)"
            events = wall
        return events, time.process_time() - c


def clock_for(impl):
    from .libs import Torch
    if isinstance(impl, Torch):
        return CudaEventClock("torch")
    if impl.variant.startswith("jax"):
        return WallClock(impl.block)
    return CudaEventClock("cupy")


# ---- per-step extras -----------------------------------------------------------
def count_kernels(fn, block):
    """(kernels, other GPU activities such as copies) in one call of fn, as
    CUPTI sees them through torch.profiler; None where it cannot be measured."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return {"kernels": None, "kernels_note": "PyTorch not installed: launches not counted"}
    try:
        block(fn())
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            block(fn())
            torch.cuda.synchronize()
        gpu_events = [e for e in prof.events()
                      if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA]
        copies = [e for e in gpu_events if e.name.lower().startswith(("memcpy", "memset"))]
        return {"kernels": len(gpu_events) - len(copies), "copies": len(copies)}
    except Exception as e:  # CUPTI missing or busy: not fatal
        return {"kernels": None, "kernels_note": f"torch.profiler failed: {e}"}


def _cupy_peak(fn, block):
    import cupy
    from cupy.cuda import memory_hook

    class Peak(memory_hook.MemoryHook):
        name = "BenchPeak"

        def __init__(self):
            self.now = self.peak = 0

        # CuPy calls hooks with keywords: device_id, size, mem_size, mem_ptr, pmem_id
        def malloc_postprocess(self, **kw):
            self.now += kw["mem_size"]
            self.peak = max(self.peak, self.now)

        def free_postprocess(self, **kw):
            self.now -= kw["mem_size"]

    hook = Peak()
    with hook:
        block(fn())
    return {"device_peak": hook.peak, "pool_held": cupy.get_default_memory_pool().total_bytes(),
            "device_peak_note": "CuPy pool allocations during one step (a CUDA graph's "
                                "buffers are allocated before: see pool_held)"}


def _torch_peak(fn, block):
    import torch
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    block(fn())
    return {"device_peak": torch.cuda.max_memory_allocated() - base}


def _jax_peak(fn, block):
    import jax
    dev = jax.devices()[0]
    before = (dev.memory_stats() or {}).get("bytes_in_use")
    block(fn())
    stats = dev.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return {"device_peak": None if peak is None or before is None else peak - before,
            "device_peak_note": "JAX: the process's peak_bytes_in_use (it cannot be reset) "
                                "minus bytes in use before the step"}


def step_extras(impl, fn):
    from .libs import Torch
    out = {}
    if not impl.variant.startswith("jax"):
        out.update(count_kernels(fn, impl.block))
    else:
        out["kernels_note"] = "JAX: launches not counted"
    try:
        if isinstance(impl, Torch):
            out.update(_torch_peak(fn, impl.block))
        elif impl.variant.startswith("jax"):
            out.update(_jax_peak(fn, impl.block))
        else:
            out.update(_cupy_peak(fn, impl.block))
    except Exception as e:
        out["device_peak_note"] = f"not measured: {type(e).__name__}: {e}"
    return out


# ---- the run -----------------------------------------------------------------------
def device_name():
    try:
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else name
    except Exception as e:
        raise SystemExit(f"bench --gpu: no usable CUDA device through CuPy ({type(e).__name__}: "
                         f"{e}); the GPU benchmarks need CuPy and an NVIDIA GPU") from e


def short_table(cases, records, baseline):
    """ms per step, ratio to CuPy, ratio to the matmuls alone, kernels, peak."""
    by = {(r["case"], r["variant"]): r for r in records}
    head = ["case", "variant", "ms/step", "x cupy", "x matmuls", "kernels", "peak MiB"]
    body = []
    for case in cases:
        base, mm = by.get((case.key, baseline)), by.get((case.key, "matmuls-only"))
        for v in VARIANTS_GPU:
            r = by.get((case.key, v))
            if r is None:
                continue
            peak = r.get("device_peak")
            body.append([case.label, v, f"{r['median'] * 1e3:.3f}",
                         f"{r['median'] / base['median']:.2f}" if base else "-",
                         f"{r['median'] / mm['median']:.2f}" if mm else "-",
                         "-" if r.get("kernels") is None else str(r["kernels"]),
                         "-" if peak is None else f"{peak / report.MiB:.1f}"])
    return head, body


def run(args):
    name = device_name()
    chosen = gpu_cases(args.quick)
    variants = choose_variants(args, VARIANTS_GPU, BASELINE["cuda"])
    meta = report.meta(args, "cuda", name)
    run = runner.run_all(variants, chosen, threads=1, device="cuda",
                         quick=args.quick, timeout=args.timeout)
    records, errors, results = run.records, run.errors, list(run.libs.values())
    rows = report.build_rows(chosen, records, BASELINE["cuda"])
    head, body = short_table(chosen, records, BASELINE["cuda"])
    text = report.render(meta, "n/a (GPU)", rows, results, BASELINE["cuda"], errors, False)
    md = report.render(meta, "n/a (GPU)", rows, results, BASELINE["cuda"], errors, True)
    md += "\n\nPer step on the GPU:\n\n" + report.md_table(head, body) + "\n"
    path = report.save(args.out, meta, {"meta": meta, "libraries": results, "records": records,
                                        "rows": rows, "errors": errors}, md, "_gpu")
    print(text)
    print(f"results: {path}.json, {path}.md\n")
    print(f"GPU summary ({name}; CUDA events; x matmuls = step time over its matrix "
          f"products alone):")
    print(report.text_table(head, body))
    sys.stdout.flush()
    return finish(errors)
