"""Issue 14's shape and assembly functions and its products and sums,
against NumPy and finite differences (check_grads to order 2, float64),
including batched, axis and size-0 cases, and under jit."""
import warnings

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import REF, assert_same, check, dev, host, uniform

A = uniform((2, 3, 4))
M = uniform((3, 4), seed=1)
V = uniform((3,), seed=2)

SHAPE = {
    "repeat(2, axis=1)": (lambda m, a: m.repeat(a, 2, axis=1), A),
    "repeat(counts)": (lambda m, a: m.repeat(a, [1, 0, 2], axis=1), A),
    "repeat(flat)": (lambda m, a: m.repeat(a, 2), M),
    "tile": (lambda m, a: m.tile(a, (2, 1, 1, 2)), A),
    "tile(1-D)": (lambda m, a: m.tile(a, 2), V),
    "hstack": (lambda m, a: m.hstack([a, a * 2.0]), M),
    "vstack": (lambda m, a: m.vstack([a, a]), V),
    "dstack": (lambda m, a: m.dstack([a, a]), M),
    "column_stack": (lambda m, a: m.column_stack([a, a[:, None] * 2.0]), V),
    "row_stack": (lambda m, a: m.vstack((a, a)), M),
    "append": (lambda m, a: m.append(a, a * 3.0), M),
    "append(axis)": (lambda m, a: m.append(a, a, axis=0), M),
    "hsplit": (lambda m, a: m.hsplit(a, 3)[1], A),
    "vsplit": (lambda m, a: m.vsplit(a, [1])[1], A),
    "dsplit": (lambda m, a: m.dsplit(a, 2)[0], A),
    "atleast_1d": (lambda m, a: m.atleast_1d(a[0, 0]), M),
    "atleast_2d": (lambda m, a: m.atleast_2d(a), V),
    "atleast_3d": (lambda m, a: m.atleast_3d(a), V),
    "atleast_3d(2-D)": (lambda m, a: m.atleast_3d(a), M),
    "diag(1-D, k=1)": (lambda m, a: m.diag(a, 1), V),
    "diag(1-D, k=-2)": (lambda m, a: m.diag(a, -2), V),
    "diag(2-D)": (lambda m, a: m.diag(a, 1), M),
    "diagflat": (lambda m, a: m.diagflat(a), M[:2, :2]),
    "fliplr": (lambda m, a: m.fliplr(a), A),
    "flipud": (lambda m, a: m.flipud(a), A),
    "rot90": (lambda m, a: m.rot90(a), A),
    "rot90(k=3, axes)": (lambda m, a: m.rot90(a, 3, (0, 2)), A),
    "rot90(k=2)": (lambda m, a: m.rot90(a, 2), A),
    "rollaxis": (lambda m, a: m.rollaxis(a, 2), A),
    "rollaxis(start)": (lambda m, a: m.rollaxis(a, 0, 3), A),
    "moveaxis(seq)": (lambda m, a: m.moveaxis(a, [0, 1], [2, 0]), A),
    "swapaxes(keywords)": (lambda m, a: m.swapaxes(a, axis1=0, axis2=2), A),
    "ravel": (lambda m, a: m.ravel(a), A),
    ".flatten": (lambda m, a: (a * 1.0).flatten(), A),
    ".T": (lambda m, a: (a * 1.0).T, A),
    ".mT": (lambda m, a: (a * 1.0).mT, A),
}


@pytest.mark.parametrize("name", SHAPE)
def test_shape(name):
    fn, x = SHAPE[name]
    check(fn, x)
    assert_same(gp.jit(lambda a: fn(gnp, a))(dev(x)), fn(REF, x))


def test_size_zero():
    z = np.zeros((0, 3))
    check(lambda m, a: m.repeat(a, 2, axis=1), z, order=0)
    check(lambda m, a: m.tile(a, (2, 1)), z, order=0)
    check(lambda m, a: m.vstack([a, a]), z, order=0)
    check(lambda m, a: m.diag(a), np.zeros(0), order=0)


def test_array_of_traced_values():
    f = lambda x: gnp.sum(gnp.array([[x, x ** 2], [x, 1.0]]) * dev([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_allclose(host(gp.grad(f)(2.0)), 1.0 + 2 * 2 * 2.0 + 3.0)
    out = gp.jit(lambda x: gnp.asarray((x, x * 2.0)))(dev([1.0, 2.0]))
    assert_same(out, np.array([[1.0, 2.0], [2.0, 4.0]]))


def test_r_and_c():
    for key in [(V, V), (M, M), ("0,2", V, V), ("1,2,0", V, V)]:
        assert_same(gnp.r_[tuple(dev(k) if not isinstance(k, str) else k for k in key)], np.r_[key])
        assert_same(gnp.c_[tuple(dev(k) if not isinstance(k, str) else k for k in key)], np.c_[key])
    assert_same(gnp.r_[dev(V), 5.0, 1:3], np.r_[V, 5.0, 1:3])
    g = gp.grad(lambda x: gnp.sum(gnp.c_[x, x * 2.0] * dev(np.arange(6.0).reshape(3, 2))))(dev(V))
    np.testing.assert_allclose(host(g), [2.0, 8.0, 14.0])


# ---- products and sums ---------------------------------------------------------------
B = uniform((4, 5), seed=3)
C = uniform((5, 4, 2), seed=4)

PRODUCTS = {
    "dot(3-D, 3-D)": (lambda m, a, c: m.dot(a, c), A, C),
    "dot(3-D, 1-D)": (lambda m, a, b: m.dot(a, b[:, 0]), A, B),
    "dot(scalar)": (lambda m, a, b: m.dot(a[0, 0, 0], b), A, B),
    "inner": (lambda m, a, b: m.inner(a, b.T), A, B),
    "vdot": (lambda m, a, b: m.vdot(a, b), M, M * 2.0),
    "outer": (lambda m, a, b: m.outer(a, b), M, V),
    "kron": (lambda m, a, b: m.kron(a, b), M[:2], B[:2, :3]),
    "kron(ranks)": (lambda m, a, b: m.kron(a, b), V, A[:, :2, :2]),
    "cross": (lambda m, a, b: m.cross(a, b), A[..., :3], M[:, :3]),
    "cross(2-D vectors)": (lambda m, a, b: m.cross(a, b), M[:, :2], V[:2]),
    "cross(axes)": (lambda m, a, b: m.cross(a, b, axisa=0, axisb=1, axisc=0), M, M.T),
    "einsum(...ij,...jk)": (lambda m, a, b: m.einsum("...ij,...jk", a, b), A, B),
    "einsum(ij...,j...->i...)": (lambda m, a, b: m.einsum("ij...,j...->i...", a, b), B.T, B[:, :3]),
    "einsum(...i,...i)": (lambda m, a, b: m.einsum("...i,...i", a, b), A, M),
    "einsum(sublists)": (lambda m, a, b: m.einsum(a, [0, 1, 2], b, [2, 3], [0, 3, 1]), A, B),
    "einsum(sublists ...)": (lambda m, a, b: m.einsum(a, [Ellipsis, 2], b, [2, 3]), A, B),
    "convolve(full)": (lambda m, a, v: m.convolve(a, v), M[0], V),
    "convolve(same)": (lambda m, a, v: m.convolve(a, v, "same"), B[0], M[0]),
    "convolve(valid)": (lambda m, a, v: m.convolve(a, v, "valid"), V, B[0]),
    "correlate(valid)": (lambda m, a, v: m.correlate(a, v), B[0], V),
    "correlate(same)": (lambda m, a, v: m.correlate(a, v, "same"), V, M[0]),
    "correlate(full)": (lambda m, a, v: m.correlate(a, v, "full"), M[0], B[0]),
}


@pytest.mark.parametrize("name", PRODUCTS)
def test_products(name):
    fn, x, y = PRODUCTS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)    # NumPy 2's 2-vector cross
        check(fn, x, y, rtol=1e-6)
        assert_same(gp.jit(lambda a, b: fn(gnp, a, b))(dev(x), dev(y)), fn(REF, x, y), rtol=1e-6)


X0 = uniform((3, 5), seed=5)
X0[1, 2] = 0.0      # cumprod's gradient is exact at zeros
SUMS = {
    "cumprod(axis=1)": lambda m, a: m.cumprod(a, axis=1),
    "cumprod(flat)": lambda m, a: m.cumprod(a),
    "cumprod(axis=0)": lambda m, a: m.cumprod(a, 0),
    "diff": lambda m, a: m.diff(a),
    "diff(n=2, axis=0)": lambda m, a: m.diff(a, 2, axis=0),
    "diff(prepend, append)": lambda m, a: m.diff(a, prepend=0.5, append=a[:, :1]),
    "gradient": lambda m, a: m.gradient(a, 0.5)[1],
    "gradient(axis, edge_order=2)": lambda m, a: m.gradient(a, axis=1, edge_order=2),
    "trapezoid": lambda m, a: m.trapezoid(a),
    "trapezoid(dx, axis)": lambda m, a: m.trapezoid(a, dx=0.3, axis=0),
    "trapezoid(x)": lambda m, a: m.trapezoid(a, m.cumsum(m.abs(a[0]) + 0.1)),
}


@pytest.mark.parametrize("name", SUMS)
def test_sums(name):
    check(SUMS[name], X0)
    assert_same(gp.jit(lambda a: SUMS[name](gnp, a))(dev(X0)), SUMS[name](REF, X0))


def test_cumprod_size_zero():
    check(lambda m, a: m.cumprod(a, axis=0), np.zeros((0, 2)), order=0)
