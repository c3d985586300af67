"""Training: the jitted step and the Trainer loop around it.

    trainer = Trainer(model.apply, params, "cross_entropy", adam(1e-3),
                      x_train, y_train, x_val, y_val, epochs=10, batch_size=128,
                      checkpoint_dir="ckpt", x_test=x_test, y_test=y_test)
    history = trainer.fit()            # fit(resume=True) continues from ckpt
    params = trainer.params

The step `(params, opt_state, x, y) -> (params, opt_state, loss)` is one pure
function wrapped in gpuprop.jit.  Data go to the device once; each epoch
only a permutation of indices travels.  Losses stay on the device and are
fetched every `log_every` steps (one transfer), where a NaN or inf stops
training with NonFiniteLossError.  A checkpoint is written atomically at
every epoch's end and on Ctrl-C (gpuprop.serialization holds the format
and the directory's lock); resuming replays the same batches, so a resumed
run on the CPU is bit-identical to one never interrupted.  The validation
set (x_val, y_val) is evaluated every epoch and drives early stopping; the
test set only once, at the end, unless test_every_epoch.

Data-parallel: `Trainer(..., comm=gpuprop.distributed.get_communicator())`
in every process of an `mpiexec` job.  The ranks start from rank 0's
parameters, each computes the gradient of its share of every global batch
(a jitted value_and_grad), one allreduce_mean per step averages loss and
gradients weighted by the shares' sizes, and a jitted update applies them,
so batch_size is the global batch and the result is one process's up to
rounding.  Evaluation is summed over the ranks' shares; only rank 0 writes
checkpoints and logs.  The loss must be a mean over the rows (all of nn's
losses are).

The command line lives in gpuprop.cli; `python -m gpuprop.train --help` (or
`gpuprop-train`) runs it.
"""
import contextlib
import logging
import os
import sys
import time
from typing import NamedTuple

import numpy as np

from . import backend, data, distributed, nn, optim, random
from . import numpy as gnp
from .autodiff import value_and_grad
from .devices import asarray, device_put, to_numpy
from .jit import jit
from .serialization import CHECKPOINT_NAME, DirectoryLock, load_checkpoint, save_checkpoint
from .tree import tree_leaves

log = logging.getLogger("gpuprop.train")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class ResumeMismatchError(ValueError):
    """A checkpoint written by a run with other settings than this one's."""


# ---- the compiled functions -------------------------------------------------
def _objective(apply, loss, regularizer):
    def objective(params, x, y, *extra):
        value = loss(apply(params, x, *extra), y)
        return value if regularizer is None else gnp.add(value, regularizer(params))
    return objective


def make_train_step(apply, loss, optimizer, regularizer=None):
    """The jitted step (params, opt_state, x, y, *extra) -> (params,
    opt_state, loss): loss(apply(params, x, *extra), y) (+ regularizer(params)),
    its gradient, and one optimizer update.  `extra` (arrays) is what apply
    takes beyond the inputs: the step number that dropout keys derive from."""
    objective = _objective(apply, loss, regularizer)

    def train_step(params, opt_state, x, y, *extra):
        value, grads = value_and_grad(objective)(params, x, y, *extra)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optim.apply_updates(params, updates), opt_state, value

    return jit(train_step)


def make_grad_step(apply, loss, regularizer=None):
    """The jitted (params, x, y, *extra) -> (loss, gradients) of one rank's
    share of a batch; the data-parallel Trainer averages them over the ranks."""
    return jit(value_and_grad(_objective(apply, loss, regularizer)))


def make_update(optimizer):
    """The jitted (params, opt_state, grads) -> (params, opt_state)."""
    def update(params, opt_state, grads):
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optim.apply_updates(params, updates), opt_state

    return jit(update)


def _dropout_apply(apply, rate, seed, rank):
    """apply with dropout, as a function of (params, x, step): the key of
    each step is fold_in(key(seed), step) (then the rank's, in parallel), so
    a resumed run draws the same masks; step is a uint32 array, traced."""
    base = random.key(seed)
    if rank is not None:
        base = random.fold_in(base, rank)

    def train_apply(params, x, step):
        return apply(params, x, key=random.fold_in(base, step), dropout=rate)
    return train_apply


def make_eval_step(apply, loss, classify):
    """The jitted (params, x, y) -> (mean loss, number of correct rows);
    the count is 0 unless `classify`."""
    def eval_step(params, x, y):
        out = apply(params, x)
        hits = (gnp.sum(gnp.astype(nn.correct(out, y), np.float32)) if classify
                else gnp.zeros(()))
        return loss(out, y), hits

    return jit(eval_step)


# ---- input checks -----------------------------------------------------------
def _as_array(name, x):
    if x is None:
        raise ValueError(f"Trainer: {name} is None")
    if backend.current().owns(x) or isinstance(x, np.ndarray):
        return x
    x = np.asarray(x)
    if x.dtype == object:
        raise TypeError(f"Trainer: {name} is not a numeric array (dtype object)")
    return x


def _count(mask):
    """How many entries of a boolean device array are true, on the host."""
    return int(to_numpy(gnp.sum(gnp.astype(mask, np.int64))))


def _check_xy(xn, x, yn, y, params_dtype):
    """Refuse data a training run cannot use; the messages say how to fix it."""
    x, y = _as_array(xn, x), _as_array(yn, y)
    if x.dtype.kind != "f":
        raise TypeError(f"Trainer: {xn} has dtype {x.dtype}; features must be floating "
                        f"point like the parameters ({params_dtype}): convert with "
                        f"x.astype(np.{params_dtype}) (and scale, e.g. / 255 for images)")
    if x.dtype != params_dtype:
        raise TypeError(f"Trainer: {xn} has dtype {x.dtype} but the parameters are "
                        f"{params_dtype}: convert with x.astype(np.{params_dtype}) (or "
                        f"build the model with dtype={x.dtype})")
    if y.dtype.kind not in "iuf":
        raise TypeError(f"Trainer: {yn} has dtype {y.dtype}; labels must be integers "
                        f"(class indices, e.g. y.astype(np.int32)) and regression "
                        f"targets floating point")
    if len(x.shape) == 0 or len(x) == 0:
        raise ValueError(f"Trainer: {xn} is empty (shape {tuple(x.shape)}); there is "
                         f"nothing to train on")
    if len(y.shape) == 0 or len(y) != len(x):
        raise ValueError(f"Trainer: {xn} has {len(x)} rows but {yn} has "
                         f"{len(y) if y.shape else 'none (a scalar)'}; they must have one "
                         f"label or target per row")
    x, y = asarray(x), asarray(y)
    for name, a in ((xn, x), (yn, y)):
        if a.dtype.kind == "f":
            mask = gnp.logical_not(gnp.isfinite(a))
            bad = _count(mask)
            if bad:
                rows = gnp.reshape(mask, (len(a), -1))
                first = int(to_numpy(gnp.argmax(gnp.max(gnp.astype(rows, np.int8), axis=1))))
                raise ValueError(f"Trainer: {name} contains {bad} NaN or infinite "
                                 f"value(s), the first in row {first}; clean or drop "
                                 f"those rows before training")
    return x, y


def _check_labels(yn, y, num_outputs):
    """Integer labels must index the model's outputs."""
    hi = num_outputs - 1 if num_outputs > 1 else 1
    lo_v, hi_v = int(to_numpy(gnp.min(y))), int(to_numpy(gnp.max(y)))
    if lo_v < 0 or hi_v > hi:
        raise ValueError(f"Trainer: {yn} has labels from {lo_v} to {hi_v}, but the model "
                         f"has {num_outputs} output(s), so labels must lie in 0..{hi}; "
                         f"relabel the data or give the model more outputs")


# ---- the loop ---------------------------------------------------------------
class _Progress(NamedTuple):
    """Everything a checkpoint holds.  The Trainer replaces it in one
    assignment per step, so a Ctrl-C anywhere leaves a consistent one."""
    params: object
    opt_state: object
    epoch: int          # epochs completed
    batch: int          # batches done in the current epoch
    step: int           # optimizer steps done in all
    rng_state: dict     # the shuffling RNG at the start of the current epoch
    loss_sum: float     # sum of loss * batch size over fetched steps this epoch
    seen: int           # samples of those steps
    pending: tuple      # ((device loss, batch size), ...) not fetched yet
    last_loss: float    # the last finite loss fetched, and its step
    last_step: int
    records: tuple      # one dict per finished epoch
    best: tuple         # (best val loss, its epoch, epochs since, best params)
    stopped: bool       # early stopping has ended the run


class Trainer:
    """Minibatch training of `params` for `apply(params, x) -> outputs`.

    loss: `loss(outputs, y) -> scalar` or a name in nn.LOSSES
        ("cross_entropy", "mse", "binary_cross_entropy").
    optimizer: an optim.GradientTransformation (e.g. optim.adam(1e-3)).
    x_train, y_train (and optional x_val, y_val): host or device arrays;
        features in the parameters' dtype, labels int or targets float.
        Integer labels make it a classifier: accuracy is reported.  The
        validation set is evaluated every epoch; hold it out of the
        training set (data.split_validation), never take the test set.
    x_test, y_test: evaluated once, at the end of fit() (and every epoch
        when test_every_epoch); the result is in .test_metrics.
    regularizer: optional `params -> scalar` added to the training loss
        (e.g. lambda p: 1e-4 * nn.l2_penalty([l["W"] for l in p])).
    shuffle, seed: a fresh permutation each epoch from numpy's Generator(seed).
    checkpoint_dir: where checkpoint.npz is written each epoch and on Ctrl-C;
        fit() locks it (a second run into it fails at once).
    settings: a JSON-able dict of what defines the run beyond the Trainer's
        own arguments (e.g. the learning-rate schedule); stored in the
        checkpoint, and resuming with other settings is refused.
    early_stopping: stop after this many epochs without the validation loss
        improving by more than min_delta; restore_best then keeps the best
        epoch's parameters.
    progress: a tqdm bar (True/False; None: when tqdm is installed and
        stderr is a terminal).
    verbose: log one line per epoch and a summary at the end (logger
        "gpuprop.train"; printed to stderr when logging is not configured).
    log_every: steps between fetches of the losses (and NaN checks).
    comm: a gpuprop.distributed communicator for data-parallel training
        (None: this process alone).  Every rank constructs the Trainer with
        the same data, settings and seed and calls fit() and evaluate()
        together; rank 0's parameters are broadcast at the start, and only
        rank 0 writes checkpoints, logs and draws the progress bar.

    After fit(): .params, .opt_state, .history (a dict of per-epoch lists:
    epoch, train_loss, val_loss, val_accuracy, test_loss, test_accuracy,
    seconds, cpu_seconds, samples_per_second), .test_metrics ((loss,
    accuracy) of the test set, or None).
    """

    def __init__(self, apply, params, loss, optimizer, x_train, y_train, x_val=None,
                 y_val=None, *, epochs=10, batch_size=128, seed=0, shuffle=True,
                 drop_last=False, eval_batch_size=1024, regularizer=None,
                 checkpoint_dir=None, early_stopping=None, min_delta=0.0,
                 restore_best=True, progress=None, verbose=True, log_every=50, comm=None,
                 x_test=None, y_test=None, test_every_epoch=False, settings=None,
                 dropout=0.0):
        if isinstance(loss, str):
            if loss not in nn.LOSSES:
                raise ValueError(f"Trainer: unknown loss {loss!r}; choose one of "
                                 f"{', '.join(nn.LOSSES)}, or pass a function")
            loss = nn.LOSSES[loss]
        if not isinstance(optimizer, optim.GradientTransformation):
            raise TypeError(f"Trainer: optimizer must be a GradientTransformation such as "
                            f"optim.adam(1e-3), got {type(optimizer).__name__}")
        for name, v, least in (("epochs", epochs, 0), ("batch_size", batch_size, 1),
                               ("eval_batch_size", eval_batch_size, 1),
                               ("log_every", log_every, 1)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < least:
                raise ValueError(f"Trainer: {name} must be an integer >= {least}, got {v!r}")
        for xn, x, yn, y in (("x_val", x_val, "y_val", y_val),
                             ("x_test", x_test, "y_test", y_test)):
            if (x is None) != (y is None):
                raise ValueError(f"Trainer: give both {xn} and {yn}, or neither")
        if test_every_epoch and x_test is None:
            raise ValueError("Trainer: test_every_epoch=True needs x_test and y_test")
        if early_stopping is not None:
            if x_val is None:
                raise ValueError("Trainer: early_stopping watches the validation loss: "
                                 "pass x_val and y_val")
            if not isinstance(early_stopping, int) or early_stopping < 1:
                raise ValueError(f"Trainer: early_stopping must be a number of epochs "
                                 f">= 1 (or None), got {early_stopping!r}")
        if comm is not None and not isinstance(comm, distributed.Communicator):
            raise TypeError(f"Trainer: comm must be a gpuprop.distributed communicator "
                            f"(get_communicator()) or None, got {type(comm).__name__}")
        self.dropout = nn.check_rate("Trainer: dropout", dropout)
        self.comm = comm
        self._root = comm is None or comm.is_root
        params = device_put(params)
        leaves = tree_leaves(params)
        if not leaves:
            raise ValueError("Trainer: params has no arrays")
        dtype = np.dtype(leaves[0].dtype)
        self.x_train, self.y_train = _check_xy("x_train", x_train, "y_train", y_train, dtype)
        self.classify = self.y_train.dtype.kind in "iu"
        self.x_val, self.y_val = self._check_other_set("val", x_val, y_val, dtype)
        self.x_test, self.y_test = self._check_other_set("test", x_test, y_test, dtype)
        self._dry_run(apply, params, loss, regularizer)
        train_apply = apply
        if self.dropout:
            train_apply = _dropout_apply(apply, self.dropout, seed,
                                         comm.rank if self._parallel else None)
            self._dry_run_dropout(train_apply, params)

        self.apply, self.loss, self.optimizer = apply, loss, optimizer
        self.epochs, self.batch_size, self.eval_batch_size = epochs, batch_size, eval_batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.early_stopping, self.min_delta, self.restore_best = early_stopping, min_delta, restore_best
        self.log_every = log_every
        self.progress, self.verbose = progress, verbose
        self.test_every_epoch, self.settings = test_every_epoch, settings
        self.test_metrics = None
        self._eval = make_eval_step(apply, loss, self.classify)
        if self._parallel:
            self._same_settings_on_every_rank()
            params = comm.broadcast(params)
            self._grad_step = make_grad_step(train_apply, loss, regularizer)
            self._update = make_update(optimizer)
            self._rows = asarray(np.arange(len(self.x_train)))
        else:
            self._step = make_train_step(train_apply, loss, optimizer, regularizer)
        self.rng = np.random.default_rng(seed)
        self._p = _Progress(params, optimizer.init(params), 0, 0, 0,
                            self.rng.bit_generator.state, 0.0, 0, (), float("nan"), 0,
                            (), (float("inf"), 0, 0, None), False)

    def _check_other_set(self, name, x, y, dtype):
        """A validation or test set, checked like the training set and
        against it (the rows' shape, labels or targets); (None, None) if absent."""
        if x is None:
            return None, None
        xn, yn = f"x_{name}", f"y_{name}"
        x, y = _check_xy(xn, x, yn, y, dtype)
        if tuple(x.shape[1:]) != tuple(self.x_train.shape[1:]):
            raise ValueError(f"Trainer: {xn} rows have shape {tuple(x.shape[1:])}"
                             f" but x_train rows {tuple(self.x_train.shape[1:])}")
        if (y.dtype.kind in "iu") != self.classify:
            raise TypeError(f"Trainer: y_train has dtype {self.y_train.dtype} but {yn} "
                            f"{y.dtype}; both must be integer labels or both "
                            f"floating-point targets")
        return x, y

    def _dry_run(self, apply, params, loss, regularizer):
        """Run the model and the loss on two rows of each set, so that shape
        and label errors show before training starts."""
        sets = [(f"x_{k}", x, f"y_{k}", y) for k, x, y in
                (("train", self.x_train, self.y_train), ("val", self.x_val, self.y_val),
                 ("test", self.x_test, self.y_test)) if x is not None]
        for xn, x, yn, y in sets:
            try:
                out = apply(params, x[:2])
                value = loss(out, y[:2])
                if regularizer is not None:
                    value = gnp.add(value, regularizer(params))
            except (ValueError, TypeError, IndexError) as e:
                raise type(e)(f"Trainer: the model or the loss fails on the first rows of "
                              f"{xn} (shape {tuple(x.shape)}) and {yn} (shape "
                              f"{tuple(y.shape)}): {e}") from e
            if tuple(value.shape) != () or np.dtype(value.dtype).kind != "f":
                raise TypeError(f"Trainer: the loss must return a float scalar, got "
                                f"{np.dtype(value.dtype)} of shape {tuple(value.shape)}")
            if self.classify:
                _check_labels(yn, y, out.shape[-1])

    def _dry_run_dropout(self, train_apply, params):
        try:
            train_apply(params, self.x_train[:2], asarray(np.uint32(0)))
        except TypeError as e:
            raise TypeError(f"Trainer: dropout={self.dropout} calls apply(params, x, key=..., "
                            f"dropout=rate) in training, which fails ({e}); pass a model "
                            f"whose apply takes a gpuprop.random key and a rate, such as "
                            f"MLP.apply, or dropout=0") from e

    def _extra(self, step):
        """What the step passes to apply beyond the inputs: with dropout, the
        number of steps done (a device uint32), from which the key derives."""
        return (asarray(np.uint32(step)),) if self.dropout else ()

    @property
    def _parallel(self):
        return self.comm is not None and self.comm.size > 1

    def _same_settings_on_every_rank(self):
        """Ranks that shuffle with other seeds or hold other data would train
        on different batches without any error: compare with rank 0's."""
        names = ("seed", "batch_size", "epochs", "shuffle", "drop_last", "len(x_train)",
                 "len(x_val)")
        mine = np.array([self.seed, self.batch_size, self.epochs, self.shuffle,
                         self.drop_last, len(self.x_train),
                         -1 if self.x_val is None else len(self.x_val)], dtype=np.int64)
        root = to_numpy(self.comm.broadcast(asarray(mine)))
        differ = [f"{k}={int(a)} (rank 0: {int(b)})" for k, a, b in zip(names, mine, root)
                  if a != b]
        ranks = self.comm.allreduce_sum(int(bool(differ)))
        if ranks:
            what = (f"rank {self.comm.rank} has {', '.join(differ)}" if differ else
                    f"{ranks} rank(s) differ from rank 0")
            raise ValueError(f"Trainer: the ranks' settings or data differ: {what}; every "
                             f"rank must pass the same data, batch_size, epochs and seed "
                             f"(the seed decides the shuffling)")

    # ---- public state ---------------------------------------------------------
    params = property(lambda self: self._p.params)
    opt_state = property(lambda self: self._p.opt_state)

    @property
    def history(self):
        keys = ("epoch", "train_loss", "val_loss", "val_accuracy", "test_loss",
                "test_accuracy", "seconds", "cpu_seconds", "samples_per_second")
        return {k: [r[k] for r in self._p.records] for k in keys}

    @property
    def checkpoint_path(self):
        return None if self.checkpoint_dir is None else os.path.join(self.checkpoint_dir,
                                                                      CHECKPOINT_NAME)

    # ---- evaluation ---------------------------------------------------------
    def evaluate(self, x, y, params=None):
        """(mean loss, accuracy) over (x, y); accuracy is None for regression.
        Data-parallel, every rank calls it with the same (x, y): each
        evaluates its share and one allreduce_sum combines them."""
        params = self._p.params if params is None else params
        x, y = asarray(x), asarray(y)
        if self._parallel:
            part = self.comm.shard(len(x))
            x, y = x[part], y[part]
        outs, sizes = [], []
        for xb, yb in data.batches(x, y, self.eval_batch_size):
            outs.extend(self._eval(params, xb, yb))
            sizes.append(len(xb))
        loss_sum = hits = 0.0
        if outs:
            vals = to_numpy(gnp.stack([gnp.astype(v, np.float64) for v in outs]))
            loss_sum, hits = float(np.dot(vals[0::2], sizes)), float(np.sum(vals[1::2]))
        n = sum(sizes)
        if self._parallel:
            loss_sum, hits, n = self.comm.allreduce_sum((loss_sum, hits, n))
        if n == 0:
            raise ValueError("Trainer.evaluate: x is empty; there is nothing to evaluate")
        return loss_sum / n, (hits / n if self.classify else None)

    # ---- checkpoints --------------------------------------------------------
    def save(self, path=None):
        """Write a checkpoint of the current state (default: checkpoint_dir).
        Data-parallel, only rank 0 writes (the ranks' states are the same)."""
        path = path or self.checkpoint_path
        if path is None:
            raise ValueError("Trainer.save: no path and no checkpoint_dir")
        if not self._root:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        p = self._p
        trees = {"params": p.params, "opt_state": p.opt_state}
        if p.best[3] is not None:
            trees["best_params"] = p.best[3]
        meta = {"epoch": p.epoch, "batch": p.batch, "step": p.step, "rng_state": p.rng_state,
                "loss_sum": p.loss_sum, "seen": p.seen, "last_loss": p.last_loss,
                "last_step": p.last_step, "records": list(p.records),
                "best": list(p.best[:3]), "stopped": p.stopped,
                "batch_size": self.batch_size, "shuffle": self.shuffle,
                "drop_last": self.drop_last, "n_train": len(self.x_train),
                "settings": self.settings}
        save_checkpoint(path, trees, meta)

    def restore(self, path=None):
        """Continue from a checkpoint written by save (default: checkpoint_dir)."""
        path = path or self.checkpoint_path
        p = self._p
        like = {"params": p.params, "opt_state": p.opt_state, "best_params": p.params}
        trees, m = load_checkpoint(path, like)
        differ = _differences(m.get("settings") or {}, self.settings or {})
        if differ:
            raise ResumeMismatchError(
                f"Trainer.restore: {path} was written by a run with other settings: "
                f"{'; '.join(differ)}; resuming would change the run's meaning: use the "
                f"same settings, or another checkpoint directory for a new run")
        for key, mine in (("batch_size", self.batch_size), ("shuffle", self.shuffle),
                          ("drop_last", self.drop_last), ("n_train", len(self.x_train))):
            if m[key] != mine:
                raise ResumeMismatchError(
                    f"Trainer.restore: {path} was written with {key}={m[key]!r}, this "
                    f"Trainer has {key}={mine!r}; resuming would not replay the same run: "
                    f"use the same setting")
        self._p = _Progress(trees["params"], trees["opt_state"], m["epoch"], m["batch"],
                            m["step"], m["rng_state"], m["loss_sum"], m["seen"], (),
                            m["last_loss"], m["last_step"], tuple(m["records"]),
                            (*m["best"], trees.get("best_params")), m["stopped"])

    # ---- training -----------------------------------------------------------
    def fit(self, resume=False):
        """Train until `epochs` epochs are done (or early stopping), then
        evaluate the test set; returns the history.  resume=True continues
        from checkpoint_dir's checkpoint when there is one."""
        if resume and self.checkpoint_path is None:
            raise ValueError("Trainer.fit(resume=True) needs a checkpoint_dir")
        t0 = time.perf_counter()
        with self._locked(), _console_logging(self.verbose and self._root):
            self._fit(resume)
            if self.x_test is not None:
                self.test_metrics = self.evaluate(self.x_test, self.y_test)
            self._info("%s", self.summary(time.perf_counter() - t0))
        return self.history

    def _locked(self):
        """The checkpoint directory's lock (rank 0 takes it), or no lock."""
        if self.checkpoint_dir is None or not self._root:
            return contextlib.nullcontext()
        return DirectoryLock(self.checkpoint_dir)

    def _fit(self, resume):
        if resume:
            if self._checkpoint_exists():
                self.restore()
                self._info("resuming from %s at epoch %d, batch %d (step %d)",
                           self.checkpoint_path, self._p.epoch + 1, self._p.batch,
                           self._p.step)
            elif self._root:
                log.warning("no checkpoint at %s: starting from the beginning",
                            self.checkpoint_path)
        try:
            while self._p.epoch < self.epochs and not self._p.stopped:
                self._run_epoch()
        except KeyboardInterrupt:
            if not self._root:
                raise
            if self.checkpoint_dir is not None:
                self._flush()
                self.save()
                log.warning("interrupted at step %d (epoch %d, batch %d): checkpoint saved "
                            "to %s; resume with fit(resume=True) or --resume",
                            self._p.step, self._p.epoch + 1, self._p.batch,
                            self.checkpoint_path)
            else:
                log.warning("interrupted at step %d: no checkpoint_dir, so no checkpoint "
                            "to resume from", self._p.step)
            raise
        if self.restore_best and self._p.best[3] is not None:
            self._p = self._p._replace(params=self._p.best[3])

    def summary(self, seconds):
        """One line: epochs, time, the best validation epoch, the test result."""
        h = self.history
        parts = [f"{len(h['epoch'])} epoch(s) done, {seconds:.1f} s in this fit"]
        if any(v is not None for v in h["val_loss"]):
            key = "val_accuracy" if self.classify else "val_loss"
            pick = max if self.classify else min
            best = pick(range(len(h[key])), key=lambda i: h[key][i])
            parts.append(f"best {key} {h[key][best]:.4f} at epoch {h['epoch'][best]}")
        if self.test_metrics is not None:
            loss, acc = self.test_metrics
            parts.append(f"test_loss {loss:.4f}" + ("" if acc is None else
                                                    f", test_accuracy {acc:.4f}"))
        return "; ".join(parts)

    def _checkpoint_exists(self):
        """Whether there is a checkpoint to resume from; data-parallel, every
        rank must see rank 0's file."""
        here = os.path.exists(self.checkpoint_path)
        if not self._parallel:
            return here
        seen = self.comm.allreduce_sum(int(here))
        if seen not in (0, self.comm.size):
            raise ValueError(f"Trainer.fit(resume=True): {self.checkpoint_path} exists on "
                             f"{seen} of {self.comm.size} ranks (this one: "
                             f"{'yes' if here else 'no'}); put checkpoint_dir on a file "
                             f"system that every node shares")
        return bool(seen)

    def _info(self, *args):
        if self._root and self.verbose:
            log.info(*args)

    def _run_epoch(self):
        p = self._p
        n = len(self.x_train)
        total = data.num_batches(n, self.batch_size, self.drop_last)
        self.rng.bit_generator.state = p.rng_state
        rng = self.rng if self.shuffle else None
        bar = self._bar(total, p.batch, f"epoch {p.epoch + 1}/{self.epochs}")
        t0, c0 = time.perf_counter(), time.process_time()
        start_seen = p.seen + sum(k for _, k in p.pending)
        batches = (self._shares(rng, p.batch) if self._parallel else
                   data.batches(self.x_train, self.y_train, self.batch_size, rng,
                                self.drop_last, start=p.batch))
        try:
            for xb, yb, *share in batches:
                p = self._p
                if self._parallel:
                    params, opt_state, loss = self._parallel_step(
                        p.params, p.opt_state, xb, yb, share[1], self._extra(p.step))
                else:
                    params, opt_state, loss = self._step(p.params, p.opt_state, xb, yb,
                                                         *self._extra(p.step))
                size = share[0] if share else len(xb)
                self._p = p._replace(params=params, opt_state=opt_state, batch=p.batch + 1,
                                     step=p.step + 1, pending=p.pending + ((loss, size),))
                if len(self._p.pending) >= self.log_every:
                    self._flush()
                    if bar is not None:
                        bar.set_postfix(loss=f"{self._p.last_loss:.4f}", refresh=False)
                if bar is not None:
                    bar.update(1)
            self._flush()
        finally:
            if bar is not None:
                bar.close()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        self._end_epoch(seconds, cpu, self._p.seen - start_seen)

    def _shares(self, rng, start):
        """(x, y, global batch size, rows of this rank) per global batch: the
        batches of one process (the same permutation, drawn from the same
        seed), of which this rank gathers only its share.  An empty share
        computes on one row that the weight 0 then leaves out."""
        for rows, _ in data.batches(self._rows, self._rows, self.batch_size, rng,
                                    self.drop_last, start=start):
            part = self.comm.shard(len(rows))
            mine = rows[part] if part.stop > part.start else rows[:1]
            yield (self.x_train[mine], self.y_train[mine], len(rows),
                   part.stop - part.start)

    def _parallel_step(self, params, opt_state, x, y, weight, extra):
        """One data-parallel step: this rank's loss and gradients, their mean
        over the ranks weighted by rows (one collective), the update."""
        loss, grads = self._grad_step(params, x, y, *extra)
        loss, grads = self.comm.allreduce_mean((loss, grads), weight=weight)
        params, opt_state = self._update(params, opt_state, grads)
        return params, opt_state, loss

    def _bar(self, total, initial, desc):
        if not self._root:
            return None
        show = self.progress
        if show is None:
            show = sys.stderr.isatty()
        if not show:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False)

    def _flush(self):
        """Fetch the pending losses (one transfer); stop on a NaN or inf."""
        p = self._p
        if not p.pending:
            return
        losses = to_numpy(gnp.stack([gnp.astype(v, np.float64) for v, _ in p.pending]))
        sizes = [k for _, k in p.pending]
        first_step = p.step - len(sizes) + 1
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            self._non_finite(first_step + int(bad[0]), losses, int(bad[0]))
        loss_sum = p.loss_sum
        for v, k in zip(losses.tolist(), sizes):
            loss_sum += v * k
        self._p = p._replace(loss_sum=loss_sum, seen=p.seen + sum(sizes), pending=(),
                             last_loss=float(losses[-1]), last_step=p.step)

    def _non_finite(self, step, losses, i):
        p = self._p
        last, last_step = ((float(losses[i - 1]), step - 1) if i else (p.last_loss, p.last_step))
        per_epoch = data.num_batches(len(self.x_train), self.batch_size, self.drop_last)
        where = f"epoch {(step - 1) // per_epoch + 1}, batch {(step - 1) % per_epoch + 1}"
        last_txt = (f"the last finite loss was {last:.6g} at step {last_step}" if last_step
                    else "no earlier loss was finite")
        ckpt = (f"; the last good checkpoint, after epoch {p.epoch}, is kept at "
                f"{self.checkpoint_path}" if self.checkpoint_path and
                os.path.exists(self.checkpoint_path) else "")
        raise NonFiniteLossError(
            f"training loss became {losses[i]} at step {step} ({where}); {last_txt}{ckpt}. "
            f"Lower the learning rate, clip the gradients (optim.clip_by_global_norm) or "
            f"check the data and the loss for log(0) or division by zero")

    def _end_epoch(self, seconds, cpu, samples):
        p = self._p
        record = {"epoch": p.epoch + 1, "train_loss": p.loss_sum / max(p.seen, 1),
                  "val_loss": None, "val_accuracy": None, "test_loss": None,
                  "test_accuracy": None, "seconds": seconds,
                  "cpu_seconds": cpu, "samples_per_second": samples / max(seconds, 1e-12)}
        if self.test_every_epoch:
            record["test_loss"], record["test_accuracy"] = self.evaluate(
                self.x_test, self.y_test, p.params)
        best, stopped = p.best, False
        if self.x_val is not None:
            record["val_loss"], record["val_accuracy"] = self.evaluate(self.x_val, self.y_val,
                                                                        p.params)
            best_loss, best_epoch, since, best_params = best
            if record["val_loss"] < best_loss - self.min_delta:
                best = (record["val_loss"], p.epoch + 1, 0,
                        p.params if self.early_stopping else None)
            else:
                best = (best_loss, best_epoch, since + 1, best_params)
            stopped = self.early_stopping is not None and best[2] >= self.early_stopping
        self._p = p._replace(epoch=p.epoch + 1, batch=0, rng_state=self.rng.bit_generator.state,
                             loss_sum=0.0, seen=0, records=p.records + (record,), best=best,
                             stopped=stopped)
        self._info(_describe(record, self.epochs))
        if stopped:
            self._info("early stopping: no improvement of the validation loss for %d "
                       "epochs; the best was %.6g at epoch %d", self.early_stopping,
                       best[0], best[1])
        if self.checkpoint_dir is not None:
            self.save()
            if self._parallel:
                self.comm.barrier()     # every rank may read the checkpoint now


def _describe(r, epochs):
    parts = [f"epoch {r['epoch']}/{epochs}", f"train_loss {r['train_loss']:.4f}"]
    parts += [f"{k} {r[k]:.4f}" for k in ("val_loss", "val_accuracy", "test_loss",
                                           "test_accuracy") if r[k] is not None]
    parts.append(f"{r['seconds']:.2f} s ({r['cpu_seconds']:.2f} s CPU), "
                 f"{r['samples_per_second']:.0f} samples/s")
    return "  ".join(parts)


def _differences(stored, now):
    """'key: a (now b)' for each setting that differs between two dicts."""
    return [f"{k} {stored.get(k, 'unset')} (now {now.get(k, 'unset')})"
            for k in sorted(set(stored) | set(now)) if stored.get(k) != now.get(k)]


@contextlib.contextmanager
def _console_logging(on):
    """While training, print the INFO lines to stderr when nothing else
    would show them (no handler configured anywhere); `on=False` (verbose
    off, or not rank 0) leaves logging alone."""
    if not on or log.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(min(log.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


if __name__ == "__main__":        # python -m gpuprop.train
    from gpuprop.cli import main
    sys.exit(main())
