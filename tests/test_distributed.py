"""gpuprop.distributed: the single-process communicator in this process; MPI
with two real ranks (mpiexec, tests/distributed_worker.py) in subprocesses."""
import collections
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop import distributed as dist
from support import assert_same_trees, dev, find_mpiexec, host

HERE = Path(__file__).resolve().parent
Pair = collections.namedtuple("Pair", "left right")


def a_tree():
    return {"w": dev(np.arange(6.0).reshape(2, 3), np.float32),
            "b": (dev([0.5, -1.5]), None),
            "h": [dev([1.0, 2.0], np.float16), Pair(dev(3.0), dev(np.ones((0, 2))))]}


# ---- one process ----------------------------------------------------------------
def test_single_collectives_are_identities():
    comm = dist.get_communicator("single")
    assert (comm.kind, comm.rank, comm.size, comm.is_root) == ("single", 0, 1, True)
    tree = a_tree()
    assert comm.broadcast(tree) is tree
    mean = comm.allreduce_mean(tree)
    assert mean is tree
    assert_same_trees(comm.allreduce_mean(tree, weight=7), tree)
    comm.barrier()


def test_single_allreduce_sum_gives_host_values():
    comm = dist.SingleProcessCommunicator()
    got = comm.allreduce_sum({"n": 3, "loss": 0.25, "dev": dev(1.5, np.float32),
                              "hits": dev([2, 5], np.int32), "v": dev([0.5, 1.0])})
    assert got["n"] == 3 and type(got["n"]) is int
    assert got["loss"] == 0.25 and type(got["loss"]) is float
    assert got["dev"] == 1.5 and type(got["dev"]) is float
    assert isinstance(got["hits"], np.ndarray) and got["hits"].dtype == np.int64
    np.testing.assert_array_equal(got["hits"], [2, 5])
    np.testing.assert_array_equal(got["v"], [0.5, 1.0])
    assert comm.allreduce_sum(4) == 4


def test_single_refuses_what_the_others_would(backend_name):
    comm = dist.SingleProcessCommunicator()
    with pytest.raises(TypeError, match="only floating point leaves"):
        comm.allreduce_mean({"steps": dev([1, 2], np.int32)})
    with pytest.raises(TypeError, match="not an array"):
        comm.broadcast({"lr": 0.1})
    with pytest.raises(ValueError, match="root must be a rank in 0..0"):
        comm.broadcast(a_tree(), root=1)
    with pytest.raises(ValueError, match="weight must be finite and >= 0"):
        comm.allreduce_mean(a_tree(), weight=-1)
    with pytest.raises(ValueError, match="total weight over all ranks is 0"):
        comm.allreduce_mean(a_tree(), weight=0)
    with pytest.raises(TypeError, match="traced value"):
        gp.grad(lambda x: gnp.sum(comm.allreduce_mean({"x": x})["x"]))(dev([1.0]))
    if backend_name != "numpy":     # a host array under a device backend is refused
        with pytest.raises(gp.BackendMismatchError, match=r"allreduce_mean \(leaf 0\)"):
            comm.allreduce_mean({"x": np.ones(2)})


class Loopback(dist.Communicator):
    """Rank 1 of two whose partner holds the same tree: the collectives go
    through the host as the MPI one's do without CUDA-aware MPI, so packing,
    staging and unpacking run for real under the strict (CuPy-like) backend."""

    kind, rank, size = "loopback", 1, 2

    def __init__(self):
        self.signatures = []

    def _verify(self, op, signature):
        self.signatures.append((op, signature))

    def _allreduce_flat(self, buf, op):
        be = gp.backend.current()
        h = be.to_host(buf)
        assert isinstance(h, np.ndarray)
        return be.from_host(h + h)

    def _bcast_flat(self, buf, root, op):
        be = gp.backend.current()
        return be.from_host(be.to_host(buf).copy())

    def _sum_host(self, flat, op):
        return flat * 2


def test_packed_collectives_preserve_structure_and_dtypes():
    comm = Loopback()
    tree = a_tree()
    assert_same_trees(comm.allreduce_mean(tree), tree)                 # (x + x) / 2
    with warnings.catch_warnings():     # real leaves leave a complex buffer cleanly
        warnings.simplefilter("error")
        with_complex = dict(tree, z=dev([1 - 2j, 0.5j], np.complex64))
        assert_same_trees(comm.allreduce_mean(with_complex), with_complex)
    assert_same_trees(comm.allreduce_mean(tree, weight=3), tree)       # (3x + 3x) / 6
    mixed = {"i": dev([[-7, 8]], np.int64), "m": dev([True, False, True]),
             "c": dev([1 + 2j], np.complex128), "s": dev(2.5, np.float32), "e": dev(np.zeros(0))}
    got = comm.broadcast(mixed)
    assert got is not mixed
    assert_same_trees(got, mixed)
    offsets, total = dist._slots(gp.tree_leaves(mixed))    # CUDA wants aligned leaves
    assert all(o % 16 == 0 for o in offsets) and total % 16 == 0 and total >= 16 + 3 * 8
    assert comm.allreduce_sum((1, 0.5, dev([2.0]))) == (2, 1.0, pytest.approx([4.0]))
    assert [op for op, _ in comm.signatures] == ["allreduce_mean"] * 3 + ["broadcast",
                                                                        "allreduce_sum"]
    # the signature sees shapes and dtypes, and whether the mean is weighted
    sig = comm.signatures
    assert len({sig[0][1], sig[1][1], sig[2][1]}) == 3
    comm.allreduce_mean({"x": dev([1.0])})
    comm.allreduce_mean({"x": dev([1.0, 2.0])})
    comm.allreduce_mean({"x": dev([1.0], np.float32)})
    assert len({s for _, s in comm.signatures[-3:]}) == 3


def test_weighted_mean_is_the_global_batch_mean():
    comm = Loopback()       # both "ranks" hold g with weight w: the mean is g
    g = {"g": dev([3.0, -1.0], np.float32)}
    out = comm.allreduce_mean(g, weight=5)
    assert out["g"].dtype == np.float32
    np.testing.assert_allclose(host(out["g"]), [3.0, -1.0], rtol=1e-6)
    # weight 0: this rank's (NaN) values are left out; the partner also has 0 here
    with np.errstate(invalid="ignore"):
        out = comm.allreduce_mean({"g": dev([np.nan])}, weight=0)
    assert np.isnan(host(out["g"])).all()       # 0 / 0: documented


def test_shard_splits_a_batch():
    def shares(n, size):
        out = []
        for r in range(size):
            c = dist.SingleProcessCommunicator()
            c.rank, c.size = r, size
            s = c.shard(n)
            out.append((s.start, s.stop))
        return out
    assert shares(16, 2) == [(0, 8), (8, 16)]
    assert shares(15, 2) == [(0, 8), (8, 15)]
    assert shares(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert shares(1, 3) == [(0, 1), (1, 1), (1, 1)]


def test_settings_from_the_environment():
    t = dist.collective_timeout
    assert t({}) == 300 and t({"GPUPROP_COLLECTIVE_TIMEOUT": " 3 "}) == 3.0
    assert t({"GPUPROP_COLLECTIVE_TIMEOUT": "0"}) is None
    assert t({"GPUPROP_COLLECTIVE_TIMEOUT": "inf"}) is None
    with pytest.raises(ValueError, match="GPUPROP_COLLECTIVE_TIMEOUT='soon'"):
        t({"GPUPROP_COLLECTIVE_TIMEOUT": "soon"})
    size = dist.launched_size
    assert size({}) == 0
    assert size({"PMI_SIZE": "4", "PMI_RANK": "1"}) == 4
    assert size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    assert size({"PMIX_RANK": "0"}) is None
    with pytest.raises(ValueError, match="unknown kind 'gloo'"):
        dist.get_communicator("gloo")


def test_no_mpi4py_or_cupy_until_asked():
    env = {k: v for k, v in os.environ.items()
           if k not in dist._SIZE_VARS + dist._RANK_VARS + ("GPUPROP_BACKEND",)}
    code = ("import sys, gpuprop, gpuprop.distributed as d; c = d.get_communicator(); "
            "assert c.kind == 'single', c; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mpi4py', 'cupy')))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---- two ranks under mpiexec --------------------------------------------------------
_runs = {}


def run_two_ranks(mode, limit=60, **env_extra):
    """(exit status, output, seconds) of `mpiexec -n 2 worker mode`, run once
    per mode (the backend parameter does not apply: the worker covers both)."""
    if mode not in _runs:
        env = {k: v for k, v in os.environ.items()
               if k not in ("GPUPROP_BACKEND", "GPUPROP_COLLECTIVE_TIMEOUT",
                            "GPUPROP_ABORT_ON_TIMEOUT", "GPUPROP_COMMUNICATOR")}
        env.update(PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE)]),
                   OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1", **env_extra)
        cmd = [find_mpiexec(), "-n", "2", sys.executable, str(HERE / "distributed_worker.py"), mode]
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit,
                               cwd=HERE.parent)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode() + (e.stderr or b"").decode()
            pytest.fail(f"mpiexec -n 2 ... {mode} hung for {limit} s:\n{out}")
        _runs[mode] = (p.returncode, p.stdout + p.stderr, time.monotonic() - t0)
    return _runs[mode]


def test_two_ranks_collectives_and_data_parallel_sgd():
    rc, out, _ = run_two_ranks("check")
    assert rc == 0, out
    for backend_name in ("numpy", "strict"):
        for rank in (0, 1):
            for what in ("collectives", "sgd"):
                assert f"rank {rank}: OK {what} {backend_name}" in out, out


def test_a_skipped_collective_times_out_instead_of_hanging():
    rc, out, seconds = run_two_ranks("timeout", GPUPROP_COLLECTIVE_TIMEOUT="3")
    assert "rank 0: OK timeout" in out, out
    assert "allreduce_mean on rank 0 of 2 timed out after 3 s" in out
    assert rc != 0 and seconds < 30, (rc, seconds)     # rank 1 would sleep 60 s


def test_abort_on_timeout_ends_every_rank():
    rc, out, seconds = run_two_ranks("abort-on-timeout", GPUPROP_COLLECTIVE_TIMEOUT="3",
                                     GPUPROP_ABORT_ON_TIMEOUT="1")
    assert "timed out after 3 s" in out and "aborting all ranks" in out, out
    assert rc != 0 and seconds < 30, (rc, seconds)


def test_a_failing_rank_stops_the_others_at_once():
    rc, out, seconds = run_two_ranks("fail", GPUPROP_COLLECTIVE_TIMEOUT="40")
    assert "rank 1 of 2 failed; aborting all ranks" in out and "broke on purpose" in out, out
    assert "barrier completed" not in out
    assert rc != 0 and seconds < 20, (rc, seconds)     # well before the 40 s timeout
