"""python -m bench.child CMD_FD REPLY_FD: a worker that measures one library,
in a process of its own, on the parent's command.

The parent has already pinned this process to its cores and set the thread
variables before anything was imported.  It keeps one worker per library
alive and interleaves them run by run, so a busy spell of the machine falls on
every library alike.  The commands (one JSON object a line, replies likewise):

  prepare  build a variant's callable for a case from the shared host data,
           check its first result against hand-written NumPy (a mismatch is a
           loud error and the variant is not timed), warm up, and choose how
           many calls one run makes
  run      one run of n calls: wall (or CUDA event) seconds and CPU seconds
  post     what is read after the runs: the epoch's loss; on a GPU, kernels
           per step and peak device memory
  memory   the peak memory of one training step (a fresh worker per variant)
  release  forget a case's data;  finish  the thread pools loaded, then exit
"""
import functools
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


def compare(what, got, want, names=(), tol=TOLERANCE):
    """Fail loudly unless every array of `got` matches `want` (host trees)."""
    g, w = _flat(got), _flat(want)
    if len(g) != len(w):
        raise Mismatch(f"{what}: {len(g)} arrays, expected {len(w)}")
    names = list(names) + [f"array {i}" for i in range(len(names), len(w))]
    worst = 0.0
    for name, a, b in zip(names, g, w):
        if np.asarray(a).dtype != np.float32:
            raise Mismatch(f"{what}: {name} has dtype {np.asarray(a).dtype}, not float32: "
                           f"every library must do the same float32 math")
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise Mismatch(f"{what}: {name} has shape {a.shape}, expected {b.shape}")
        scale = max(np.abs(b).max(initial=0.0), 1e-30)
        err = np.abs(a - b).max(initial=0.0) / scale
        if not err <= tol:         # also catches NaN
            raise Mismatch(f"{what}: {name} (shape {b.shape}) differs from hand-written "
                           f"NumPy: max |diff| / max |expected| = {err:.3g} > {tol:g}")
        worst = max(worst, err)
    return worst


def leaf_names(case):
    """What each compared array is, in the order of the flattened result."""
    layers = [f"{p}{i + 1}" for i in range(len(case.sizes) - 1) for p in "Wb"]
    return {"chain": ["value", "gradient"],
            "grad": ["loss"] + [f"d{p}" for p in layers],
            "jvp": ["loss", "tangent of the loss"],
            "hvp": [f"(Hv) of {p}" for p in layers],
            "perex": [f"per-example d{p}" for p in layers]}.get(
                case.workload, ["loss"] + [f"{p} after one step" for p in layers])


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
            if case.workload in ("jvp", "hvp"):
                self.v = data.direction(self.params)

    def reference(self):
        """What the variant's first call must give, computed by hand."""
        w = self.case.workload
        if w == "chain":
            return hw.chain_value_and_grad(np, self.x, CHAIN_LENGTH)
        if w == "grad":
            return hw.loss_and_grads(np, self.params, self.x, self.y)
        if w == "jvp":
            return hw.jvp(np, self.params, self.x, self.y, self.v)
        if w == "hvp":
            return hw.hvp(np, self.params, self.x, self.y, self.v)
        if w == "perex":
            return hw.per_example_grads(np, self.params, self.x, self.y)
        params = [tuple(a.copy() for a in layer) for layer in self.params]
        loss = hw.train_step(np, params, self.x, self.y, LR)
        return loss, params


def build(impl, inputs):
    """The callable to time; its first result is the one checked."""
    w = inputs.case.workload
    if w == "chain":
        fn = impl.chain(inputs.x)
    elif w == "grad":
        fn = impl.grad(inputs.params, inputs.x, inputs.y)
    elif w == "perex":
        fn = impl.perex(inputs.params, inputs.x, inputs.y)
    elif w in ("jvp", "hvp"):
        name = "hvp_fwdrev" if inputs.case.extra.get("forward_over_reverse") else w
        fn = getattr(impl, name)(inputs.params, inputs.v, inputs.x, inputs.y)
    else:
        fn = impl.train(inputs.params, inputs.x, inputs.y)
    return fn


def check(impl, inputs, reference):
    """Run the first call (timed: it includes a jit's compilation) and
    compare its result with hand-written NumPy's."""
    fn = build(impl, inputs)
    t = time.perf_counter()
    out = fn()
    impl.block(out)
    first = time.perf_counter() - t
    err = compare(f"{impl.variant} {inputs.case.key}", impl.host(out),
                  libs.tree_to_host(reference, np.asarray), leaf_names(inputs.case))
    return fn, first, err



def matmuls(impl, case):
    """The matrix products of one training step alone, on the baseline's
    namespace: what the step would cost with everything else free."""
    ops = [(impl.put(np.ones(a, np.float32)), impl.put(np.ones(b, np.float32)))
           for a, b in hw.matmul_shapes(case.sizes, case.batch)]
    return lambda: [a @ b for a, b in ops]


class Prepared:
    def __init__(self, impl, fn, clock):
        self.impl, self.fn, self.clock = impl, fn, clock


class Worker:
    def __init__(self, lib, device, threads, quick):
        self.lib, self.device, self.threads, self.quick = lib, device, threads, quick
        self.impls, self.info = libs.load(lib, device, threads)
        self.cases = {}         # key -> (Inputs, reference)
        self.prepared = {}      # (key, variant) -> Prepared

    def _inputs(self, case):
        if case.key not in self.cases:
            inputs = Inputs(case)
            self.cases[case.key] = (inputs, inputs.reference())
        return self.cases[case.key]

    def _impl(self, variant):
        if variant == "matmuls-only":
            return next(i for i in self.impls.values() if isinstance(i, libs.Handwritten))
        return self.impls[variant]

    def prepare(self, case, variant):
        case = Case(**case)
        impl = self._impl(variant)
        clock = _clock(impl, self.device)
        settings = measure.Settings.for_mode(self.quick, case.workload, self.device)
        if variant == "matmuls-only":
            fn, first, err, warm = matmuls(impl, case), None, None, None  # nothing to check
        else:
            inputs, reference = self._inputs(case)
            fn, first, err = check(impl, inputs, reference)
            warm = None
            if case.workload == "epoch":
                fn = impl.epoch(inputs.params, inputs.batches)
                warm = functools.partial(fn, 3)
        n = measure.calibrate(fn, clock, settings, warm)
        self.prepared[case.key, variant] = Prepared(impl, fn, clock)
        return {"n": n, "first_call": first, "check_error": err, "timer": clock.name}

    def run(self, key, variant, n):
        p = self.prepared[key, variant]
        wall, cpu = p.clock.run(p.fn, n)
        return {"wall": wall, "cpu": cpu}

    def post(self, key, variant):
        p = self.prepared[key, variant]
        inputs = self.cases.get(key, (None,))[0]
        out = {}
        if inputs is not None and inputs.case.workload == "epoch":
            out.update(loss=float(np.asarray(p.impl.host(p.clock.last[0]))),
                       batches=len(inputs.batches), source=inputs.source)
        if self.device == "cuda" and inputs is not None and inputs.case.workload == "train":
            from . import gpu
            out.update(gpu.step_extras(p.impl, p.fn))
        return out

    def memory(self, case, variant):
        case = Case(**case)
        impl = self._impl(variant)
        inputs, reference = self._inputs(case)
        fn, _, err = check(impl, inputs, reference)
        fn()
        impl.block(fn())          # warm: caches, compiled code, allocator pools
        rec = measure.peak_memory(fn, impl.block, impl.tracemalloc)
        rec["check_error"] = err
        return rec

    def release(self, key):
        self.cases.pop(key, None)
        for k in [k for k in self.prepared if k[0] == key]:
            del self.prepared[k]
        return {}

    def finish(self):
        return {"threadpools": measure.threadpools()}


def _clock(impl, device):
    if device == "cuda":
        from . import gpu
        return gpu.clock_for(impl)
    return measure.WallClock(impl.block)


def serve(cmd_fd, reply_fd, lib, device, threads, quick):
    replies = os.fdopen(reply_fd, "w", buffering=1)

    def reply(msg):
        replies.write(json.dumps(msg, default=str) + "\n")
        replies.flush()

    hello = {"ok": True, "lib": lib, "pid": os.getpid(),
             "affinity": sorted(os.sched_getaffinity(0)),
             "env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ}}
    try:
        worker = Worker(lib, device, threads, quick)
        hello["info"] = worker.info
    except ImportError as e:
        reply(dict(hello, skipped=f"{lib}: {e}"))
        return 0
    reply(hello)
    for line in os.fdopen(cmd_fd):
        msg = json.loads(line)
        op = msg.pop("op")
        try:
            out = getattr(worker, op)(**msg)
            reply({"ok": True, **out})
        except Mismatch as e:
            reply({"ok": False, "kind": "gradient mismatch", "message": str(e)})
        except Exception as e:  # one variant broke: say so, keep serving
            reply({"ok": False, "kind": type(e).__name__, "message": str(e),
                   "traceback": traceback.format_exc()})
        if op == "finish":
            break
    return 0


if __name__ == "__main__":
    cmd, rep, lib, device, threads, quick = sys.argv[1:]
    sys.exit(serve(int(cmd), int(rep), lib, device, int(threads), quick == "quick"))
