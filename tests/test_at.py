"""x.at[idx].set/add/multiply/min/max/get: JAX's functional index updates,
against NumPy's in-place equivalents (ufunc.at for repeated indices),
differentiable in x and the values (check_grads to order 2), under jit;
and `t[i] = v` on a traced value raising a TypeError that points to .at[]."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import assert_same, dev, distinct, host

X = distinct((4, 3))
REPEATED = np.array([2, 0, 2, 3, 2])


def reference(mode, x, index, v):
    """NumPy's result: ufunc.at combines repeated indices; set keeps the last."""
    out = x.copy()
    if mode == "set":
        out[index] = v
        return out
    ufunc = {"add": np.add, "multiply": np.multiply, "min": np.minimum, "max": np.maximum}[mode]
    ufunc.at(out, index, np.broadcast_to(v, out[index].shape))
    return out


MODES = ["set", "add", "multiply", "min", "max"]
INDICES = {
    "int": (1, distinct((3,), seed=1)),
    "slice": ((slice(1, 3), 0), distinct((2,), seed=2)),
    "ellipsis": ((Ellipsis, 2), distinct((4,), seed=3)),
    "repeated rows": (REPEATED, distinct((5, 3), seed=4)),
    "repeated pairs": ((REPEATED, np.array([1, 1, 1, 0, 2])), distinct((5,), seed=5)),
    "broadcast value": (REPEATED, 0.37),
    "negative": ((np.array([-1, -1]), np.array([0, -3])), distinct((2,), seed=6)),
}


def as_index(index):
    if isinstance(index, tuple):
        return tuple(dev(i) if isinstance(i, np.ndarray) else i for i in index)
    return dev(index) if isinstance(index, np.ndarray) else index


def update(mode, x, index, v):
    """x.at[index] on tracers; gnp.at(x) also takes plain arrays (check_grads'
    finite differences evaluate the function on those)."""
    return getattr(gnp.at(x)[index], mode)(v)


@pytest.mark.parametrize("index", INDICES)
@pytest.mark.parametrize("mode", MODES)
def test_update(mode, index):
    idx, v = INDICES[index]
    want = reference(mode, X, idx, v)
    dv = dev(v) if isinstance(v, np.ndarray) else v
    assert_same(getattr(gnp.at(dev(X))[as_index(idx)], mode)(dv), want)
    jitted = gp.jit(lambda x, v: update(mode, x, as_index(idx), v))
    assert_same(jitted(dev(X), dv), want)
    check_grads(lambda x, v: update(mode, x, as_index(idx), v), (X, v), order=2)


def test_traced_index_under_jit():
    f = gp.jit(lambda x, i, v: x.at[i].add(v) + x.at[i].max(v))     # tracers have .at
    i, v = REPEATED, distinct((5, 3), seed=7)
    assert_same(f(dev(X), dev(i), dev(v)), reference("add", X, i, v) + reference("max", X, i, v))


def test_get_and_gradients_at_repeated_indices():
    assert_same(gnp.at(dev(X))[dev(REPEATED)].get(), X[REPEATED])
    v = np.arange(1.0, 6.0)
    # set: only the last value given for a position counts
    g = gp.grad(lambda v: gnp.sum(gnp.at(dev(np.zeros(4)))[dev(REPEATED)].set(v)))(dev(v))
    np.testing.assert_array_equal(host(g), [0.0, 1.0, 0.0, 1.0, 1.0])
    # multiply: each value's derivative is the product of the others at its place
    g = gp.grad(lambda v: gnp.sum(gnp.at(dev(np.ones(4)))[dev(REPEATED)].multiply(v)))(dev(v))
    np.testing.assert_allclose(host(g), [15.0, 1.0, 5.0, 1.0, 3.0])
    # with a zero among them, exactly
    v0 = np.array([0.0, 2.0, 3.0, 4.0, 5.0])
    g = gp.grad(lambda v: gnp.sum(gnp.at(dev(np.ones(4)))[dev(REPEATED)].multiply(v)))(dev(v0))
    np.testing.assert_allclose(host(g), [15.0, 1.0, 0.0, 1.0, 0.0])


def test_values_of_another_dtype_and_bad_shapes():
    out = gp.jit(lambda x: x.at[1].set(2.0))(dev(np.zeros(3, np.float32)))
    assert_same(out, np.array([0.0, 2.0, 0.0], np.float32))
    with pytest.raises(ValueError, match=r"at\[\.\.\.\]\.add: values of shape \(2,\).*\(3,\)"):
        gnp.at(dev(np.zeros((2, 3))))[0].add(dev([1.0, 2.0]))


def test_item_assignment_on_a_tracer_points_to_at():
    def f(t):
        t[0] = 1.0
        return gnp.sum(t)
    with pytest.raises(TypeError, match=r"t = t\.at\[0\]\.set\(value\)"):
        gp.grad(f)(dev([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"\.at\["):
        gp.jit(f)(dev([1.0, 2.0]))
