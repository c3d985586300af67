"""gp.save / gp.load and MLP.save / MLP.load: round trips, atomic writes,
clear errors for missing, damaged and foreign files, refusing non-finite
values and what cannot be stored without pickle."""
import os
from typing import NamedTuple

import numpy as np
import pytest

import gpuprop as gp
from gpuprop import nn, serialization
from support import dev, host


def tree():
    return {"layers": [{"W": dev(np.arange(6.0).reshape(2, 3)), "b": dev(np.zeros(3))}],
            "steps": (dev(np.array(7, np.int32)), None, dev(np.array([True, False]))),
            "scale": 0.5, "empty": []}


def test_round_trip_keeps_structure_dtypes_and_values(tmp_path):
    path = tmp_path / "t.npz"
    gp.save(path, tree())
    back = gp.load(path)
    assert gp.tree_structure(back) == gp.tree_structure(tree())
    for a, b in zip(gp.tree_leaves(host(back)), gp.tree_leaves(host(tree()))):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)
    assert gp.asarray(back["layers"][0]["W"]) is back["layers"][0]["W"]   # on the device
    gp.save(path, [dev(np.ones(2))], metadata={"note": "x"})
    assert serialization.load_metadata(path) == {"note": "x"}
    assert os.listdir(tmp_path) == ["t.npz"]


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "t.npz"
    gp.save(path, {"a": dev(np.ones(3))})
    before = path.read_bytes()

    def killed_before_rename(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", killed_before_rename)
    with pytest.raises(KeyboardInterrupt):
        gp.save(path, {"a": dev(np.zeros(3))})
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["t.npz"]


def test_missing_damaged_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        gp.load(tmp_path / "none.npz")
    path = tmp_path / "t.npz"
    gp.save(path, {"a": dev(np.ones(300))})
    path.write_bytes(path.read_bytes()[:150])
    with pytest.raises(serialization.FileFormatError,
                       match="is not a readable gpuprop save file .*truncated or damaged"):
        gp.load(path)
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(serialization.FileFormatError, match="it is not written by gpuprop"):
        gp.load(tmp_path / "plain.npz")
    np.save(tmp_path / "bare.npy", np.ones(2))
    with pytest.raises(serialization.FileFormatError, match="holds one bare array"):
        gp.load(tmp_path / "bare.npy")
    serialization.save_checkpoint(tmp_path / "ck.npz", {"params": [dev(np.ones(2))]}, {})
    with pytest.raises(serialization.FileFormatError, match="it is a training checkpoint"):
        gp.load(tmp_path / "ck.npz")


def test_non_finite_values_are_refused_unless_allowed(tmp_path):
    path = tmp_path / "t.npz"
    gp.save(path, {"w": [dev(np.ones(2)), dev(np.array([1.0, np.nan, np.inf]))]})
    with pytest.raises(serialization.NonFiniteValueError,
                       match=r"holds 2 NaN or infinite value\(s\) in tree\['w'\]\[1\]: .* "
                             r"allow_nonfinite=True"):
        gp.load(path)
    w = host(gp.load(path, allow_nonfinite=True)["w"][1])
    assert np.isnan(w[1]) and np.isinf(w[2])


class Pair(NamedTuple):
    a: object
    b: object


@pytest.mark.parametrize("bad, message", [
    ({"x": np.array(["a", "b"])}, r"tree\['x'\] has dtype <U1; only numeric and bool"),
    ({"x": np.array([{}], dtype=object)}, "has dtype object"),
    ([Pair(1.0, 2.0)], r"tree\[0\] is a Pair; .*\._asdict\(\)"),
    ({1: np.ones(2)}, "only string keys can be stored"),
    ({"x": "text"}, r"tree\['x'\] is a str"),
])
def test_what_needs_pickle_is_refused(tmp_path, bad, message):
    with pytest.raises(TypeError, match=message):
        gp.save(tmp_path / "t.npz", bad)
    assert os.listdir(tmp_path) == []


def test_mlp_save_load_predict(tmp_path):
    model = nn.MLP([3, 5, 4], activation="tanh", init="xavier", seed=2)
    params = model.init()
    path = tmp_path / "model.npz"
    model.save(path, params, metrics={"accuracy": 0.5})
    again, loaded = nn.MLP.load(path)
    assert repr(again) == repr(model) and again.dtype == model.dtype
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    np.testing.assert_array_equal(host(again.predict(loaded, x)),
                                  host(model.apply(params, dev(x))).argmax(1))
    assert serialization.load_metadata(path)["metrics"] == {"accuracy": 0.5}
    gp.save(tmp_path / "arrays.npz", params)
    with pytest.raises(serialization.FileFormatError, match="holds no MLP config"):
        nn.MLP.load(tmp_path / "arrays.npz")
    with pytest.raises(TypeError, match="is a function; only a model with a named"):
        nn.MLP([3, 2], activation=lambda v: v).save(path, params)
