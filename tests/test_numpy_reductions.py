"""The reductions of gpuprop.numpy (sum, mean, max, min, var, std, prod, cumsum)
against NumPy (values and dtypes) and against finite differences
(check_grads, to second order) in float64, over every axis and keepdims;
and where a rule must be careful: ties of max and min (they share the
gradient), empty arrays and axes, zeros in prod (the gradient is the product
of the other entries), integer and boolean dtypes.
"""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import assert_same, check, dev, distinct, host, uniform


# ---- sum, mean, max, min, var, std -----------------------------------------------
REDUCTIONS = ["sum", "mean", "max", "min", "var", "std"]


AXES = [None, 0, 1, 2, -1, -2, -3, (0, 1), (0, 2), (1, 2), (0, 1, 2), (-1, 0), (2, -2)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction(name, axis, keepdims):
    check(lambda m, x: getattr(m, name)(x, axis=axis, keepdims=keepdims), distinct((2, 3, 4)))


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("axis", [None, 1, (0, 2)], ids=str)
def test_ddof(name, axis):
    check(lambda m, x: getattr(m, name)(x, axis=axis, ddof=1), distinct((2, 3, 4)))


@pytest.mark.parametrize("name,axis,keepdims", [
    ("sum", None, False), ("sum", 0, False), ("sum", 1, True), ("sum", (0, 1), True),
    ("mean", 1, False), ("max", 1, False), ("min", -1, True), ("var", 1, False)], ids=str)
def test_reduction_of_empty(name, axis, keepdims):
    check(lambda m, x: getattr(m, name)(x, axis=axis, keepdims=keepdims), np.zeros((0, 3)))


@pytest.mark.parametrize("name", ["max", "min"])
def test_extremum_of_empty_axis_raises(name):
    with pytest.raises(ValueError):
        getattr(gnp, name)(dev(np.zeros((0, 3))), axis=0)


@pytest.mark.parametrize("axis", [None, 1, (0, 1)], ids=str)
@pytest.mark.parametrize("name", ["max", "min"])
def test_extremum_ties_share_the_gradient(name, axis):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x = x if name == "max" else -x
    g = host(gp.grad(lambda x: gnp.sum(getattr(gnp, name)(x, axis=axis)))(dev(x)))
    hit = x == getattr(np, name)(x, axis=axis, keepdims=True)
    np.testing.assert_allclose(g, hit / np.sum(hit, axis=axis, keepdims=True))
    np.testing.assert_allclose(np.sum(g, axis=axis), 1.0)


def test_mean_of_integers_is_float64():
    x = np.arange(6).reshape(2, 3)
    assert_same(gnp.mean(dev(x), axis=1), np.mean(x, axis=1))
    assert_same(gnp.sum(dev(x)), np.sum(x))


# ---- prod and cumsum -------------------------------------------------------------
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), (0, 1, 2)], ids=str)
def test_prod(axis, keepdims):
    x = distinct((2, 3, 4)) / 2
    x = np.where(np.abs(x) < 0.1, 0.5, x)
    check(lambda m, x: m.prod(x, axis=axis, keepdims=keepdims), x)


def product_of_others(x, axis):
    """Brute force: for each entry, the product of the others along `axis`."""
    out = np.empty_like(x)
    for i in range(x.shape[axis]):
        rest = np.delete(x, i, axis=axis)
        np.put_along_axis(out, np.full(x.shape[:axis] + (1,) + x.shape[axis + 1:], i),
                          np.prod(rest, axis=axis, keepdims=True), axis=axis)
    return out


def test_prod_gradient_with_zeros():
    """Rows with no zero, one zero and two zeros: the gradient is the product
    of the other entries (not out / x), and the Hessian is exact too."""
    x = np.array([[1.5, -2.0, 0.5, 3.0, 1.25],
                  [1.5, 0.0, 0.5, 3.0, -2.0],
                  [0.0, 2.0, 0.0, 3.0, 1.5]])
    g = host(gp.grad(lambda x: gnp.sum(gnp.prod(x, axis=1)))(dev(x)))
    np.testing.assert_allclose(g, product_of_others(x, 1), rtol=1e-14)
    assert np.all(np.isfinite(g))
    check_grads(lambda x: gnp.prod(x, axis=1), (x,), order=3)
    check_grads(lambda x: gnp.prod(x), (x[:, :2],), order=2)
    h = host(gp.hessian(lambda v: gnp.prod(v))(dev(x[2])))      # two zeros: d2/dx0 dx2 = 9
    assert h[0, 2] == h[2, 0] == 9.0 and np.count_nonzero(h) == 2


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9])
def test_prod_lengths(n):
    """The scan's rounds at, around and between powers of two."""
    check(lambda m, x: m.prod(x, axis=-1), uniform((2, n), 0.5, 1.5, seed=n), order=1)


def test_prod_and_cumsum_dtypes():
    for dt in (np.int32, np.int64, np.bool_, np.float32):
        x = (np.arange(1, 7).reshape(2, 3) % 3).astype(dt)
        assert_same(gnp.prod(dev(x), axis=0), np.prod(x, axis=0))
        assert_same(gnp.cumsum(dev(x), axis=1), np.cumsum(x, axis=1))
    x = uniform((2, 3)).astype(np.float32)
    assert host(gp.grad(lambda x: gnp.prod(x) + gnp.sum(gnp.cumsum(x)))(dev(x))).dtype == np.float32


@pytest.mark.parametrize("axis", [None, 0, 1, -1], ids=str)
def test_cumsum(axis):
    check(lambda m, x: m.cumsum(x, axis=axis), uniform((2, 3, 4)))


def test_cumsum_of_0d_and_tuple_axis():
    check(lambda m, x: m.cumsum(x), uniform(()))
    with pytest.raises(TypeError, match="cumsum"):
        gnp.cumsum(dev(uniform((2, 3))), axis=(0, 1))
