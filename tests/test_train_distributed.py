"""The data-parallel Trainer on two MPI ranks (mpiexec, in subprocesses): the
same parameters as one process on the same global batches, only rank 0
writing, and a failing rank ending the job instead of hanging it.  Each
mpiexec job runs once (cached); the comparisons run under each backend."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gpuprop as gp
from gpuprop import cli, optim, train
from support import find_mpiexec
import train_distributed_worker as worker

HERE = Path(__file__).resolve().parent
_jobs = {}


def mpi_job(key, blocks, limit=60, cwd=None, **env_extra):
    """(exit status, output, seconds) of `mpiexec <block> : <block> ...`, each
    block a list of mpiexec options and a command; run once per key."""
    if key not in _jobs:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GPUPROP_") and k not in ("PYTHONPATH",)}
        env.update(PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE)]),
                   OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1", **env_extra)
        cmd = [find_mpiexec()]
        for i, block in enumerate(blocks):
            cmd += ([":"] if i else []) + block
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit,
                               cwd=cwd or HERE.parent)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode() + (e.stderr or b"").decode()
            pytest.fail(f"{' '.join(cmd)} hung for {limit} s:\n{out}")
        _jobs[key] = (p.returncode, p.stdout + p.stderr, time.monotonic() - t0)
    return _jobs[key]


def py(*args):
    return [sys.executable, *map(str, args)]


# ---- the Trainer, two ranks against one process -------------------------------------
@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    rc, log, _ = mpi_job("fit", [["-n", "2", *py(HERE / "train_distributed_worker.py",
                                                   "fit", out)]])
    assert rc == 0, log
    return out, log


@pytest.mark.parametrize("case", sorted(worker.BATCHES))
def test_two_ranks_train_as_one_process_on_the_same_global_batches(fit_dir, backend_name,
                                                                   case):
    if backend_name not in ("numpy", "strict"):
        pytest.skip("the two-rank job trains under the numpy and strict backends")
    out, log = fit_dir
    ref = worker.make_trainer(None, 3, worker.BATCHES[case])
    start = gp.tree_leaves(gp.to_numpy(ref.params))
    ref_history = ref.fit()
    ref_params = gp.tree_leaves(gp.to_numpy(ref.params))
    ref_eval = ref.evaluate(*worker.problem(worker.N_VAL, 1))
    assert max(np.max(np.abs(a - b)) for a, b in zip(ref_params, start)) > 1e-2

    ranks = [np.load(out / f"{backend_name}-{case}-rank{r}.npz") for r in (0, 1)]
    for r, got in enumerate(ranks):
        for i, want in enumerate(ref_params):
            np.testing.assert_allclose(got[f"arr_{i}"], want, rtol=1e-10, atol=1e-13,
                                       err_msg=f"rank {r}, leaf {i}")
        history = json.loads(str(got["history"]))
        assert history["epoch"] == [1, 2, 3]
        for key in ("train_loss", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(history[key], ref_history[key], rtol=1e-10,
                                       err_msg=f"rank {r}: {key}")
        np.testing.assert_allclose(json.loads(str(got["evaluate"])), ref_eval, rtol=1e-10)
    for i in range(len(ref_params)):        # the ranks stay bit-identical
        np.testing.assert_array_equal(ranks[0][f"arr_{i}"], ranks[1][f"arr_{i}"])


def test_each_rank_takes_its_share_only_rank_0_writes_other_seeds_are_refused(fit_dir):
    _, log = fit_dir
    shares = {  # (rows, weights) of ranks 0 and 1 in each global batch of epoch 1
        # 8, ..., 8, 1 rows: rank 1 computes on a stand-in row with weight 0
        "empty-share": (([4] * 5 + [1], [4] * 5 + [1]), ([4] * 5 + [1], [4] * 5 + [0])),
        "uneven": (([3] * 7, [3] * 7), ([3] * 6 + [2], [3] * 6 + [2])),    # 6, ..., 6, 5
    }
    for name in ("numpy", "strict"):
        for case, per_rank in shares.items():
            for rank, (rows, weights) in enumerate(per_rank):
                assert (f"rank {rank}: {name}-{case} epoch 1 rows {rows} weights "
                        f"{weights}") in log, log
            # epochs 1 and 2, then the resumed 3rd
            assert f"rank 0: {name}-{case} wrote 3 checkpoint(s)" in log, log
            assert f"rank 1: {name}-{case} wrote 0 checkpoint(s)" in log, log
    assert log.count("epoch 3/3  train_loss") == 4, log       # one line per run
    assert log.count("resuming from") == 4, log
    assert "rank 0: refused other seeds" in log and "rank 1: refused other seeds" in log
    assert "rank 1 has seed=2 (rank 0: 1)" in log, log


# ---- the command line ---------------------------------------------------------------------
CLI = ["-m", "gpuprop.train", "--dataset", "spirals", "--hidden", "16", "--epochs", "2",
       "--batch-size", "50", "--schedule", "constant", "--no-progress", "--backend", "numpy",
       "--out", "out", "--checkpoint-dir", "ck"]


def test_cli_distributed_matches_one_process_and_only_rank_0_writes(tmp_path_factory,
                                                                    monkeypatch, backend_name):
    if backend_name != "numpy":
        pytest.skip("the command line runs under --backend numpy; compared once")
    base = tmp_path_factory.mktemp("cli")
    dirs = [base / "rank0", base / "rank1", base / "one"]
    for d in dirs:
        d.mkdir()
    # each rank in its own working directory: what rank 1 wrote would show
    rc, log, _ = mpi_job("cli", [["-n", "1", "-wdir", str(d), *py(*CLI, "--distributed")]
                                 for d in dirs[:2]])
    assert rc == 0, log
    assert "2 ranks (mpi)" in log and log.count("epoch 2/2  train_loss") == 1, log
    assert sorted(os.listdir(dirs[0])) == ["ck", "out"]
    assert os.listdir(dirs[1]) == []
    monkeypatch.chdir(dirs[2])
    assert cli.main(CLI[2:]) == 0
    two, one = (json.loads((d / "out" / "history.json").read_text())
                for d in (dirs[0], dirs[2]))
    assert two["config"]["distributed"] and not one["config"]["distributed"]
    np.testing.assert_allclose(two["history"]["train_loss"], one["history"]["train_loss"],
                               rtol=1e-5)
    np.testing.assert_allclose(two["history"]["val_loss"], one["history"]["val_loss"],
                               rtol=1e-5)
    a, b = (np.load(d / "ck" / train.CHECKPOINT_NAME) for d in (dirs[0], dirs[2]))
    names = [k for k in b.files if k.startswith("params/")]
    assert names and sorted(names) == sorted(k for k in a.files if k.startswith("params/"))
    for k in names:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_distributed_without_a_launcher_is_one_process(tmp_path, monkeypatch, caplog,
                                                      backend_name):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO", logger="gpuprop.train"):
        assert cli.main([*CLI[2:], "--backend", backend_name, "--epochs", "1",
                           "--distributed"]) == 0
    assert "; 1 rank (single)" in caplog.text
    assert (tmp_path / "out" / "history.json").exists()
    with pytest.raises(TypeError, match="comm must be a gpuprop.distributed communicator"):
        train.Trainer(lambda p, x: x @ p, np.zeros((2, 1)), "mse", optim.sgd(0.1),
                      np.ones((4, 2)), np.ones((4, 1)), comm="mpi")


# ---- failures -----------------------------------------------------------------------------
def test_a_rank_failing_mid_training_ends_the_job_at_once():
    rc, log, seconds = mpi_job("fail", [["-n", "2", *py(HERE / "train_distributed_worker.py",
                                                        "fail")]],
                               GPUPROP_COLLECTIVE_TIMEOUT="60")
    assert "rank 1 of 2 failed; aborting all ranks" in log, log
    assert "broke on purpose at its third step" in log, log
    assert "training finished although rank 1 failed" not in log, log
    assert rc != 0 and seconds < 30, (rc, seconds)     # well before the 60 s timeout


def test_a_rank_failing_in_the_cli_ends_the_job_at_once(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-fail")
    missing = d / "no-such-dir"     # rank 1 cannot load its data; rank 0 waits for it
    rc, log, seconds = mpi_job(
        "cli-fail", [["-n", "1", *py(*CLI, "--distributed")],
                     ["-n", "1", *py(*CLI, "--distributed", "--dataset", "fashion-mnist",
                                     "--data-dir", missing)]],
        cwd=d, GPUPROP_COLLECTIVE_TIMEOUT="60")
    assert "rank 1 of 2 failed; aborting all ranks" in log, log
    assert "apt-get install dataset-fashion-mnist" in log, log
    assert rc != 0 and seconds < 30, (rc, seconds)
