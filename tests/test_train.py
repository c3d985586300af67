"""The Trainer: its step against a hand-computed one, checkpoints (atomicity,
resume exactness, Ctrl-C, the lock, settings), the NaN stop, early stopping,
validation and test sets, progress output, refusing bad input, and
Fashion-MNIST end to end.  The command line is in test_cli.py."""
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop import data, nn, optim, serialization, train
from gpuprop.train import Trainer
from support import assert_same_trees, dev, host

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def problem(n=48, seed=0):
    """A 3-class problem in 4 features whose labels a small MLP learns."""
    x = np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)
    w = np.random.default_rng(99).standard_normal((4, 3))
    return x, np.argmax(x @ w, axis=1).astype(np.int32)


X, Y = problem()
XV, YV = problem(24, seed=1)


def make(ckpt=None, epochs=3, sizes=(4, 8, 3), x=X, y=Y, xv=XV, yv=YV, opt=None, **kw):
    model = nn.MLP(list(sizes), seed=0)
    kw = {"batch_size": 8, "progress": False, **kw}     # 6 batches an epoch
    return Trainer(model.apply, model.init(), "cross_entropy", opt or optim.adam(1e-2),
                   x, y, xv, yv, epochs=epochs, seed=1, checkpoint_dir=ckpt, log_every=4,
                   **kw)


def test_step_is_gradient_descent_by_hand():
    rng = np.random.default_rng(3)
    W, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    step = train.make_train_step(lambda p, x: x @ p["W"] + p["b"], nn.mse, optim.sgd(0.1))
    params = {"W": dev(W), "b": dev(b)}
    new, _, loss = step(params, optim.sgd(0.1).init(params), dev(x), dev(y))
    r = x @ W + b - y
    d = 2 * r / r.size                          # d mean(r^2) / d pred
    np.testing.assert_allclose(host(loss), np.mean(r ** 2), rtol=1e-12)
    np.testing.assert_allclose(host(new["W"]), W - 0.1 * x.T @ d, rtol=1e-12)
    np.testing.assert_allclose(host(new["b"]), b - 0.1 * d.sum(0), rtol=1e-12)


def test_fit_learns_and_records_history(caplog):
    t = make(epochs=15)
    with caplog.at_level(logging.INFO, logger="gpuprop.train"):
        h = t.fit()
    assert h["epoch"] == list(range(1, 16))
    assert set(h) == {"epoch", "train_loss", "val_loss", "val_accuracy", "test_loss",
                      "test_accuracy", "seconds", "cpu_seconds", "samples_per_second"}
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h["val_accuracy"][0] < 0.5 and h["val_accuracy"][-1] > 0.8
    assert all(s > 0 for s in h["seconds"]) and all(v > 0 for v in h["samples_per_second"])
    assert re.search(r"epoch 15/15  train_loss \d\.\d{4}  val_loss .* samples/s", caplog.text)


def test_the_step_is_compiled_once_per_batch_shape():
    t = make(epochs=2, x=X[:44], y=Y[:44])      # batches of 8 and a last one of 4
    t.fit()
    assert t._step.traces == 2
    assert t._eval.traces == 1


def test_evaluate_by_hand():
    t = make(epochs=1)
    t.fit()
    loss, acc = t.evaluate(XV, YV)             # host arrays are moved
    p = host(t.params)
    h = np.maximum(XV @ p[0]["W"] + p[0]["b"], 0) @ p[1]["W"] + p[1]["b"]
    h = h.astype(np.float64)
    logp = h - np.log(np.exp(h - h.max(1, keepdims=True)).sum(1, keepdims=True)) - h.max(1, keepdims=True)
    np.testing.assert_allclose(loss, -np.mean(logp[np.arange(len(YV)), YV]), rtol=1e-5)
    assert acc == np.mean(h.argmax(1) == YV)


# ---- checkpoints ------------------------------------------------------------
def test_resume_is_bit_identical(tmp_path):
    full = make(tmp_path / "a")
    full.fit()
    first = make(tmp_path / "b", epochs=1)
    first.fit()
    resumed = make(tmp_path / "b", epochs=3)
    resumed.fit(resume=True)
    assert_same_trees(resumed.params, full.params)
    assert_same_trees(resumed.opt_state, full.opt_state)
    for k in ("train_loss", "val_loss", "val_accuracy"):
        assert resumed.history[k] == full.history[k]
    with pytest.raises(AssertionError):
        assert_same_trees(first.params, full.params)


def test_dropout_resume_is_bit_identical_and_evaluation_never_drops(tmp_path):
    full = make(tmp_path / "a", dropout=0.3)
    full.fit()
    first = make(tmp_path / "b", epochs=1, dropout=0.3)
    first.fit()
    resumed = make(tmp_path / "b", epochs=3, dropout=0.3)
    resumed.fit(resume=True)
    assert_same_trees(resumed.params, full.params)
    assert resumed.history["train_loss"] == full.history["train_loss"]
    plain = make(epochs=3)
    plain.fit()
    with pytest.raises(AssertionError):      # the masks did change training
        assert_same_trees(plain.params, full.params)
    # evaluation uses the model without dropout: the same loss twice, by hand
    loss, _ = full.evaluate(XV, YV)
    assert full.evaluate(XV, YV)[0] == loss
    out = host(nn.MLP([4, 8, 3]).apply(full.params, dev(XV)))
    logp = out - np.log(np.exp(out).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -np.mean(logp[np.arange(len(YV)), YV]), rtol=1e-5)


def test_dropout_needs_a_rate_and_a_model_that_takes_a_key():
    for bad in (1.0, -0.5, 2):
        with pytest.raises(ValueError, match=r"Trainer: dropout must be a dropout rate with "
                                             r"0 <= rate < 1 .*got"):
            make(dropout=bad)
    model = nn.MLP([4, 8, 3])
    with pytest.raises(TypeError, match=r"Trainer: dropout=0.5 calls apply\(params, x, "
                                        r"key=\.\.\., dropout=rate\).*such as MLP.apply"):
        Trainer(lambda p, x: model.apply(p, x), model.init(), "cross_entropy",
                optim.adam(1e-2), X, Y, dropout=0.5)


def test_ctrl_c_saves_a_checkpoint_and_resume_is_exact(tmp_path, caplog):
    full = make(tmp_path / "a")
    full.fit()
    t = make(tmp_path / "b")
    step, calls = t._step, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 10:                    # epoch 2, batch 4
            raise KeyboardInterrupt
        return step(*args)
    t._step = interrupted
    with pytest.raises(KeyboardInterrupt), caplog.at_level(logging.WARNING):
        t.fit()
    assert "interrupted at step 9 (epoch 2, batch 3): checkpoint saved" in caplog.text
    _, meta = train.load_checkpoint(t.checkpoint_path, {})
    assert (meta["epoch"], meta["batch"], meta["step"]) == (1, 3, 9)
    resumed = make(tmp_path / "b")
    resumed.fit(resume=True)
    assert_same_trees(resumed.params, full.params)
    assert resumed.history["train_loss"] == full.history["train_loss"]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    t = make(tmp_path, epochs=1)
    t.fit()
    path = t.checkpoint_path
    before = open(path, "rb").read()
    saved = host(t.params)

    def dies_midway(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")
    monkeypatch.setattr(np, "savez", dies_midway)
    with pytest.raises(OSError, match="No space left"):
        t.save()
    monkeypatch.undo()

    def killed_before_rename(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", killed_before_rename)
    with pytest.raises(KeyboardInterrupt):
        t.save()
    monkeypatch.undo()

    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == [train.CHECKPOINT_NAME]      # no temporary left
    trees, meta = train.load_checkpoint(path, {"params": t.params})
    assert_same_trees(trees["params"], saved)
    assert meta["epoch"] == 1


def test_damaged_or_foreign_checkpoints_are_clear_errors(tmp_path):
    make(tmp_path, epochs=1).fit()
    other = make(tmp_path, sizes=(4, 5, 3))
    with pytest.raises(ValueError, match="was written for another model or optimizer"):
        other.fit(resume=True)
    other_batch = make(tmp_path, batch_size=16)
    with pytest.raises(ValueError, match="written with batch_size=8, this Trainer has "
                                         "batch_size=16"):
        other_batch.fit(resume=True)
    path = tmp_path / train.CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="is not a readable gpuprop checkpoint"):
        make(tmp_path).fit(resume=True)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    def exploding(count):       # a learning rate that turns NaN at the 9th update
        return gnp.astype(gnp.where(gnp.less(count, 8), 0.01, np.nan), np.float32)

    t = make(tmp_path, opt=optim.sgd(exploding))
    with pytest.raises(train.NonFiniteLossError) as err:
        t.fit()
    msg = str(err.value)
    # params turn NaN in step 9, so the loss of step 10 (epoch 2, batch 4) is NaN
    assert re.search(r"training loss became nan at step 10 \(epoch 2, batch 4\); the last "
                     r"finite loss was \d\.\d+ at step 9; the last good checkpoint, after "
                     r"epoch 1, is kept at .*checkpoint\.npz", msg), msg
    one_epoch = make(tmp_path / "ref", epochs=1, opt=optim.sgd(0.01))
    one_epoch.fit()
    trees, meta = train.load_checkpoint(t.checkpoint_path, {"params": t.params})
    assert meta["epoch"] == 1 and meta["step"] == 6
    assert_same_trees(trees["params"], one_epoch.params)


def test_early_stopping_restores_the_best_epoch():
    shifted = ((Y + 1) % 3).astype(np.int32)    # validation labels the model unlearns
    t = make(epochs=10, xv=X, yv=shifted, early_stopping=2)
    h = t.fit()
    assert h["epoch"] == [1, 2, 3]
    assert h["val_loss"][1] >= h["val_loss"][0] and h["val_loss"][2] >= h["val_loss"][0]
    best = make(epochs=1, xv=X, yv=shifted)
    best.fit()
    assert_same_trees(t.params, best.params)


def test_resume_refuses_other_settings_naming_each(tmp_path):
    make(tmp_path, settings={"epochs": 3, "schedule": "cosine", "lr": 0.01}).fit()
    other = make(tmp_path, settings={"epochs": 4, "schedule": "cosine", "lr": 0.1})
    with pytest.raises(train.ResumeMismatchError, match=r"other settings: epochs 3 \(now "
                                                        r"4\); lr 0.01 \(now 0.1\);"):
        other.fit(resume=True)


def test_a_checkpoint_holding_nan_is_refused(tmp_path):
    t = make(tmp_path, epochs=1)
    t.fit()
    params = host(t.params)
    params[1]["b"][2] = np.inf
    t._p = t._p._replace(params=params)
    t.save()
    with pytest.raises(serialization.NonFiniteValueError,
                       match=r"holds 1 NaN or infinite value\(s\) in params leaf 3"):
        make(tmp_path).fit(resume=True)


def test_the_checkpoint_dir_is_locked_while_fitting(tmp_path):
    lock = tmp_path / serialization.LOCK_NAME
    t = make(tmp_path, epochs=1)
    seen = []
    step = t._step

    def look(*args):
        seen.append(lock.read_text())
        return step(*args)
    t._step = look
    t.fit()
    assert set(seen) == {str(os.getpid())} and not lock.exists()
    lock.write_text(str(os.getppid()))              # a live process
    with pytest.raises(serialization.DirectoryLockedError,
                       match=f"in use by another run \\(pid {os.getppid()}, lock file"):
        make(tmp_path, epochs=1).fit()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(str(dead.pid))                  # stale: taken over
    make(tmp_path, epochs=2).fit(resume=True)
    assert not lock.exists()
    t = make(lock, epochs=1)                        # a file
    lock.write_text("")
    with pytest.raises(NotADirectoryError, match="checkpoint directory .*lock is a file"):
        t.fit()
    assert t.history["epoch"] == []


# ---- validation and test sets, progress ---------------------------------------
def test_the_test_set_is_evaluated_at_the_end_or_every_epoch_if_asked(caplog):
    xt, yt = problem(30, seed=2)
    t = make(epochs=2, x_test=xt, y_test=yt)
    with caplog.at_level(logging.INFO, logger="gpuprop.train"):
        h = t.fit()
    assert h["test_loss"] == [None, None] and h["test_accuracy"] == [None, None]
    assert t.test_metrics == t.evaluate(xt, yt)
    assert "test" not in caplog.text.split("epoch 2/2")[1].split("\n")[0]
    assert re.search(r"2 epoch\(s\) done, .*; best val_accuracy \d\.\d{4} at epoch \d; "
                     r"test_loss \d\.\d{4}, test_accuracy \d\.\d{4}", caplog.text)
    each = make(epochs=2, x_test=xt, y_test=yt, test_every_epoch=True)
    h = each.fit()
    assert h["test_accuracy"][-1] == each.test_metrics[1] and None not in h["test_loss"]
    with pytest.raises(ValueError, match="test_every_epoch=True needs x_test"):
        make(test_every_epoch=True)


PRINTS = """
import numpy as np
from gpuprop import nn, optim
from gpuprop.train import Trainer
x = np.random.default_rng(0).standard_normal((40, 2)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int32)
model = nn.MLP([2, 4, 2])
Trainer(model.apply, model.init(), "cross_entropy", optim.adam(1e-2), x, y, x, y,
        epochs=2, batch_size=8, x_test=x, y_test=y, verbose={verbose}).fit()
"""


def test_progress_is_printed_by_default_and_verbose_false_silences_it(backend_name):
    if backend_name != "numpy":
        pytest.skip("a subprocess: run once")
    env = {**os.environ, "PYTHONPATH": ROOT}
    for verbose in (True, False):
        p = subprocess.run([sys.executable, "-c", PRINTS.format(verbose=verbose)], env=env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        if verbose:
            assert re.search(r"^epoch 1/2  train_loss .*\nepoch 2/2  .*\n2 epoch\(s\) "
                             r"done, .*test_accuracy \d\.\d{4}\n$", p.stderr), p.stderr
        else:
            assert p.stderr == "" and p.stdout == ""


# ---- refusing bad input -----------------------------------------------------
def bad_inputs():
    nan_x = X.copy()
    nan_x[5, 2] = np.nan
    inf_xv = XV.copy()
    inf_xv[3, 0] = np.inf
    return {
        "lengths": (dict(y=Y[:47]), ValueError, "x_train has 48 rows but y_train has 47"),
        "label too big": (dict(y=np.where(Y == 2, 3, Y).astype(np.int32)), ValueError,
                          r"y_train has labels from 0 to 3, but the model has 3 output\(s\), "
                          r"so labels must lie in 0..2"),
        "negative label": (dict(yv=(YV - 1).astype(np.int32)), ValueError,
                           "y_val has labels from -1 to 1"),
        "nan": (dict(x=nan_x), ValueError,
                r"x_train contains 1 NaN or infinite value\(s\), the first in row 5"),
        "inf": (dict(xv=inf_xv), ValueError, "x_val contains 1 NaN or infinite value"),
        "empty": (dict(x=X[:0], y=Y[:0]), ValueError, "x_train is empty"),
        "uint8": (dict(x=(X * 10).astype(np.uint8)), TypeError,
                  "x_train has dtype uint8; features must be floating point"),
        "float64": (dict(x=X.astype(np.float64)), TypeError,
                    "x_train has dtype float64 but the parameters are float32"),
        "string labels": (dict(y=Y.astype(str)), TypeError, "y_train has dtype <U1"),
        "bool labels": (dict(y=Y > 0), TypeError, "y_train has dtype bool"),
        "features": (dict(x=np.ones((48, 5), np.float32), xv=np.ones((24, 5), np.float32)),
                     ValueError, r"fails on the first rows of x_train.*do not fit the first"),
        "val features": (dict(xv=XV[:, :3]), ValueError,
                         r"x_val rows have shape \(3,\) but x_train rows \(4,\)"),
        "no val for early stopping": (dict(xv=None, yv=None, early_stopping=2), ValueError,
                                      "early_stopping watches the validation loss"),
        "val label kind": (dict(yv=YV.astype(np.float32)), TypeError,
                           "y_train has dtype int32 but y_val float32"),
        "batch size": (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    }


@pytest.mark.parametrize("case", sorted(bad_inputs()))
def test_bad_input_is_refused_before_training(case, tmp_path):
    kwargs, error, message = bad_inputs()[case]
    with pytest.raises(error, match=message):
        make(tmp_path / "ck", **kwargs).fit()
    assert not (tmp_path / "ck").exists()


def test_regression_targets_and_device_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2)).astype(np.float32)
    y = (x[:, :1] * 2 - x[:, 1:]).astype(np.float32)
    model = nn.MLP([2, 1], activation="identity")
    t = Trainer(model.apply, model.init(), "mse", optim.sgd(0.1), dev(x), dev(y), dev(x),
                dev(y), epochs=20, batch_size=10, progress=False)
    h = t.fit()
    assert h["val_accuracy"] == [None] * 20 and h["val_loss"][-1] < 1e-3
    np.testing.assert_allclose(host(t.params)[0]["W"], [[2], [-1]], atol=0.02)
    bad_y = y.copy()
    bad_y[7] = np.nan
    with pytest.raises(ValueError, match=r"y_train contains 1 NaN .* row 7"):
        Trainer(model.apply, model.init(), "mse", optim.sgd(0.1), x, bad_y)


def test_progress_bar_optional():
    make(epochs=1, progress=None).fit()         # auto: no terminal under pytest
    t = make(epochs=1)
    t.progress = True                           # with or without tqdm installed
    t.fit()


def train_on_both_backends():
    results = []
    for name in ("numpy", "strict"):
        with gp.use_backend(name):
            t = make(epochs=2)
            t.fit()
            results.append((host(t.params), t.history["train_loss"]))
    return results


def test_backends_agree(backend_name):
    if backend_name != "numpy":
        pytest.skip("compares the numpy and strict backends once")
    # bit for bit: the CPU executor fuses only what NumPy computes exactly so
    (p_numpy, l_numpy), (p_strict, l_strict) = train_on_both_backends()
    assert_same_trees(p_numpy, p_strict)
    assert l_numpy == l_strict


# ---- Fashion-MNIST end to end -----------------------------------------------
_FASHION = {}


def fashion_subset():
    if "ds" not in _FASHION:
        try:
            _FASHION["ds"] = data.load_fashion_mnist()
        except FileNotFoundError as e:
            _FASHION["ds"] = e
    ds = _FASHION["ds"]
    if isinstance(ds, Exception):
        pytest.skip(f"Fashion-MNIST is not installed (apt-get install "
                    f"dataset-fashion-mnist): {ds}")
    return ds


def test_fashion_mnist_end_to_end():
    ds = fashion_subset()
    model = nn.MLP([784, 64, 10], seed=0)
    t = Trainer(model.apply, model.init(), "cross_entropy", optim.adam(2e-3),
                ds.x_train[:4000], ds.y_train[:4000], ds.x_test[:2000], ds.y_test[:2000],
                epochs=3, batch_size=64, progress=False)
    _, chance = t.evaluate(dev(ds.x_test[:2000]), dev(ds.y_test[:2000]))
    h = t.fit()
    assert chance < 0.3
    assert h["val_accuracy"][-1] > 0.75, h
