"""gpuprop-train as a user runs it: a subprocess (exit status, messages,
files), on spirals and on a tiny Fashion-MNIST-shaped IDX fixture.  Each
run is small (a few hundred rows, tiny models, 1-2 epochs)."""
import gzip
import json
import os
import re
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import gpuprop as gp
from gpuprop import cli as cli_module, nn, serialization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--hidden", "8", "--epochs", "1", "--batch-size", "64", "--no-progress"]


@pytest.fixture(autouse=True)
def once(backend_name):
    """The command line runs in its own process, under --backend numpy."""
    if backend_name != "numpy":
        pytest.skip("a subprocess: run once, not per test backend")


def cli(*args, cwd, env=None, module="gpuprop.cli"):
    """Run the command line in `cwd`; (exit status, stdout, stderr)."""
    full_env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    full_env.pop("GPUPROP_BACKEND", None)
    p = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd,
                       env=full_env, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def spirals(*args, cwd):
    return cli("--dataset", "spirals", *SMALL, *args, cwd=cwd)


def write_idx(path, array):
    """An IDX .gz file: magic 0x0000, type 0x08 (uint8), dims, sizes, data."""
    head = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + array.astype(np.uint8).tobytes())


@pytest.fixture
def fashion_dir(tmp_path):
    """A directory of Fashion-MNIST's four files with 120 + 40 random images."""
    d = tmp_path / "fashion"
    d.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 120), ("t10k", 40)):
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return d


# ---- outputs are checked before the first step --------------------------------------
def test_unwritable_outputs_fail_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for flag in ("--out", "--checkpoint-dir"):
        for path in (blocker, blocker / "sub"):
            rc, _, err = spirals(flag, path, "--epochs", "50", cwd=tmp_path)
            assert rc == 2, err
            assert f"gpuprop-train: error: {flag} {path} is not a writable directory" in err
            assert "epoch 1/" not in err and "Traceback" not in err
    (tmp_path / "out" / "model.npz").mkdir(parents=True)
    rc, _, err = spirals("--out", tmp_path / "out", cwd=tmp_path)
    assert rc == 2 and "model.npz there is a directory" in err, err


# ---- a run keeps its model ------------------------------------------------------------
def test_a_default_run_keeps_a_model_to_evaluate_and_predict_with(tmp_path):
    rc, _, err = spirals(cwd=tmp_path)
    assert rc == 0, err
    path = tmp_path / "runs" / "spirals" / "model.npz"
    assert re.search(r"\nwrote: model\.npz, history\.json(, curves\.png)? in "
                     + os.path.join("runs", "spirals") + "\n$", err), err
    meta = serialization.load_metadata(path)
    assert meta["optimizer"] == "adam" and meta["dataset"] == "spirals"
    assert meta["model"]["sizes"] == [2, 8, 3]
    history = json.loads((tmp_path / "runs" / "spirals" / "history.json").read_text())
    assert meta["metrics"] == history["metrics"]
    assert meta["metrics"]["test_accuracy"] is not None

    rc, out, err = cli("--evaluate", path, cwd=tmp_path)
    assert rc == 0, err
    assert f"test_accuracy {meta['metrics']['test_accuracy']:.4f}" in out

    x = np.array([[0.5, -0.2], [0.0, 0.9], [-0.7, -0.1]], np.float32)
    np.save(tmp_path / "x.npy", x)
    rc, out, err = cli("--predict", path, tmp_path / "x.npy", cwd=tmp_path)
    assert rc == 0, err
    model, params = nn.MLP.load(path)
    assert out.split() == [str(c) for c in gp.to_numpy(model.predict(params, x))]


def test_ctrl_c_without_a_checkpoint_dir_keeps_the_finished_epochs(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("GPUPROP_BACKEND", None)
    p = subprocess.Popen([sys.executable, "-m", "gpuprop.cli", "--dataset", "spirals",
                          "--hidden", "8", "--epochs", "100000", "--no-progress"],
                         cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stderr:
            if line.startswith("epoch 2/"):
                break
        p.send_signal(signal.SIGINT)
        err = p.stderr.read()
        assert p.wait(timeout=60) == 130, err
    finally:
        p.kill()
    assert re.search(r"\nwrote after \d+ finished epoch\(s\): model\.npz, history\.json",
                     err), err
    out = tmp_path / "runs" / "spirals"
    history = json.loads((out / "history.json").read_text())
    finished = history["metrics"]["epochs"]
    assert finished >= 2 and history["history"]["epoch"] == list(range(1, finished + 1))
    assert history["metrics"]["interrupted"] is True
    model, params = nn.MLP.load(out / "model.npz")
    assert model.sizes == [2, 8, 3]


# ---- the checkpoint directory: a lock, and resume with the same settings ------------
def test_a_checkpoint_dir_in_use_is_refused_and_a_stale_lock_taken_over(tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "lock").write_text(str(os.getpid()))         # a live process: this one
    rc, _, err = spirals("--checkpoint-dir", ck, cwd=tmp_path)
    assert rc == 1 and f"is in use by another run (pid {os.getpid()}" in err, err
    assert "epoch 1/" not in err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ck / "lock").write_text(str(dead.pid))
    rc, _, err = spirals("--checkpoint-dir", ck, cwd=tmp_path)
    assert rc == 0, err
    assert sorted(os.listdir(ck)) == ["checkpoint.npz"]     # the lock is released


def test_resume_refuses_other_settings_naming_each(tmp_path):
    args = ["--checkpoint-dir", tmp_path / "ck", "--out", tmp_path / "out"]
    assert spirals(*args, cwd=tmp_path)[0] == 0
    first = json.loads((tmp_path / "out" / "history.json").read_text())
    rc, _, err = spirals(*args, "--resume", "--epochs", "2", "--lr", "0.5", cwd=tmp_path)
    assert rc == 2, err
    assert "--epochs 1 (now 2); --lr 0.01 (now 0.5)" in err, err
    rc, _, err = spirals(*args, "--resume", cwd=tmp_path)
    assert rc == 0, err
    again = json.loads((tmp_path / "out" / "history.json").read_text())
    assert again["history"]["train_loss"] == first["history"]["train_loss"]


def test_dropout_runs_and_resume_refuses_another_rate(tmp_path):
    args = ["--checkpoint-dir", tmp_path / "ck", "--out", tmp_path / "out", "--dropout", "0.2"]
    assert spirals(*args, cwd=tmp_path)[0] == 0
    rc, _, err = spirals(*args[:-1], "0.5", "--resume", cwd=tmp_path)
    assert rc == 2 and "--dropout 0.2 (now 0.5)" in err, err


def test_a_checkpoint_holding_nan_is_not_resumed(tmp_path):
    args = ["--checkpoint-dir", tmp_path / "ck", "--out", tmp_path / "out"]
    assert spirals(*args, cwd=tmp_path)[0] == 0
    path = tmp_path / "ck" / "checkpoint.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["params/0"][0, 0] = np.nan
    np.savez(path, **arrays)
    rc, _, err = spirals(*args, "--resume", cwd=tmp_path)
    assert rc == 1 and "holds 1 NaN or infinite value(s) in params leaf 0" in err, err


# ---- every flag means what it says ------------------------------------------------
BAD_FLAGS = {
    ("--batch-size", "0"): "argument --batch-size: must be an integer >= 1, got 0",
    ("--batch-size", "-5"): "argument --batch-size: must be an integer >= 1, got -5",
    ("--epochs", "0"): "argument --epochs: must be an integer >= 1, got 0",
    ("--epochs", "-1"): "argument --epochs: must be an integer >= 1, got -1",
    ("--lr", "nan"): "argument --lr: must be a finite number in (0, inf), got nan",
    ("--seed", "-1"): "argument --seed: must be an integer >= 0, got -1",
    ("--l2", "nan"): "argument --l2: must be a finite number in [0, inf), got nan",
    ("--subset", "0"): "argument --subset: must be an integer >= 1, got 0",
    ("--subset", "-5"): "argument --subset: must be an integer >= 1, got -5",
    ("--subset", "5000"): "--subset 5000 exceeds the 720 training samples of spirals",
    ("--val-split", "1"): "argument --val-split: must be a finite number in [0, 1), got 1",
    ("--dropout", "1"): "argument --dropout: must be a finite number in [0, 1), got 1",
    ("--dropout", "-0.1"): "argument --dropout: must be a finite number in [0, 1), got -0.1",
    ("--momentum", "0.9"): "--momentum applies to --optimizer sgd or rmsprop, not adam",
    ("--weight-decay", "0.1"): "--weight-decay applies to --optimizer adamw, not adam",
    ("--warmup-steps", "5"): "--warmup-steps applies to --schedule warmup-cosine, not cosine",
    ("--optimizer", "sgd", "--nesterov"): "--nesterov needs --momentum",
    ("--hidden",): "argument --hidden: expected at least one argument",
    ("--resume",): "--resume needs --checkpoint-dir",
    ("--val-split", "0", "--early-stopping", "2"): "--early-stopping watches the "
                                                    "validation loss: it needs --val-split > 0",
}


def test_bad_flags_exit_2_naming_the_flag(tmp_path):
    for flags, message in BAD_FLAGS.items():
        rc, out, err = spirals(*flags, cwd=tmp_path)
        assert (rc, err) == (2, f"gpuprop-train: error: {message}\n"), flags
    assert not (tmp_path / "runs" / "spirals" / "model.npz").exists()
    rc, _, err = cli("--evaluate", "m.npz", "--lr", "0.1", "--epochs", "3", cwd=tmp_path)
    assert (rc, err) == (2, "gpuprop-train: error: --evaluate does not train, so these "
                            "flags do not apply: --epochs, --lr\n")


def test_a_data_dir_without_the_files_is_an_error_naming_them(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    files = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz"
    rc, _, err = cli("--data-dir", empty, *SMALL, cwd=tmp_path)
    assert rc == 2 and f"--data-dir {empty} lacks the Fashion-MNIST files" in err, err
    assert files in err and "spirals" not in err
    rc, _, err = cli(*SMALL, cwd=tmp_path, env={"GPUPROP_DATA_DIR": str(empty)})
    assert rc == 2 and f"GPUPROP_DATA_DIR={empty} lacks the Fashion-MNIST files" in err, err
    assert files in err
    assert not (tmp_path / "runs").exists()


# ---- validation held out of training; the test set once, at the end ----------------
def test_validation_split_and_test_set_on_an_idx_fixture(tmp_path, fashion_dir):
    rc, _, err = cli("--data-dir", fashion_dir, "--hidden", "8", "--epochs", "2",
                     "--batch-size", "32", "--val-split", "0.25", "--early-stopping", "5",
                     "--no-progress", cwd=tmp_path, module="gpuprop.train")
    assert rc == 0, err
    assert "fashion-mnist: 90 training, 30 validation and 40 test samples" in err, err
    assert "test_accuracy" not in err.split("epoch 2/2")[1].split("\n")[0]  # per epoch: val
    assert re.search(r"\n2 epoch\(s\) done, .*; best val_accuracy \d\.\d+ at epoch \d; "
                     r"test_loss \d\.\d+, test_accuracy \d\.\d+\n", err), err
    result = json.loads((tmp_path / "runs" / "fashion-mnist" / "history.json").read_text())
    h = result["history"]
    assert h["test_accuracy"] == [None, None] and None not in h["val_accuracy"]
    rc, out, err = cli("--evaluate", tmp_path / "runs" / "fashion-mnist" / "model.npz",
                       "--data-dir", fashion_dir, cwd=tmp_path)
    assert rc == 0, err
    assert f"test_accuracy {result['metrics']['test_accuracy']:.4f}  (40 test samples" in out

    rc, _, err = cli("--data-dir", fashion_dir, "--hidden", "8", "--epochs", "2",
                     "--test-every-epoch", "--no-progress", "--out", tmp_path / "each",
                     cwd=tmp_path)
    assert rc == 0, err
    assert err.count("test_accuracy") == 3, err        # 2 epochs and the summary
    h = json.loads((tmp_path / "each" / "history.json").read_text())["history"]
    assert None not in h["test_accuracy"]

    rc, out, err = cli("--predict", tmp_path / "each" / "model.npz",
                       fashion_dir / "t10k-images-idx3-ubyte.gz", cwd=tmp_path)
    assert rc == 0 and len(out.split()) == 40, err


def test_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")    # Python 3.11+
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts["gpuprop-train"] == "gpuprop.cli:main"


def test_a_failed_write_does_not_stop_the_others(tmp_path, monkeypatch, caplog):
    model = nn.MLP([2, 3])
    trainer = SimpleNamespace(params=model.init())
    result = {"dataset": "spirals", "config": {"optimizer": "adam"}, "metrics": {},
              "history": {}}

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")
    monkeypatch.setattr(nn.MLP, "save", disk_full)
    monkeypatch.setattr(cli_module, "_pyplot", lambda: None)
    assert cli_module._write_outputs(str(tmp_path), model, trainer, result) == (["history.json"], 1)
    assert json.loads((tmp_path / "history.json").read_text()) == result
    assert f"could not write {tmp_path / 'model.npz'}: No space left" in caplog.text
