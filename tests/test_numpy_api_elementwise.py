"""Issue 14's elementwise functions against NumPy and finite differences
(check_grads to order 2, float64), with broadcasting, size 0 and under jit:
mod/remainder/%, fmod, floor_divide/divmod, fmax/fmin, fabs, sinc,
deg2rad/rad2deg, logaddexp2, nan_to_num, heaviside, copysign, clip with
array bounds."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import REF, assert_same, away_from_zero, check, dev, host, uniform

# inputs away from the jumps of the quotient (x / y far from integers)
X = np.array([[2.3, -3.7, 0.6], [-1.2, 5.4, -0.45]])
Y = np.array([1.5, -2.0, 0.7])

BINARY = {
    "remainder": lambda m, x, y: m.remainder(x, y),
    "mod": lambda m, x, y: m.mod(x, y),
    "%": lambda m, x, y: x % y,
    "fmod": lambda m, x, y: m.fmod(x, y),
    "fmax": lambda m, x, y: m.fmax(x, y),
    "fmin": lambda m, x, y: m.fmin(x, y),
    "copysign": lambda m, x, y: m.copysign(x, y),
    "heaviside": lambda m, x, y: m.heaviside(x, y),
    "logaddexp2": lambda m, x, y: m.logaddexp2(x, y),
    "clip(arrays)": lambda m, x, y: m.clip(x, -m.abs(y), m.abs(y) + 0.5),
}


@pytest.mark.parametrize("name", BINARY)
def test_binary(name):
    check(BINARY[name], X, Y)


@pytest.mark.parametrize("name", BINARY)
def test_binary_size_zero_and_jit(name):
    fn = BINARY[name]
    check(fn, np.zeros((0, 3)), Y, order=0)
    jitted = gp.jit(lambda x, y: fn(gnp, x, y))
    assert_same(jitted(dev(X), dev(Y)), fn(REF, X, Y))


UNARY = {
    "fabs": lambda m, x: m.fabs(x),
    "sinc": lambda m, x: m.sinc(x),
    "deg2rad": lambda m, x: m.deg2rad(x),
    "radians": lambda m, x: m.radians(x),
    "rad2deg": lambda m, x: m.rad2deg(x),
    "degrees": lambda m, x: m.degrees(x),
    "nan_to_num": lambda m, x: m.nan_to_num(x),
}


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (0,)], ids=str)
@pytest.mark.parametrize("name", UNARY)
def test_unary(name, shape):
    check(UNARY[name], away_from_zero(shape))


def test_floor_divide_and_divmod_have_derivative_zero():
    check(lambda m, x, y: m.floor_divide(x, y), X, Y, order=0)
    check(lambda m, x, y: x // y, X, Y, order=0)
    q, r = gnp.divmod(dev(X), dev(Y))
    assert_same(q, X // Y)
    assert_same(r, X % Y)
    g = gp.grad(lambda x: gnp.sum(divmod(x, 0.7)[1]))(dev(X))     # the tracer's operator
    np.testing.assert_array_equal(host(g), np.ones_like(X))
    g = gp.grad(lambda x: gnp.sum(gnp.floor_divide(x, 0.7)))(dev(X))
    np.testing.assert_array_equal(host(g), np.zeros_like(X))


def test_sinc_at_zero_to_second_order():
    check(lambda m, x: m.sinc(x), np.array([0.0, 1e-5, -2e-4]))
    d2 = gp.grad(gp.grad(lambda x: gnp.sinc(x)))(0.0)
    np.testing.assert_allclose(host(d2), -np.pi ** 2 / 3)


def test_nan_to_num_values_and_gradient():
    x = np.array([np.nan, np.inf, -np.inf, 1.5], np.float32)
    assert_same(gnp.nan_to_num(dev(x)), np.nan_to_num(x))
    assert_same(gnp.nan_to_num(dev(x), nan=1.0, posinf=2.0, neginf=-2.0),
                np.nan_to_num(x, nan=1.0, posinf=2.0, neginf=-2.0))
    g = gp.grad(lambda t: gnp.sum(gnp.nan_to_num(t)))(dev(x.astype(np.float64)))
    np.testing.assert_array_equal(host(g), [0.0, 0.0, 0.0, 1.0])


def test_fmax_ignores_nan_and_copysign_reads_negative_zero():
    x, y = np.array([np.nan, 1.0, 2.0]), np.array([0.5, np.nan, -0.0])
    assert_same(gnp.fmax(dev(x), dev(y)), np.fmax(x, y))
    assert_same(gnp.fmin(dev(x), dev(y)), np.fmin(x, y))
    assert_same(gnp.copysign(dev([1.0, 2.0]), dev([-0.0, 0.0])), np.copysign([1.0, 2.0], [-0.0, 0.0]))
    assert_same(gnp.heaviside(dev([np.nan, 0.0]), 0.5), np.heaviside([np.nan, 0.0], 0.5))


def test_remainder_under_numpy_dispatch_and_float32():
    x = uniform((4,), 0.1, 3.0).astype(np.float32)
    out = gp.grad(lambda t: gnp.sum(np.remainder(t, 0.75)))(dev(x))
    assert host(out).dtype == np.float32
    np.testing.assert_array_equal(host(out), np.ones(4, np.float32))
