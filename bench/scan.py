"""lax.scan against the same loop unrolled in Python, both under jit: the
gradient of a tanh RNN's loss (100 steps, hidden 128, batch 32, float32,
one thread): time per call (median of repeats) and the size of the staged
program; JAX's scan beside it when installed.

    python -m bench.scan [--steps 100 --hidden 128 --batch 32 --repeat 20]
"""
import argparse
import os
import statistics
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS"):
    os.environ.setdefault(_v, "1" if _v != "XLA_FLAGS" else
                          "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

import gpuprop as gp  # noqa: E402
import gpuprop.numpy as gnp  # noqa: E402
from gpuprop import lax  # noqa: E402


def loss_scan(w, u, xs, h0, np_=gnp, scan=lax.scan):
    def step(h, x):
        h = np_.tanh(h @ w + x @ u)
        return h, None
    h, _ = scan(step, h0, xs)
    return np_.sum(h * h)


def loss_unrolled(w, u, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = gnp.tanh(h @ w + xs[t] @ u)
    return gnp.sum(h * h)


def timed(f, args, repeat):
    f(*args)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = f(*args)
        getattr(out[0] if isinstance(out, tuple) else out, "block_until_ready", lambda: None)()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.scan", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeat", type=int, default=20)
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    n = a.hidden
    w = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    u = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    xs = rng.standard_normal((a.steps, a.batch, n)).astype(np.float32)
    h0 = np.zeros((a.batch, n), np.float32)
    args = (w, u, xs, h0)
    scan_f = gp.jit(gp.grad(loss_scan, (0, 1)))
    unrolled = gp.jit(gp.grad(loss_unrolled, (0, 1)))
    g1, g2 = scan_f(*args), unrolled(*args)
    worst = max(float(np.abs(x - y).max()) for x, y in zip(g1, g2))
    sizes = [len(f.lower(*args).program.eqns) for f in (scan_f, unrolled)]
    t_scan, t_unrolled = timed(scan_f, args, a.repeat), timed(unrolled, args, a.repeat)
    print(f"tanh RNN, {a.steps} steps, hidden {n}, batch {a.batch}, float32, jit(grad), "
          f"median of {a.repeat}; load {os.getloadavg()[0]:.2f}")
    print(f"  lax.scan:  {t_scan * 1e3:8.2f} ms, {sizes[0]:5d} equations")
    print(f"  unrolled:  {t_unrolled * 1e3:8.2f} ms, {sizes[1]:5d} equations")
    print(f"  ratio {t_scan / t_unrolled:.2f}x (goal <= 1.1); gradients differ by at most "
          f"{worst:.1e}")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return
    jf = jax.jit(jax.grad(lambda *b: loss_scan(*b, np_=jnp, scan=jax.lax.scan), (0, 1)))
    t_jax = timed(jf, args, a.repeat)
    print(f"  jax.lax.scan (jit): {t_jax * 1e3:8.2f} ms ({t_jax / t_unrolled:.2f}x gpuprop "
          f"unrolled)")


if __name__ == "__main__":
    main()
