"""gp.checkpoint's trade: memory and time of the gradient of a deep tanh MLP
(32 layers of width 1024, batch 256) with each layer checkpointed, against
the same gradient without (eager, float32, one thread; memory from
tracemalloc, which sees NumPy's allocations; time: median of repeats).

Two memory figures: what the forward pass keeps for the backward pass (the
memory checkpointing trades: held between the two passes, by gp.vjp), and
the peak of the whole gradient.  At this shape the peak is set by the 32
weight gradients the call returns (4 MiB each, 128 MiB in all: more than all
activations together, which the backward pass frees as it goes), so it
moves little.

    python -m bench.remat [--layers 32 --width 1024 --batch 256 --repeat 3]
"""
import argparse
import os
import statistics
import time
import tracemalloc

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

import gpuprop as gp  # noqa: E402
import gpuprop.numpy as gnp  # noqa: E402


def layer(w, x):
    return gnp.tanh(x @ w)


def loss(ws, x, remat):
    f = gp.checkpoint(layer) if remat else layer
    for w in ws:
        x = f(w, x)
    return gnp.sum(x * x)


def measure(ws, x, remat, repeat):
    grad = gp.grad(loss)
    grad(ws, x, remat)                          # warm up
    tracemalloc.start()
    _, back = gp.vjp(lambda ws: loss(ws, x, remat), ws)
    kept = tracemalloc.get_traced_memory()[0]
    del back
    tracemalloc.stop()
    tracemalloc.start()
    grads = grad(ws, x, remat)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        grad(ws, x, remat)
        times.append(time.perf_counter() - t)
    return kept, peak, statistics.median(times), grads


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.remat", description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    ws = [(rng.standard_normal((a.width, a.width)) / np.sqrt(a.width)).astype(np.float32)
          for _ in range(a.layers)]
    x = rng.standard_normal((a.batch, a.width)).astype(np.float32)
    plain = measure(ws, x, False, a.repeat)
    remat = measure(ws, x, True, a.repeat)
    worst = max(float(np.abs(u - v).max()) for u, v in zip(plain[3], remat[3]))
    print(f"{a.layers} layers of width {a.width}, batch {a.batch}, float32, eager grad, "
          f"median of {a.repeat}; load {os.getloadavg()[0]:.2f}")
    for label, (kept, peak, t, _) in (("without checkpoint", plain), ("checkpoint/layer", remat)):
        print(f"  {label:18s}: kept for backward {kept / 2**20:7.1f} MiB, peak "
              f"{peak / 2**20:7.1f} MiB, {t * 1e3:8.1f} ms")
    print(f"  ratio: kept {remat[0] / plain[0]:.2f}x (goal <= 0.6), peak "
          f"{remat[1] / plain[1]:.2f}x, time {remat[2] / plain[2]:.2f}x (goal <= 1.5); "
          f"gradients differ by at most {worst:.1e}")


if __name__ == "__main__":
    main()
