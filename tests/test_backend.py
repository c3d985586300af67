"""Backends: GPUPROP_BACKEND, set_backend/use_backend/get_backend, explicit
transfers of pytrees, and the error when arrays of two backends meet."""
import importlib.util
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import BACKENDS, dev, host

# run in a fresh interpreter: which backend is chosen, or the error, and
# whether CuPy got imported on the way
PROBE = """
import sys
try:
    import gpuprop as gp, gpuprop.numpy as gnp
    print("backend", gp.get_backend(), gp.to_numpy(gnp.sum(gnp.ones(3))))
except Exception as e:
    print("error", type(e).__name__, isinstance(e, (ValueError, RuntimeError)), e)
print("cupy imported", "cupy" in sys.modules)
"""


def run_probe(env_value):
    env = dict(os.environ)
    env.pop("GPUPROP_BACKEND", None)
    if env_value is not None:
        env["GPUPROP_BACKEND"] = env_value
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def once(backend_name):
    """These tests do not depend on the active backend: run them once."""
    if backend_name != BACKENDS[0]:
        pytest.skip("independent of the active backend")


@pytest.mark.parametrize("value", [None, "", "numpy"])
def test_env_numpy_is_the_default_and_cupy_is_not_imported(once, value):
    out = run_probe(value)
    assert out.splitlines() == ["backend numpy 3.0", "cupy imported False"]


def test_env_unknown_backend_lists_valid_names(once):
    out = run_probe("tpu")
    assert out.startswith("error ValueError True")
    assert "'tpu'" in out and "cupy" in out and "numpy" in out


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_env_cupy_without_cupy_says_what_to_install(once):
    out = run_probe("cupy")
    assert out.startswith("error RuntimeError True")
    assert "pip install gpuprop[cuda12]" in out and "unset GPUPROP_BACKEND" in out


# ---- choosing a backend in-process ------------------------------------------
def test_unknown_name_via_set_backend_and_use_backend(backend_name):
    for choose in (gp.set_backend, lambda name: gp.use_backend(name).__enter__()):
        with pytest.raises(ValueError, match=r"'tpu'.*valid names are.*numpy.*strict"):
            choose("tpu")
        assert gp.get_backend() == backend_name


def test_use_backend_restores_on_exit_and_on_error(backend_name):
    other = "strict" if backend_name == "numpy" else "numpy"
    with gp.use_backend(other) as be:
        assert be.name == other and gp.get_backend() == other
        with gp.use_backend(backend_name):
            assert gp.get_backend() == backend_name
        assert gp.get_backend() == other
        assert gp.backend.current().owns(gnp.ones(2))
    assert gp.get_backend() == backend_name
    with pytest.raises(KeyError):
        with gp.use_backend(other):
            raise KeyError("boom")
    assert gp.get_backend() == backend_name


def _in_thread(f):
    result = []
    t = threading.Thread(target=lambda: result.append(f()))
    t.start()
    t.join()
    return result[0]


def test_use_backend_is_per_thread_and_set_backend_sets_the_default(once, backend_name):
    default = _in_thread(gp.get_backend)      # no use_backend in a new thread
    assert default != "strict"                # the suite never sets it
    with gp.use_backend("strict"):
        assert _in_thread(gp.get_backend) == default
    try:
        gp.set_backend("strict")
        assert _in_thread(gp.get_backend) == "strict"
        assert gp.get_backend() == backend_name    # this thread's use_backend wins
    finally:
        gp.set_backend(default)
    assert _in_thread(gp.get_backend) == default


# ---- transfers --------------------------------------------------------------
def test_asarray(backend_name):
    be = gp.backend.current()
    a = gp.asarray([1.0, 2.0])
    assert be.owns(a) and host(a).dtype == np.float64
    b = gp.asarray(np.arange(3), dtype=np.float32)
    assert be.owns(b) and host(b).dtype == np.float32
    np.testing.assert_array_equal(host(b), [0, 1, 2])
    assert gp.asarray(a) is a
    other = "strict" if backend_name == "numpy" else "numpy"
    with gp.use_backend(other):
        foreign = dev([5.0, 6.0])
    moved = gp.asarray(foreign)         # explicit: through the host
    assert be.owns(moved)
    np.testing.assert_array_equal(host(moved), [5.0, 6.0])


def test_to_numpy_and_device_put_of_pytrees():
    tree = {"w": np.ones((2, 2), np.float32), "b": [np.arange(3.0), 4.0], "none": None}
    on_dev = gp.device_put(tree)
    be = gp.backend.current()
    assert be.owns(on_dev["w"]) and be.owns(on_dev["b"][0])
    assert on_dev["b"][1] == 4.0 and on_dev["none"] is None
    back = gp.to_numpy(on_dev)
    assert gp.tree_structure(back) == gp.tree_structure(tree)
    assert type(back["w"]) is np.ndarray and back["w"].dtype == np.float32
    np.testing.assert_array_equal(back["b"][0], [0.0, 1.0, 2.0])
    assert back["b"][1] == 4.0


def test_asarray_and_device_put_pass_tracers_through():
    def f(x):
        y = gp.asarray(x, np.float32)
        return gnp.sum(gp.device_put({"y": y})["y"] * 3.0)
    g = gp.grad(f)(dev([1.0, 2.0]))
    np.testing.assert_array_equal(host(g), [3.0, 3.0])
    assert host(g).dtype == np.float64


def test_device_array_on_the_left_of_a_tracer():
    c, x = np.array([1.0, 2.0]), np.array([3.0, -4.0])
    g = gp.grad(lambda x: gnp.sum(dev(c) * x) + dev(c) @ x)(dev(x))
    np.testing.assert_array_equal(host(g), 2 * c)


# ---- arrays of another backend ----------------------------------------------
def _foreign(backend_name, x):
    """`x` as an array of a backend other than the active one, and its name."""
    if backend_name == "numpy":
        with gp.use_backend("strict"):
            return dev(x), "strict"
    return np.asarray(x), "numpy"


@pytest.mark.parametrize("op, name", [
    (lambda a, b: gnp.exp(b), "exp"),
    (lambda a, b: gnp.add(a, b), "add"),
    (lambda a, b: gnp.matmul(a, b), "matmul"),
    (lambda a, b: gp.grad(lambda x: gnp.sum(x * b))(a), "multiply"),
    (lambda a, b: gp.grad(lambda x: gnp.sum(x))(b), "grad"),
])
def test_array_of_another_backend_is_refused(backend_name, op, name):
    a = dev([1.0, 2.0])
    b, other = _foreign(backend_name, [3.0, 4.0])
    with pytest.raises(gp.BackendMismatchError) as info:
        op(a, b)
    msg = str(info.value)
    assert isinstance(info.value, TypeError)
    assert name in msg and repr(other) in msg and repr(backend_name) in msg
    assert "gpuprop.asarray" in msg
