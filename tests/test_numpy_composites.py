"""The composite functions of gpuprop.numpy (logsumexp, softmax, log_softmax,
softplus) against NumPy and against finite differences (check_grads, to
second order) in float64, and their stability at logits of +-1e4.

Then programs that compose every family (elementwise, reductions, shape,
products, composites): jit(value_and_grad) against the eager run, and NumPy's
own functions called on tracers, which dispatch to gnp under grad and jit.
(relu and softplus, elementwise functions of one argument, are also in the
unary table of test_numpy_elementwise.py.)
"""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import REF, assert_same, away_from_zero, check, dev, host, uniform


# ---- logsumexp and softmax -------------------------------------------------------
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)], ids=str)
def test_logsumexp(axis, keepdims):
    check(lambda m, x: m.logsumexp(x, axis=axis, keepdims=keepdims), uniform((2, 3, 4)))


@pytest.mark.parametrize("axis", [0, -1, (0, 1)], ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(name, axis):
    check(lambda m, x: getattr(m, name)(x, axis=axis), uniform((2, 3, 4)))


def test_composites_are_stable():
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4 + 2.0]])
    assert_same(gnp.logsumexp(dev(x), axis=1), np.max(x, 1) + REF.logsumexp(x - np.max(x, 1, keepdims=True), 1))
    assert_same(gnp.softmax(dev(x)), REF.softmax(x))
    assert_same(gnp.softplus(dev(np.array([-1e4, 1e4]))), np.array([0.0, 1e4]))
    g = host(gp.grad(lambda x: gnp.sum(gnp.logsumexp(x, axis=1)))(dev(x)))
    np.testing.assert_allclose(g, REF.softmax(x))


# ---- every family together, under the transforms and NumPy dispatch --------------
def loss(x, w):
    h = gnp.einsum("bi,ij->bj", gnp.pad(x, ((0, 0), (1, 0)), constant_values=1.0), w)
    h = gnp.logaddexp(gnp.roll(h, 1, axis=1), gnp.flip(gnp.cumsum(h, axis=1), 1))
    z = gnp.tensordot(gnp.triu(w[:3]), gnp.arctan(h[:, :3]), ((0,), (1,)))
    return gnp.sum(gnp.prod(gnp.tanh(h), axis=0)) + gnp.trace(z) + gnp.sum(gnp.hypot(x, 1.0))


def test_jit_of_grad_matches_eager():
    x, w = uniform((4, 3), seed=1), uniform((4, 5), seed=2)
    x[0, 1] = 0.0
    f = gp.value_and_grad(loss, argnums=(0, 1))
    (v, g), (jv, jg) = f(dev(x), dev(w)), gp.jit(f)(dev(x), dev(w))
    assert_same(jv, host(v), rtol=1e-12)
    for a, b in zip(jg, g):
        assert_same(a, host(b), rtol=1e-12)
    check_grads(loss, (x, w), order=2)


def test_numpy_functions_on_tracers_dispatch_to_gnp():
    """np.tan(t), np.einsum(..., t), ... inside grad and jit are the gnp functions."""
    x = away_from_zero((3, 3))

    def f(m, x):
        return (m.sum(m.tan(x * 0.3) + m.arctan2(x, 2.0) + m.hypot(x, 1.0) + m.log2(x * x))
                + m.prod(m.cumsum(x, axis=0), axis=None) + m.trace(m.einsum("ij->ji", x))
                + m.sum(m.round(x, 1)) + m.sum(m.flip(x, 0) * m.triu(x)))
    assert_same(gp.jit(lambda x: f(np, x))(dev(x)), f(np, x), rtol=1e-12)
    assert_same(gp.grad(lambda x: f(np, x))(dev(x)), host(gp.grad(lambda x: f(gnp, x))(dev(x))))
    check_grads(lambda x: f(gnp, x), (x,))
