"""One rank of the multi-process checks in test_distributed.py:

    mpiexec -n 2 python tests/distributed_worker.py check | timeout | abort-on-timeout | fail

check             broadcast, allreduce_mean and allreduce_sum against hand-computed
                  values, and data-parallel SGD of a small MLP against one process
                  on the full batches (float64), under the numpy and strict backends.
timeout           rank 1 skips a collective; rank 0 gets CollectiveTimeoutError
                  (run with GPUPROP_COLLECTIVE_TIMEOUT=3), then aborts the job.
abort-on-timeout  the same with GPUPROP_ABORT_ON_TIMEOUT=1: the timeout aborts.
fail              rank 1 raises inside abort_on_error(); the job ends at once.

Each rank prints "rank R: OK <what>" lines; a failed check aborts the job.
"""
import sys
import time

import numpy as np

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.distributed import CollectiveTimeoutError, get_communicator
from strict_backend import strict_backend
from support import dev, host

gp.register_backend("strict", strict_backend)


def same(got, want, dtype):
    got = host(got)
    assert got.dtype == np.dtype(dtype), (got.dtype, dtype)
    np.testing.assert_array_equal(got, np.asarray(want, dtype=dtype))


# ---- (a) the collectives against hand-computed values ------------------------------
def check_collectives(comm):
    r = comm.rank       # two ranks: r = 0, 1
    tree = {"a": dev([1.0 + r, 2.0 * (1 + r)], np.float32),
            "b": (dev(np.full((2, 2), 10.0 * r)),),
            "c": [dev([r], np.float16), None]}
    m = comm.allreduce_mean(tree)
    same(m["a"], [1.5, 3.0], np.float32)
    same(m["b"][0], np.full((2, 2), 5.0), np.float64)
    same(m["c"][0], [0.5], np.float16)
    assert m["c"][1] is None and isinstance(m["b"], tuple)

    # weighted: ranks hold 2 and 3 with weights 1 and 2 -> (1*2 + 2*3) / 3
    w = comm.allreduce_mean({"g": dev([2.0 + r])}, weight=r + 1)
    np.testing.assert_allclose(host(w["g"]), [8.0 / 3.0], rtol=1e-15)
    # a rank with weight 0 contributes nothing, even NaN
    w0 = comm.allreduce_mean({"g": dev([4.0 if r == 0 else np.nan])}, weight=2 - 2 * r)
    same(w0["g"], [4.0], np.float64)

    # broadcast of any dtype, from rank 0 and from rank 1
    mine = {"i": dev(np.array([7, 8, 9]) * (1 - r), np.int64),
            "m": dev([r == 0, False, r == 0], bool),
            "f": dev([[1.5 - r]], np.float32),
            "z": dev(np.zeros((0, 3)), np.float32),
            "s": dev(3.25 * (1 - r), np.float64)}
    got = comm.broadcast(mine)
    same(got["i"], [7, 8, 9], np.int64)
    same(got["m"], [True, False, True], bool)
    same(got["f"], [[1.5]], np.float32)
    same(got["z"], np.zeros((0, 3)), np.float32)
    same(got["s"], 3.25, np.float64)
    got1 = comm.broadcast(mine, root=1)
    same(got1["i"], [0, 0, 0], np.int64)
    same(got1["f"], [[0.5]], np.float32)

    # host sums for metrics: types follow the inputs
    s = comm.allreduce_sum((r + 1, 0.25 * r, dev(1.5, np.float32), dev([r, 1])))
    assert s[0] == 3 and type(s[0]) is int, s
    assert s[1] == 0.25 and type(s[1]) is float, s
    assert s[2] == 3.0 and type(s[2]) is float, s
    np.testing.assert_array_equal(s[3], [1, 2])

    # different shapes on the two ranks: a clear error on both, and no hang after
    try:
        comm.allreduce_mean({"a": dev(np.zeros(2 + r))})
    except ValueError as e:
        assert "differ from another rank" in str(e), e
    else:
        raise AssertionError("mismatched trees were accepted")
    comm.barrier()


# ---- (b) data-parallel SGD equals one process on the full batches ----------------------
def init(seed):
    rng = np.random.default_rng(seed)
    return {"W1": dev(rng.normal(size=(4, 8)) * 0.5), "b1": dev(rng.normal(size=8) * 0.1),
            "W2": dev(rng.normal(size=(8, 2)) * 0.5), "b2": dev(np.zeros(2))}


def loss(p, x, y):
    h = gnp.tanh(x @ p["W1"] + p["b1"])
    return gnp.mean((h @ p["W2"] + p["b2"] - y) ** 2)


def sgd(params, grads, lr=0.2):
    return gp.tree_map(lambda p, g: p - lr * g, params, grads)


def check_sgd(comm):
    rng = np.random.default_rng(123)
    x, y = dev(rng.normal(size=(95, 4))), dev(rng.normal(size=(95, 2)))
    # five global batches of 16 (8 rows a rank), then one of 15 (8 + 7: weighted)
    batches = [(16 * i, 16 * i + 16, False) for i in range(5)] + [(80, 95, True)]
    grad = gp.grad(loss)

    ref = init(0)
    for lo, hi, _ in batches:
        ref = sgd(ref, grad(ref, x[lo:hi], y[lo:hi]))

    params = comm.broadcast(init(comm.rank))      # every rank starts from rank 0's
    for lo, hi, weighted in batches:
        part = comm.shard(hi - lo)
        xb, yb = x[lo:hi][part], y[lo:hi][part]
        g = grad(params, xb, yb)
        g = comm.allreduce_mean(g, weight=len(xb)) if weighted else comm.allreduce_mean(g)
        params = sgd(params, g)

    moved = max(float(np.max(np.abs(host(p) - host(q)))) for p, q in
                zip(gp.tree_leaves(params), gp.tree_leaves(init(0))))
    assert moved > 1e-3, f"training did not move the parameters ({moved})"
    for k in ref:
        np.testing.assert_allclose(host(params[k]), host(ref[k]), rtol=1e-12, atol=1e-14,
                                   err_msg=f"data-parallel {k} differs from one process")
    # every rank ends with bit-identical parameters
    theirs = comm.broadcast(params)
    for k in params:
        np.testing.assert_array_equal(host(theirs[k]), host(params[k]))


# ---- (c) failures -------------------------------------------------------------------
def skip_a_collective(comm):
    g = {"g": dev([1.0])}
    comm.allreduce_mean(g)          # together once (this also checks the structure)
    if comm.rank == 1:
        print("rank 1: skipping the next collective and hanging", flush=True)
        time.sleep(60)
        return
    t0 = time.monotonic()
    try:
        comm.allreduce_mean(g)
    except CollectiveTimeoutError as e:
        elapsed = time.monotonic() - t0
        print(f"rank 0: timed out after {elapsed:.2f} s: {e}", flush=True)
        assert 2.9 < elapsed < 8, elapsed
        assert isinstance(e, RuntimeError) and (e.op, e.rank, e.timeout) == ("allreduce_mean", 0, 3)
        assert "allreduce_mean on rank 0 of 2 timed out after 3 s" in str(e), e
    else:
        raise AssertionError("rank 1 skipped the collective but rank 0 completed it")
    try:
        comm.barrier()
    except RuntimeError as e:
        assert "timed out earlier" in str(e), e
    print("rank 0: OK timeout", flush=True)
    comm.abort(3)                   # asked to: end rank 1, which hangs


def main(mode):
    comm = get_communicator()
    assert comm.kind == "mpi" and comm.size == 2, comm
    with comm.abort_on_error():
        if mode == "check":
            for name in ("numpy", "strict"):
                with gp.use_backend(name):
                    check_collectives(comm)
                    print(f"rank {comm.rank}: OK collectives {name}", flush=True)
                    check_sgd(comm)
                    print(f"rank {comm.rank}: OK sgd {name}", flush=True)
        elif mode in ("timeout", "abort-on-timeout"):
            skip_a_collective(comm)
        elif mode == "fail":
            if comm.rank == 1:
                raise ValueError("rank 1 broke on purpose")
            comm.barrier()          # would wait GPUPROP_COLLECTIVE_TIMEOUT without the abort
            print("rank 0: the barrier completed although rank 1 failed", flush=True)
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1])
