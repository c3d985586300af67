"""One rank of the data-parallel Trainer checks in test_train_distributed.py:

    mpiexec -n 2 python tests/train_distributed_worker.py fit OUT | fail

fit   under the numpy and the strict backend: a Trainer whose ranks were
      given other seeds is refused on every rank; then, for each batch
      size of BATCHES and from initial parameters that differ between the
      ranks, 2 epochs with a checkpoint and a new Trainer resumed from it
      to 3 epochs.  Each rank saves its final parameters and history to
      OUT/<backend>-<case>-rank<R>.npz and prints its rows and weights in
      each batch and how many checkpoints it wrote; the test compares the
      parameters with one process's on the same global batches
      (make_trainer(None, ...)).
fail  rank 1 raises at its third step, inside abort_on_error(): the job
      must end at once, not when rank 0's collective times out.
"""
import json
import logging
import os
import sys

import numpy as np

import gpuprop as gp
from gpuprop import nn, optim, train
from gpuprop.distributed import get_communicator

# 41 rows in global batches of 8 (the last of 1 row: rank 1's share is
# empty, weight 0) or of 6 (the last of 5 rows: shares of 3 and 2, so the
# mean must be weighted); 23 validation rows in batches of 5
N_TRAIN, N_VAL, EVAL_BATCH = 41, 23, 5
BATCHES = {"empty-share": 8, "uneven": 6}


def problem(n, seed):
    """3 classes in 4 features (float64, so one process and two ranks agree
    to ~1e-12)."""
    x = np.random.default_rng(seed).standard_normal((n, 4))
    w = np.random.default_rng(99).standard_normal((4, 3))
    return x, np.argmax(x @ w, axis=1).astype(np.int32)


def make_trainer(comm, epochs, batch_size=8, checkpoint_dir=None, seed=1):
    x, y = problem(N_TRAIN, 0)
    xv, yv = problem(N_VAL, 1)
    # other initial parameters on each rank: the Trainer starts all from rank 0's
    rank = 0 if comm is None else comm.rank
    model = nn.MLP([4, 8, 3], activation="tanh", seed=rank, dtype=np.float64)
    reg = lambda p: gp.numpy.multiply(1e-3, nn.l2_penalty([layer["W"] for layer in p]))
    return train.Trainer(model.apply, model.init(), "cross_entropy",
                         optim.adam(optim.cosine_decay_schedule(3e-2, 3 * 7)), x, y, xv, yv,
                         epochs=epochs, batch_size=batch_size, eval_batch_size=EVAL_BATCH,
                         seed=seed, regularizer=reg, checkpoint_dir=checkpoint_dir,
                         progress=True, log_every=4, comm=comm)


def record_shares(trainer):
    """The rows this rank computes on, and its weight, at each step."""
    step, rows, weights = trainer._parallel_step, [], []

    def recording(params, opt_state, x, y, weight, *extra):
        rows.append(len(x))
        weights.append(weight)
        return step(params, opt_state, x, y, weight, *extra)
    trainer._parallel_step = recording
    return rows, weights


def fit(comm, out):
    writes = []
    save = train.save_checkpoint

    def counting_save(path, trees, metadata):
        writes.append(path)
        save(path, trees, metadata)
    train.save_checkpoint = counting_save

    for name in ("numpy", "strict"):
        with gp.use_backend(name):
            try:
                make_trainer(comm, 3, seed=1 + comm.rank)
            except ValueError as e:
                assert "ranks' settings or data differ" in str(e), e
                print(f"rank {comm.rank}: refused other seeds ({e})", flush=True)
            else:
                raise AssertionError("ranks with different seeds were accepted")
            for case, batch_size in BATCHES.items():
                tag = f"{name}-{case}"
                ckpt = os.path.join(out, f"ckpt-{tag}")
                writes.clear()
                first = make_trainer(comm, 2, batch_size, ckpt)
                rows, weights = record_shares(first)
                first.fit()
                per_epoch = -(-N_TRAIN // batch_size)
                print(f"rank {comm.rank}: {tag} epoch 1 rows {rows[:per_epoch]} weights "
                      f"{weights[:per_epoch]}", flush=True)
                resumed = make_trainer(comm, 3, batch_size, ckpt)
                history = resumed.fit(resume=True)
                loss, acc = resumed.evaluate(*problem(N_VAL, 1))
                leaves = gp.tree_leaves(gp.to_numpy(resumed.params))
                np.savez(os.path.join(out, f"{tag}-rank{comm.rank}.npz"), *leaves,
                         history=json.dumps(history), evaluate=json.dumps([loss, acc]))
                print(f"rank {comm.rank}: {tag} wrote {len(writes)} checkpoint(s)",
                      flush=True)


def fail(comm):
    trainer = make_trainer(comm, 3)
    step, calls = trainer._grad_step, []

    def breaks(*args):
        calls.append(1)
        if comm.rank == 1 and len(calls) == 3:
            raise RuntimeError("rank 1 broke on purpose at its third step")
        return step(*args)
    trainer._grad_step = breaks
    trainer.fit()
    print(f"rank {comm.rank}: training finished although rank 1 failed", flush=True)


def main(mode, *rest):
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    logging.getLogger("gpuprop.train").setLevel(logging.INFO)
    comm = get_communicator()
    assert comm.kind == "mpi" and comm.size == 2, comm
    with comm.abort_on_error():
        if mode == "fit":
            fit(comm, rest[0])
        elif mode == "fail":
            fail(comm)
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from strict_backend import strict_backend
    gp.register_backend("strict", strict_backend)
    main(*sys.argv[1:])
