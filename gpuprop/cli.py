"""The command line: `python -m gpuprop.train` / `gpuprop-train` trains an MLP
classifier on Fashion-MNIST (when installed), digits or spirals.

A run holds a seeded validation split out of the training set (early
stopping and the best epoch are chosen on it) and evaluates the test set
once at the end.  It keeps, under --out (default runs/DATASET), model.npz
(parameters, model config, optimizer, metrics: `gpuprop-train --evaluate`,
`--predict`, or nn.MLP.load), history.json and curves.png (with
matplotlib), also after Ctrl-C.  The output directories are checked before
the first step; bad flags exit with status 2 and a one-line message.
Checkpoints, --resume and data-parallel runs (--distributed under mpiexec)
are the Trainer's.
"""
import argparse
import json
import logging
import math
import os
import sys
import tempfile

import numpy as np

from . import backend, data, distributed, nn, optim, serialization
from . import numpy as gnp
from .devices import asarray, to_numpy
from .train import ResumeMismatchError, Trainer

log = logging.getLogger("gpuprop.train")

# per dataset: the settings a flag left out takes
DEFAULTS = {
    "fashion-mnist": {"hidden": [256, 256], "lr": 2e-3, "epochs": 10, "batch_size": 128},
    "digits": {"hidden": [128], "lr": 3e-3, "epochs": 30, "batch_size": 64},
    "spirals": {"hidden": [64, 64], "lr": 1e-2, "epochs": 100, "batch_size": 32},
}
# flags that only some optimizers or schedules read, and their defaults there
ONLY_FOR = {"momentum": ("optimizer", ("sgd", "rmsprop"), None),
            "weight_decay": ("optimizer", ("adamw",), 1e-4),
            "warmup_steps": ("schedule", ("warmup-cosine",), 100)}
# the flags that define a run: --resume refuses a checkpoint written with others
RUN_SETTINGS = ("dataset", "subset", "val_split", "hidden", "activation", "init",
                "optimizer", "lr", "schedule", "warmup_steps", "momentum", "nesterov",
                "weight_decay", "clip_norm", "l2", "epochs", "batch_size", "seed")
# what --evaluate and --predict read besides their own flag
ONLY_WITH = {"evaluate": {"dataset", "data_dir", "backend", "quiet"},
             "predict": {"backend", "quiet"}}
OUTPUTS = ("model.npz", "history.json", "curves.png")


class UsageError(ValueError):
    """A flag (or GPUPROP_DATA_DIR) that cannot be used; exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """argparse's error line alone (no usage block), exit status 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _flag(dest):
    return "--" + dest.replace("_", "-")


# ---- flag types: argparse names the flag in their errors ----------------------------
def _integer(least):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be an integer >= {least}, got {text}")
        return value
    return parse


def _real(low, high=math.inf, low_open=False, high_open=True):
    """A finite float in the interval; the error shows the interval."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        inside = ((value > low if low_open else value >= low) and
                  (value < high if high_open else value <= high))
        if not (math.isfinite(value) and inside):
            span = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {text}")
        return value
    return parse


def _parser():
    p = _Parser(
        prog="gpuprop-train",
        description="Train an MLP classifier with gpuprop. The dataset 'auto' is "
                    "Fashion-MNIST when its files are installed (or --data-dir or "
                    "GPUPROP_DATA_DIR is given), else synthetic spirals.")
    a = p.add_argument
    a("--dataset", default="auto", choices=["auto", *data.DATASETS])
    a("--data-dir", help="directory of the Fashion-MNIST .gz files "
                         "(default: $GPUPROP_DATA_DIR, /usr/share/datasets/fashion-mnist)")
    a("--subset", type=_integer(1), help="train on the first N training samples only")
    a("--val-split", type=_real(0, 1), default=0.1,
      help="fraction of the training set held out (seeded) for validation, early "
           "stopping and the best epoch (default 0.1; 0: none)")
    a("--test-every-epoch", action="store_true",
      help="also evaluate the test set every epoch (default: once, at the end)")
    a("--hidden", type=_integer(1), nargs="+",
      help="hidden layer sizes (default: 256 256 for Fashion-MNIST, 128 for digits, "
           "64 64 for spirals)")
    a("--activation", default="relu", choices=sorted(nn.ACTIVATIONS))
    a("--init", default="he", choices=nn.INITIALIZERS)
    a("--optimizer", default="adam", choices=sorted(optim.OPTIMIZERS))
    a("--lr", type=_real(0, low_open=True),
      help="(peak) learning rate (default: 2e-3 for Fashion-MNIST, 3e-3 for digits, "
           "1e-2 for spirals)")
    a("--schedule", default="cosine", choices=["constant", "cosine", "step", "warmup-cosine"],
      help="learning-rate schedule over the whole run (default: cosine decay to 0)")
    a("--warmup-steps", type=_integer(1), help="warmup-cosine only (default 100)")
    a("--momentum", type=_real(0, 1), help="sgd and rmsprop only")
    a("--nesterov", action="store_true", help="Nesterov momentum (needs --momentum)")
    a("--weight-decay", type=_real(0), help="adamw only (default 1e-4)")
    a("--clip-norm", type=_real(0, low_open=True), help="clip gradients to this global norm")
    a("--l2", type=_real(0), default=0.0, help="L2 penalty on the weights")
    a("--dropout", type=_real(0, 1), default=0.0, metavar="RATE",
      help="inverted dropout after each hidden activation in training, 0 <= RATE < 1 "
           "(masks from gpuprop.random keys of --seed and the step; default 0: none)")
    a("--epochs", type=_integer(1),
      help="default: 10 (Fashion-MNIST), 30 (digits), 100 (spirals)")
    a("--batch-size", type=_integer(1),
      help="default: 128 (Fashion-MNIST), 64 (digits), 32 (spirals)")
    a("--seed", type=_integer(0), default=0,
      help="initialisation, validation split and shuffling")
    a("--backend", choices=backend.backend_names(),
      help="array backend (default: $GPUPROP_BACKEND or numpy)")
    a("--checkpoint-dir", help="checkpoint each epoch and on Ctrl-C; locked while a run "
                               "uses it")
    a("--resume", action="store_true",
      help="continue from --checkpoint-dir (with the same settings)")
    a("--early-stopping", type=_integer(1), metavar="PATIENCE",
      help="stop after PATIENCE epochs without a better validation loss")
    a("--out", help="directory for model.npz, history.json and curves.png "
                    "(default: runs/DATASET)")
    a("--evaluate", metavar="MODEL", help="evaluate a saved model.npz on its dataset's "
                                          "test set instead of training")
    a("--predict", nargs=2, metavar=("MODEL", "INPUT"),
      help="print the class of each row of INPUT (.npy features, or an IDX file of "
           "images) instead of training")
    a("--progress", action=argparse.BooleanOptionalAction, default=None,
      help="tqdm progress bar (default: when installed and on a terminal)")
    a("--quiet", action="store_true", help="log warnings and errors only")
    a("--distributed", action="store_true",
      help="data-parallel over the ranks of an MPI job: mpiexec -n 8 gpuprop-train "
           "--distributed ... (NCCL with --backend cupy; one GPU per rank); "
           "--batch-size stays the global batch; rank 0 writes the outputs")
    return p


def _check_combinations(p, args):
    """Flags that do not apply to the others given are errors, not ignored."""
    given = {k for k, v in vars(args).items() if v != p.get_default(k)}
    for mode, allowed in ONLY_WITH.items():
        if mode in given and given - allowed - {mode}:
            others = ", ".join(_flag(k) for k in sorted(given - allowed - {mode}))
            raise UsageError(f"{_flag(mode)} does not train, so these flags do not apply: "
                             f"{others}")
    for dest, (owner, values, default) in ONLY_FOR.items():
        if dest in given and getattr(args, owner) not in values:
            raise UsageError(f"{_flag(dest)} applies to {_flag(owner)} {' or '.join(values)}"
                             f", not {getattr(args, owner)}")
        if dest not in given:
            setattr(args, dest, default if getattr(args, owner) in values else None)
    if args.nesterov and args.momentum is None:
        raise UsageError("--nesterov needs --momentum")
    if args.resume and not args.checkpoint_dir:
        raise UsageError("--resume needs --checkpoint-dir")
    if args.early_stopping and not args.val_split:
        raise UsageError("--early-stopping watches the validation loss: it needs "
                         "--val-split > 0")
    if args.data_dir and args.dataset not in ("auto", "fashion-mnist"):
        raise UsageError(f"--data-dir applies to --dataset fashion-mnist, not {args.dataset}")


# ---- data ---------------------------------------------------------------------------
def _dataset_name(args):
    """The dataset 'auto' stands for: Fashion-MNIST when a data directory is
    named or the system copy is installed, else spirals."""
    if args.dataset != "auto":
        return args.dataset
    if args.data_dir or os.environ.get("GPUPROP_DATA_DIR", "").strip():
        return "fashion-mnist"
    try:
        data.find_data_dir(_fashion_files())
        return "fashion-mnist"
    except FileNotFoundError:
        log.info("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
                 ": training on synthetic spirals")
        return "spirals"


def _fashion_files():
    return [f for split in data.FASHION_MNIST_FILES.values() for f in split]


def _load(name, args):
    """The dataset; a named data directory without the files is a UsageError."""
    try:
        return data.load(name, args.data_dir, seed=args.seed)
    except FileNotFoundError as e:
        env = os.environ.get("GPUPROP_DATA_DIR", "").strip()
        source = (f"--data-dir {args.data_dir}" if args.data_dir else
                  f"GPUPROP_DATA_DIR={env}" if env else None)
        if source is None:
            raise
        raise UsageError(f"{source} lacks the Fashion-MNIST files: {e}") from e


def _training_sets(ds, args):
    """(x_train, y_train, x_val, y_val): --subset, then --val-split."""
    x, y = ds.x_train, ds.y_train
    if args.subset:
        if args.subset > len(x):
            raise UsageError(f"--subset {args.subset} exceeds the {len(x)} training samples "
                             f"of {ds.name}")
        x, y = x[:args.subset], y[:args.subset]
    try:
        x, y, x_val, y_val = data.split_validation(x, y, args.val_split, args.seed)
    except ValueError as e:
        raise UsageError(f"--val-split {args.val_split}: {e}") from e
    return (x, y, x_val, y_val) if len(x_val) else (x, y, None, None)


# ---- outputs ------------------------------------------------------------------------
def _writable_dir(flag, path):
    """Create `path` and prove it writable now, before any training."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path} is not a writable directory ({e.strerror or e}); "
                         f"choose another") from e


def _check_outputs(args, out):
    _writable_dir("--out", out)
    for name in OUTPUTS:
        if os.path.isdir(os.path.join(out, name)):
            raise UsageError(f"--out {out}: {name} there is a directory; remove it or "
                             f"choose another --out")
    if args.checkpoint_dir:
        _writable_dir("--checkpoint-dir", args.checkpoint_dir)


def _write_outputs(out, model, trainer, result):
    """Write model.npz, history.json and curves.png (with matplotlib), each
    whatever happens to the others; returns (names written, failures)."""
    writers = dict(zip(OUTPUTS, (
        lambda p: model.save(p, trainer.params, dataset=result["dataset"],
                             optimizer=result["config"]["optimizer"],
                             metrics=result["metrics"]),
        lambda p: _write_json(p, result),
        lambda p: _plot(p, result, plt))))
    plt = _pyplot()
    if plt is None:
        log.info("matplotlib is not installed: no curves.png (pip install matplotlib)")
        del writers["curves.png"]
    written, failed = [], 0
    for name, write in writers.items():
        try:
            write(os.path.join(out, name))
            written.append(name)
        except (OSError, ValueError, TypeError) as e:
            log.error("gpuprop-train: error: could not write %s: %s",
                      os.path.join(out, name), e)
            failed += 1
    return written, failed


def _write_json(path, result):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, path)


def _pyplot():
    """matplotlib.pyplot drawing into files, or None when not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _plot(path, result, plt):
    h, m = result["history"], result["metrics"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax1, "train_loss", "train"), (ax1, "val_loss", "validation"),
                           (ax1, "test_loss", "test"), (ax2, "val_accuracy", "validation"),
                           (ax2, "test_accuracy", "test")):
        if any(v is not None for v in h[key]):
            ax.plot(h["epoch"], h[key], label=label)
    ax1.set(xlabel="epoch", ylabel="loss")
    ax2.set(xlabel="epoch", ylabel="accuracy")
    for ax in (ax1, ax2):
        if ax.lines:
            ax.legend()
    test = (f"final test accuracy {m['test_accuracy']:.4f}"
            if m["test_accuracy"] is not None else "no test evaluation (interrupted)")
    fig.suptitle(f"{result['dataset']}: {test}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- the modes ----------------------------------------------------------------------
def main(argv=None):
    """The command line; returns the exit status (0 done, 1 error, 2 bad
    flags, 130 Ctrl-C)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(message)s")
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        _check_combinations(parser, args)
        with backend.use_backend(args.backend or backend.get_backend()) as be:
            if args.evaluate:
                return _evaluate(args)
            if args.predict:
                return _predict(*args.predict)
            if not args.distributed:
                return _run(args, be, None)
            # before any array: the NCCL communicator picks this rank's GPU
            comm = distributed.get_communicator()
            if not comm.is_root:
                log.setLevel(logging.WARNING)
            with comm.abort_on_error():     # a failing rank ends the job, no rank hangs
                return _run(args, be, comm)
    except KeyboardInterrupt:
        return 130
    except (UsageError, ResumeMismatchError) as e:
        parser.error(str(e))
    except (ValueError, TypeError, OSError, ImportError, RuntimeError, FloatingPointError) as e:
        log.error("gpuprop-train: error: %s", e)
        return 1


def _load_model(flag, path):
    try:
        return nn.MLP.load(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"{flag} {path}: {e}") from e


def _evaluate(args):
    """Print the test loss and accuracy of a saved model on its dataset."""
    model, params = _load_model("--evaluate", args.evaluate)
    name = args.dataset
    if name == "auto":
        name = serialization.load_metadata(args.evaluate).get("dataset") or _dataset_name(args)
    ds = _load(name, args)
    if ds.x_test.shape[1] != model.sizes[0]:
        raise UsageError(f"--evaluate {args.evaluate}: the model takes {model.sizes[0]} "
                         f"features, {ds.name} has {ds.x_test.shape[1]}")
    logits = model.apply(params, asarray(ds.x_test))
    y = asarray(ds.y_test)
    loss = float(to_numpy(nn.softmax_cross_entropy(logits, y)))
    acc = float(to_numpy(nn.accuracy(logits, y)))
    print(f"test_loss {loss:.4f}  test_accuracy {acc:.4f}  ({len(y)} test samples of "
          f"{ds.name})")
    return 0


def _predict(model_path, input_path):
    """Print the predicted class of each row of the input, one per line."""
    model, params = _load_model("--predict", model_path)
    try:
        x = (np.load(input_path, allow_pickle=False) if input_path.endswith(".npy")
             else data.read_idx(input_path))
    except (OSError, ValueError) as e:
        raise UsageError(f"--predict {input_path}: {e}") from e
    x = x.reshape(len(x), -1)
    if x.dtype == np.uint8:             # images, scaled as the training data were
        x = x.astype(np.float32) / np.float32(255)
    if x.shape[1] != model.sizes[0] or x.dtype.kind != "f" or not np.all(np.isfinite(x)):
        raise UsageError(f"--predict {input_path}: expected finite float (or uint8 image) "
                         f"rows of {model.sizes[0]} features, got {x.dtype} rows of "
                         f"{x.shape[1]}")
    print("\n".join(map(str, to_numpy(model.predict(params, x)).tolist())))
    return 0


def _run(args, be, comm):
    root = comm is None or comm.is_root
    name = _dataset_name(args)
    for key, value in DEFAULTS[name].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    ds = _load(name, args)
    x_train, y_train, x_val, y_val = _training_sets(ds, args)
    out = args.out or os.path.join("runs", name)
    if root:
        _check_outputs(args, out)
    model = nn.MLP([x_train.shape[1], *args.hidden, ds.num_classes], args.activation,
                   args.init, args.seed)
    steps = args.epochs * data.num_batches(len(x_train), args.batch_size)
    reg = None
    if args.l2:
        def reg(params):
            return gnp.multiply(args.l2, nn.l2_penalty([layer["W"] for layer in params]))
    ranks = f"; {comm.size} rank{'s' * (comm.size > 1)} ({comm.kind})" if comm else ""
    log.info("%s: %d training, %d validation and %d test samples; %r on %s%s", name,
             len(x_train), 0 if x_val is None else len(x_val), len(ds.x_test), model,
             be.describe, ranks)
    settings = {_flag(k): getattr(args, k) for k in RUN_SETTINGS}
    settings["--dataset"] = name
    if args.dropout:        # only when used: checkpoints from before the flag still resume
        settings["--dropout"] = args.dropout
    trainer = Trainer(model.apply, model.init(), "cross_entropy", _optimizer(args, steps),
                      x_train, y_train, x_val, y_val,
                      epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                      regularizer=reg, checkpoint_dir=args.checkpoint_dir,
                      early_stopping=args.early_stopping, progress=args.progress, comm=comm,
                      x_test=ds.x_test, y_test=ds.y_test,
                      test_every_epoch=args.test_every_epoch, settings=settings,
                      dropout=args.dropout)
    try:
        trainer.fit(resume=args.resume)
    except KeyboardInterrupt:
        if root:
            _finish(out, model, trainer, name, be, args, interrupted=True)
        raise
    status = _finish(out, model, trainer, name, be, args, interrupted=False) if root else 0
    if comm is not None:
        comm.barrier()
    return status


def _finish(out, model, trainer, name, be, args, interrupted):
    """Write the outputs and say where; 1 if any write failed."""
    h = trainer.history
    test_loss, test_acc = trainer.test_metrics or (None, None)
    metrics = {"epochs": len(h["epoch"]), "train_loss": (h["train_loss"] or [None])[-1],
               "val_loss": (h["val_loss"] or [None])[-1],
               "val_accuracy": (h["val_accuracy"] or [None])[-1],
               "test_loss": test_loss, "test_accuracy": test_acc, "interrupted": interrupted}
    result = {"dataset": name, "backend": be.name, "device": be.describe,
              "config": vars(args), "metrics": metrics, "history": h}
    written, failed = _write_outputs(out, model, trainer, result)
    what = f" after {len(h['epoch'])} finished epoch(s)" if interrupted else ""
    log.info("wrote%s: %s in %s", what, ", ".join(written) or "nothing", out)
    return 1 if failed else 0


# ---- the optimizer ------------------------------------------------------------------
def _learning_rate(args, total_steps):
    if args.schedule == "cosine":
        return optim.cosine_decay_schedule(args.lr, total_steps)
    if args.schedule == "step":
        return optim.step_schedule(args.lr, max(total_steps // 3, 1), 0.1)
    if args.schedule == "warmup-cosine":
        warm = min(args.warmup_steps, max(total_steps - 1, 1))
        return optim.warmup_cosine_decay_schedule(0.0, args.lr, warm, max(total_steps, warm + 1))
    return args.lr


def _optimizer(args, total_steps):
    lr = _learning_rate(args, total_steps)
    if args.optimizer == "sgd":
        opt = optim.sgd(lr, momentum=args.momentum, nesterov=args.nesterov)
    elif args.optimizer == "rmsprop":
        opt = optim.rmsprop(lr, momentum=args.momentum, nesterov=args.nesterov)
    elif args.optimizer == "adamw":
        opt = optim.adamw(lr, weight_decay=args.weight_decay)
    else:
        opt = optim.adam(lr)
    return optim.chain(optim.clip_by_global_norm(args.clip_norm), opt) if args.clip_norm else opt


if __name__ == "__main__":        # python -m gpuprop.cli
    sys.exit(main())
