"""Data-parallel training speed on CPU ranks, and an NCCL smoke check.

    python bench/distributed.py                  # table: 1 and 2 ranks (mpiexec)
    python bench/distributed.py --ranks 1 2 4 --seconds 5
    python bench/distributed.py --nccl-smoke     # on a GPU machine (bench/gpu_check.sh)

One step is what a data-parallel Trainer does: each rank takes its share of
a global batch of fixed size, computes the gradient of an MLP's loss with a
jitted value_and_grad, averages gradients and loss with one allreduce_mean,
and applies SGD with a jitted update.  Each rank runs on one BLAS thread;
the "1 x 2 threads" row is one process using both cores through BLAS, the
alternative to ranks on one machine.  The driver runs each configuration
with `mpiexec -n K python bench/distributed.py --worker ...` and prints what
rank 0 reports.
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"small": ((64, 128, 128, 10), 128), "medium": ((784, 512, 512, 10), 512)}


# ---- one rank -----------------------------------------------------------------
def worker(model, seconds, kind):
    import gpuprop as gp
    import gpuprop.numpy as gnp
    from gpuprop.distributed import get_communicator

    sizes, batch = MODELS[model]
    comm = get_communicator(kind)
    rng = np.random.default_rng(0)
    params = [{"W": gp.asarray((rng.normal(size=(m, n)) / np.sqrt(m)).astype(np.float32)),
               "b": gp.asarray(np.zeros(n, np.float32))} for m, n in zip(sizes, sizes[1:])]
    params = comm.broadcast(params)
    x = rng.normal(size=(batch * 8, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch * 8)
    onehot = np.eye(sizes[-1], dtype=np.float32)[y]

    def loss(ps, xb, yb):
        h = xb
        for layer in ps[:-1]:
            h = gnp.tanh(h @ layer["W"] + layer["b"])
        z = h @ ps[-1]["W"] + ps[-1]["b"]
        z = z - gnp.max(z, axis=1, keepdims=True)
        return gnp.mean(gnp.log(gnp.sum(gnp.exp(z), axis=1)) - gnp.sum(z * yb, axis=1))

    grad_step = gp.jit(gp.value_and_grad(loss))
    update = gp.jit(lambda ps, gs: gp.tree_map(lambda p, g: p - 0.05 * g, ps, gs))
    shard = comm.shard(batch)
    batches = [(gp.asarray(x[i:i + batch][shard]), gp.asarray(onehot[i:i + batch][shard]))
               for i in range(0, len(x), batch)]

    def step(i):
        xb, yb = batches[i % len(batches)]
        value, grads = grad_step(params_box[0], xb, yb)
        t = time.perf_counter()
        value, grads = comm.allreduce_mean((value, grads))
        comm_time[0] += time.perf_counter() - t
        params_box[0] = update(params_box[0], grads)
        return value

    params_box, comm_time = [params], [0.0]
    for i in range(5):                          # compile, warm the caches
        step(i)
    comm.barrier()
    comm_time[0], n, t0, rates = 0.0, 0, time.perf_counter(), []
    while True:                                 # rank 0 decides when to stop
        t = time.perf_counter()
        for _ in range(10):
            step(n)
            n += 1
        rates.append(10 / (time.perf_counter() - t))
        done = comm.allreduce_sum(float(time.perf_counter() - t0 >= seconds and comm.rank == 0))
        if done:
            break
    elapsed = time.perf_counter() - t0
    final_loss = float(gp.to_numpy(step(n)))   # the same on every rank
    grads = grad_step(params_box[0], *batches[0])
    alone = []
    for _ in range(20):                         # the collective alone, ranks in step
        comm.barrier()
        t = time.perf_counter()
        comm.allreduce_mean(grads)
        alone.append(time.perf_counter() - t)
    n_params = sum(int(np.prod(p.shape)) for p in gp.tree_leaves(params_box[0]))
    if comm.rank == 0:
        print(json.dumps({"model": model, "ranks": comm.size, "kind": comm.kind,
                          "steps": n, "seconds": elapsed, "steps_per_s": float(np.median(rates)),
                          "best_steps_per_s": max(rates), "mean_steps_per_s": n / elapsed,
                          "global_batch": batch,
                          "params": n_params, "comm_ms": 1e3 * comm_time[0] / n,
                          "alone_ms": 1e3 * float(np.median(alone)),
                          "final_loss": final_loss}), flush=True)


# ---- the driver ---------------------------------------------------------------------
def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _launch(model, ranks, threads, seconds, kind):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.pop("GPUPROP_BACKEND", None)
    cmd = [sys.executable, __file__, "--worker", model, "--seconds", str(seconds),
           "--kind", kind]
    if kind == "mpi":
        cmd = [_mpiexec(), "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         timeout=120 + 4 * seconds, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return json.loads(lines[-1])


def drive(models, rank_counts, seconds):
    if importlib.util.find_spec("mpi4py") is None:
        raise SystemExit("bench/distributed.py needs mpi4py and mpiexec: pip install -e '.[mpi]'")
    if _mpiexec() is None:
        raise SystemExit("no mpiexec beside python or on PATH: pip install -e '.[mpi]'")
    print(f"data-parallel MLP training step on the CPU ({os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the start), float32, fixed global batch, {seconds:g} s "
          f"per row")
    head = (f"{'model':<22} {'ranks x threads':<22} {'steps/s':>9} {'best':>8} {'samples/s':>10} "
            f"{'speedup':>8} {'allreduce ms':>13} {'alone ms':>9}")
    print(head)
    print("-" * len(head))
    for model in models:
        sizes, batch = MODELS[model]
        name = f"{'-'.join(map(str, sizes))} b{batch}"
        rows = [("1 x 1 (no MPI)", 1, 1, "single")]
        rows += [(f"{k} x 1 (mpi)", k, 1, "mpi") for k in rank_counts]
        rows += [("1 x 2 threads (no MPI)", 1, 2, "single")]
        base = None
        for label, ranks, threads, kind in rows:
            r = _launch(model, ranks, threads, seconds, kind)
            base = base or r["steps_per_s"]
            print(f"{name:<22} {label:<22} {r['steps_per_s']:>9.1f} {r['best_steps_per_s']:>8.1f} "
                  f"{r['steps_per_s'] * batch:>10.0f} {r['steps_per_s'] / base:>7.2f}x "
                  f"{r['comm_ms']:>13.3f} {r['alone_ms']:>9.3f}", flush=True)
    print(f"steps/s: median over windows of 10 steps (best: the fastest window); speedup: "
          f"over 1 x 1 (no MPI); allreduce ms: wall time per step in allreduce_mean (gradients "
          f"and loss, one collective), waiting for the slower rank included; alone ms: the "
          f"same collective on the gradients just after a barrier (transfer and packing).  "
          f"Load average at the end {os.getloadavg()[0]:.1f}: above the core count, other "
          f"processes share the cores and the multi-core rows suffer most.")


# ---- NCCL smoke ------------------------------------------------------------------------
def nccl_smoke():
    """Exit 0 when the NCCL communicator works on this GPU: allreduce and
    broadcast of mixed-dtype pytrees through NCCL itself (the flat collectives
    run even with one rank, where the public methods shortcut), allreduce_sum,
    barrier; 4 when there is no usable GPU or NCCL; 1 on a wrong result."""
    import gpuprop as gp
    from gpuprop import distributed as dist
    try:
        gp.set_backend("cupy")
        comm = dist.get_communicator("nccl")
    except Exception as e:
        print(f"nccl smoke: skipped, no usable GPU/NCCL ({type(e).__name__}: {e})")
        return 4
    import cupy
    from cupy.cuda import nccl
    be = gp.backend.current()
    rng = np.random.default_rng(0)
    tree = {"w": rng.normal(size=(300, 7)).astype(np.float32), "b": rng.normal(size=3),
            "h": np.arange(5, dtype=np.float16), "c": np.array([1 + 2j], np.complex64)}
    dtree = gp.device_put(tree)
    leaves, td = gp.tree_flatten(dtree)
    dtype = dist._reduce_dtype(leaves)
    summed = dist.unpack(be.xp, comm._allreduce_flat(dist.pack(be.xp, leaves, dtype), "smoke"),
                         leaves)
    got = gp.to_numpy(gp.tree_unflatten(td, summed))
    mixed = gp.device_put({"i": np.array([7, -8, 9]), "m": np.array([True, False]),
                           "f": np.float32(2.5) * np.ones((2, 3), np.float32)})
    ml, md = gp.tree_flatten(mixed)
    sent = dist.unpack_bytes(comm._bcast_flat(dist.pack_bytes(be.xp, ml), 0, "smoke"), ml)
    back = gp.to_numpy(gp.tree_unflatten(md, sent))
    ok = all(got[k].dtype == tree[k].dtype and np.array_equal(got[k], tree[k]) for k in tree)
    ok &= all(np.array_equal(back[k], gp.to_numpy(mixed[k])) and back[k].dtype == mixed[k].dtype
              for k in back)
    ok &= comm.allreduce_sum((2, cupy.asarray(1.5))) == (2 * comm.size, 1.5 * comm.size)
    comm.barrier()
    big = cupy.ones(16 << 20, np.float32)          # 64 MB
    comm._allreduce_flat(big, "smoke")
    cupy.cuda.get_current_stream().synchronize()
    t = time.perf_counter()
    for _ in range(10):
        comm._allreduce_flat(big, "smoke")
    ms = (time.perf_counter() - t) / 10 * 1e3
    print(f"nccl smoke: {'OK' if ok else 'WRONG RESULTS'}: NCCL {nccl.get_version()}, rank "
          f"{comm.rank} of {comm.size} on GPU {comm.device}, {be.describe}; 64 MB float32 "
          f"allreduce {ms:.2f} ms")
    return 0 if ok else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    p.add_argument("--seconds", type=float, default=3.0, help="measured time per row")
    p.add_argument("--nccl-smoke", action="store_true", help="check the NCCL communicator")
    p.add_argument("--worker", choices=list(MODELS), help=argparse.SUPPRESS)
    p.add_argument("--kind", default="mpi", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.nccl_smoke:
        return nccl_smoke()
    if args.worker:
        return worker(args.worker, args.seconds, args.kind)
    drive(args.models, args.ranks, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
