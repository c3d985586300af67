"""python -m bench.child SPEC.json OUT.json: one library's measurements, in a
process of its own.

The parent has already pinned this process to its cores and set the thread
variables before anything was imported.  For each case and variant: build the
callable from the shared host data, check its result against hand-written
NumPy (a mismatch is recorded as an error and the variant is not timed), then
time it (or, in memory mode, measure the peak of one step).  The output file is
rewritten after every record, so a crash loses only the case in progress.
"""
import json
import os
import sys
import time
import traceback

import numpy as np

from . import data, handwritten as hw, libs, measure
from .cases import Case, CHAIN_LENGTH, CHAIN_SHAPE, FASHION_BATCH, LR

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS",
               "XLA_FLAGS", "OPENBLAS_CORETYPE", "GPUPROP_BACKEND", "JAX_PLATFORMS",
               "MALLOC_MMAP_THRESHOLD_")
TOLERANCE = 1e-3    # max |got - want| over max |want|, per array


class Mismatch(AssertionError):
    pass


def compare(what, got, want, tol=TOLERANCE):
    """Fail loudly unless every array of `got` matches `want` (host trees)."""
    g, w = _flat(got), _flat(want)
    if len(g) != len(w):
        raise Mismatch(f"{what}: {len(g)} arrays, expected {len(w)}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(g, w)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise Mismatch(f"{what}: array {i} has shape {a.shape}, expected {b.shape}")
        scale = max(np.abs(b).max(initial=0.0), 1e-30)
        err = np.abs(a - b).max(initial=0.0) / scale
        if not err <= tol:         # also catches NaN
            raise Mismatch(f"{what}: array {i} (shape {b.shape}) differs from hand-written "
                           f"NumPy: max |diff| / max |expected| = {err:.3g} > {tol:g}")
        worst = max(worst, err)
    return worst


def _flat(tree):
    if isinstance(tree, (list, tuple)):
        return [leaf for t in tree for leaf in _flat(t)]
    return [tree]


class Inputs:
    """The host data of a case, and hand-written NumPy's answers on it."""

    def __init__(self, case):
        self.case = case
        sizes, nb = case.sizes, case.batch
        if case.workload == "chain":
            self.x = data.chain_input(CHAIN_SHAPE)
        elif case.workload == "epoch":
            X, Y, self.source = data.fashion_mnist(case.extra.get("limit"))
            self.batches = data.batches(X, Y, FASHION_BATCH)
            self.params = data.init_mlp(sizes)
            self.x, self.y = self.batches[0]
        else:
            self.params = data.init_mlp(sizes)
            self.x, self.y = data.batch(sizes, nb)
            if case.workload == "hvp":
                self.v = data.direction(self.params)

    def reference(self):
        """What the variant's first call must give, computed by hand."""
        w = self.case.workload
        if w == "chain":
            return hw.chain_value_and_grad(np, self.x, CHAIN_LENGTH)
        if w == "grad":
            return hw.loss_and_grads(np, self.params, self.x, self.y)
        if w == "hvp":
            return hw.hvp(np, self.params, self.x, self.y, self.v)
        params = [tuple(a.copy() for a in layer) for layer in self.params]
        loss = hw.train_step(np, params, self.x, self.y, LR)
        return loss, params


def build(impl, inputs):
    """The callable to time, the callable whose result is checked, and how
    to read that result back for the check."""
    w = inputs.case.workload
    if w == "chain":
        fn = impl.chain(inputs.x)
    elif w == "grad":
        fn = impl.grad(inputs.params, inputs.x, inputs.y)
    elif w == "hvp":
        fn = impl.hvp(inputs.params, inputs.v, inputs.x, inputs.y)
    else:
        step = impl.train(inputs.params, inputs.x, inputs.y)
        return step, lambda: (step(), step.params())
    return fn, fn


def check(impl, inputs, reference):
    """Run the first call (timed: it includes a jit's compilation) and
    compare its result with hand-written NumPy's."""
    fn, checked = build(impl, inputs)
    t = time.perf_counter()
    out = checked()
    impl.block(out)
    first = time.perf_counter() - t
    err = compare(f"{impl.variant} {inputs.case.key}", impl.host(out), libs.tree_to_host(
        reference, np.asarray))
    return fn, first, err


def run_timing(impl, inputs, reference, spec, clock):
    case = inputs.case
    fn, first, err = check(impl, inputs, reference)
    settings = measure.Settings.for_mode(spec["quick"], case.workload, spec["device"])
    rec = {"first_call": first, "check_error": err}
    if case.workload == "epoch":
        run = impl.epoch(inputs.params, inputs.batches)
        rec.update(measure.time_fn(run, clock, settings, warmup=lambda: run(3)))
        rec["loss"] = float(np.asarray(impl.host(clock.last)))
        rec["batches"], rec["source"] = len(inputs.batches), inputs.source
    else:
        rec.update(measure.time_fn(fn, clock, settings))
    if spec["device"] == "cuda" and case.workload == "train":
        from . import gpu
        rec.update(gpu.step_extras(impl, fn))
    return rec


def run_memory(impl, inputs, reference):
    fn, _, err = check(impl, inputs, reference)
    fn()
    impl.block(fn())          # warm: caches, compiled code, allocator pools
    rec = measure.peak_memory(fn, impl.block, impl.tracemalloc)
    rec["check_error"] = err
    return rec


def matmul_record(xp, case, clock, spec, put):
    """The matrix products of one step alone, on the baseline's namespace."""
    ops = [(put(np.ones(a, np.float32)), put(np.ones(b, np.float32)))
           for a, b in hw.matmul_shapes(case.sizes, case.batch)]

    def products():
        return [a @ b for a, b in ops]
    settings = measure.Settings.for_mode(spec["quick"], case.workload, spec["device"])
    return measure.time_fn(products, clock, settings)


def main(spec_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    result = {"lib": spec["lib"], "pid": os.getpid(),
              "affinity": sorted(os.sched_getaffinity(0)),
              "env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
              "records": [], "errors": []}

    def save():
        with open(out_path, "w") as f:
            json.dump(result, f, indent=1, default=str)

    try:
        impls, info = libs.load(spec["lib"], spec["device"], spec["threads"])
    except ImportError as e:
        result["skipped"] = f"{spec['lib']}: {e}"
        save()
        return 0
    result["info"] = info
    cases = [Case(**c) for c in spec["cases"]]
    for case in cases:
        inputs = reference = None
        for variant in spec["variants"]:
            impl = impls.get(variant)
            if impl is None:
                continue
            where = f"{variant} {case.key}"
            try:
                if inputs is None:
                    inputs = Inputs(case)
                    reference = inputs.reference()
                clock = _clock(impl, spec)
                if spec["mode"] == "memory":
                    rec = run_memory(impl, inputs, reference)
                else:
                    rec = run_timing(impl, inputs, reference, spec, clock)
                _record(result, rec, case, variant, clock)
                if (spec["mode"] == "time" and isinstance(impl, libs.Handwritten)
                        and case.workload == "train"):
                    rec = matmul_record(impl.xp, case, clock, spec, impl.put)
                    _record(result, rec, case, "matmuls-only", clock)
            except Mismatch as e:
                result["errors"].append({"case": case.key, "variant": variant,
                                         "kind": "gradient mismatch", "message": str(e)})
                print(f"  [{spec['lib']}] GRADIENT MISMATCH: {e}", file=sys.stderr, flush=True)
            except Exception as e:  # a crash in one variant: report it, go on
                result["errors"].append({"case": case.key, "variant": variant,
                                         "kind": type(e).__name__, "message": str(e),
                                         "traceback": traceback.format_exc()})
                print(f"  [{spec['lib']}] {where} FAILED: {type(e).__name__}: {e}",
                      file=sys.stderr, flush=True)
            save()
    result["threadpools"] = measure.threadpools()
    save()
    return 0


def _record(result, rec, case, variant, clock):
    """Keep the record, and say its figure at once (a run cut short by a
    timeout still leaves its figures in the log)."""
    rec.update(case=case.key, variant=variant, timer=clock.name)
    result["records"].append(rec)
    if "median" in rec:
        fig = f"{rec['median'] * 1e3:.4g} ms/call (min {rec['min'] * 1e3:.4g}, {rec['runs']} runs)"
    else:
        fig = ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in rec.items()
                        if k.endswith("_peak") and v is not None)
    print(f"  [{result['lib']}] {variant} {case.key}: {fig}", file=sys.stderr, flush=True)


def _clock(impl, spec):
    if spec["device"] == "cuda":
        from . import gpu
        return gpu.clock_for(impl)
    return measure.WallClock(impl.block)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
