"""The command line: `python -m gpuprop.train` / `gpuprop-train` trains an MLP
classifier on Fashion-MNIST (when installed), digits or spirals, writes the
history as JSON (and curves.png with matplotlib), checkpoints and resumes,
and runs data-parallel under mpiexec with --distributed."""
import argparse
import json
import logging
import os

from . import backend, data, distributed, nn, optim
from . import numpy as gnp
from .devices import asarray
from .train import Trainer

log = logging.getLogger("gpuprop.train")

# per dataset: the settings a flag left out takes
DEFAULTS = {
    "fashion-mnist": {"hidden": [256, 256], "lr": 2e-3, "epochs": 10, "batch_size": 128},
    "digits": {"hidden": [128], "lr": 3e-3, "epochs": 30, "batch_size": 64},
    "spirals": {"hidden": [64, 64], "lr": 1e-2, "epochs": 100, "batch_size": 32},
}


def _parser():
    p = argparse.ArgumentParser(
        prog="gpuprop-train",
        description="Train an MLP classifier with gpuprop. The dataset 'auto' is "
                    "Fashion-MNIST when its files are installed, else synthetic spirals.")
    a = p.add_argument
    a("--dataset", default="auto", choices=["auto", *data.DATASETS])
    a("--data-dir", help="directory of the Fashion-MNIST .gz files "
                         "(default: $GPUPROP_DATA_DIR, /usr/share/datasets/fashion-mnist)")
    a("--subset", type=int, help="train on the first N training samples only")
    a("--val-fraction", type=float, default=0.0,
      help="hold out this fraction of the training set for validation; 0 (the "
           "default) validates on the test split")
    a("--hidden", type=int, nargs="*", help="hidden layer sizes (default: 256 256 for "
                                            "Fashion-MNIST, 128 for digits, 64 64 for spirals)")
    a("--activation", default="relu", choices=sorted(nn.ACTIVATIONS))
    a("--init", default="he", choices=nn.INITIALIZERS)
    a("--optimizer", default="adam", choices=sorted(optim.OPTIMIZERS))
    a("--lr", type=float, help="(peak) learning rate (default: 2e-3 for Fashion-MNIST, "
                                "3e-3 for digits, 1e-2 for spirals)")
    a("--schedule", default="cosine", choices=["constant", "cosine", "step", "warmup-cosine"],
      help="learning-rate schedule over the whole run (default: cosine decay to 0)")
    a("--warmup-steps", type=int, default=100)
    a("--momentum", type=float, help="sgd and rmsprop momentum")
    a("--nesterov", action="store_true")
    a("--weight-decay", type=float, default=1e-4, help="adamw's weight decay")
    a("--clip-norm", type=float, help="clip gradients to this global norm")
    a("--l2", type=float, default=0.0, help="L2 penalty on the weights")
    a("--epochs", type=int, help="default: 10 (Fashion-MNIST), 30 (digits), 100 (spirals)")
    a("--batch-size", type=int, help="default: 128 (Fashion-MNIST), 64 (digits), 32 (spirals)")
    a("--seed", type=int, default=0)
    a("--backend", choices=backend.backend_names(),
      help="array backend (default: $GPUPROP_BACKEND or numpy)")
    a("--checkpoint-dir")
    a("--resume", action="store_true", help="continue from --checkpoint-dir")
    a("--early-stopping", type=int, metavar="PATIENCE")
    a("--out", help="directory for history.json and curves.png (default: runs/DATASET)")
    a("--progress", action=argparse.BooleanOptionalAction, default=None,
      help="tqdm progress bar (default: when installed and on a terminal)")
    a("--quiet", action="store_true", help="log warnings and errors only")
    a("--distributed", action="store_true",
      help="data-parallel over the ranks of an MPI job: mpiexec -n 8 gpuprop-train "
           "--distributed ... (NCCL with --backend cupy; one GPU per rank); "
           "--batch-size stays the global batch; rank 0 writes the outputs")
    return p


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


def _dataset(args):
    name = args.dataset
    if name == "auto":
        try:
            data.find_data_dir([f for s in data.FASHION_MNIST_FILES.values() for f in s],
                               args.data_dir)
            name = "fashion-mnist"
        except FileNotFoundError:
            log.info("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
                     ": training on synthetic spirals")
            name = "spirals"
    ds = data.load(name, args.data_dir, seed=args.seed)
    if args.subset:
        ds = ds._replace(x_train=ds.x_train[:args.subset], y_train=ds.y_train[:args.subset])
    return ds


def _save_outputs(out_dir, result):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "history.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    log.info("history written to %s", path)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no curves.png (pip install matplotlib)")
        return
    h = result["history"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(h["epoch"], h["train_loss"], label="train")
    if any(v is not None for v in h["val_loss"]):
        ax1.plot(h["epoch"], h["val_loss"], label="validation")
    ax1.set(xlabel="epoch", ylabel="loss", title=result["dataset"])
    ax1.legend()
    ax2.plot(h["epoch"], h["val_accuracy"])
    ax2.set(xlabel="epoch", ylabel="validation accuracy")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=100)
    plt.close(fig)


def main(argv=None):
    """The command line; returns the exit status (0 done, 1 error, 130 Ctrl-C)."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(message)s")
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        with backend.use_backend(args.backend or backend.get_backend()) as be:
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
    except (ValueError, TypeError, OSError, ImportError, RuntimeError, FloatingPointError) as e:
        log.error("gpuprop-train: error: %s", e)
        return 1


def _run(args, be, comm):
    if args.resume and not args.checkpoint_dir:
        raise ValueError("--resume needs --checkpoint-dir")
    ds = _dataset(args)
    for key, value in DEFAULTS[ds.name].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    x_train, y_train, x_val, y_val = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    if args.val_fraction:
        if not 0 < args.val_fraction < 1:
            raise ValueError(f"--val-fraction must lie in (0, 1), got {args.val_fraction}")
        k = int(round(len(x_train) * (1 - args.val_fraction)))
        x_train, y_train, x_val, y_val = x_train[:k], y_train[:k], x_train[k:], y_train[k:]
    model = nn.MLP([x_train.shape[1], *args.hidden, ds.num_classes], args.activation, args.init,
                   args.seed)
    steps = args.epochs * data.num_batches(len(x_train), args.batch_size)
    reg = None
    if args.l2:
        def reg(params):
            return gnp.multiply(args.l2, nn.l2_penalty([layer["W"] for layer in params]))
    ranks = f"; {comm.size} rank{'s' * (comm.size > 1)} ({comm.kind})" if comm else ""
    log.info("%s: %d training and %d %s samples; %r on %s%s", ds.name, len(x_train),
             len(x_val), "validation" if args.val_fraction else "test (used for validation)",
             model, be.describe, ranks)
    trainer = Trainer(model.apply, model.init(), "cross_entropy", _optimizer(args, steps),
                      x_train, y_train, x_val, y_val, epochs=args.epochs,
                      batch_size=args.batch_size, seed=args.seed, regularizer=reg,
                      checkpoint_dir=args.checkpoint_dir, early_stopping=args.early_stopping,
                      progress=args.progress, comm=comm)
    history = trainer.fit(resume=args.resume)
    result = {"dataset": ds.name, "backend": be.name, "device": be.describe,
              "config": vars(args), "history": history}
    if args.val_fraction:
        result["test_loss"], result["test_accuracy"] = trainer.evaluate(
            asarray(ds.x_test), asarray(ds.y_test))
        log.info("test_loss %.4f  test_accuracy %.4f", result["test_loss"],
                 result["test_accuracy"])
    if comm is None or comm.is_root:
        _save_outputs(args.out or os.path.join("runs", ds.name), result)
    if comm is not None:
        comm.barrier()
    return 0
