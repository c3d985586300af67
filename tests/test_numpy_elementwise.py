"""The elementwise functions of gpuprop.numpy against NumPy (values and dtypes)
and against finite differences (check_grads, to second order) in float64:
unary functions (exp, log, trigonometric and hyperbolic, rounding, ...),
binary functions with broadcasting and Python scalars (arithmetic, power,
maximum/minimum, arctan2, hypot, logaddexp), the Python operators, where and
clip, comparisons and logic, and the dtype rules (float32 stays float32
forward and backward, mixed dtypes, Python floats).

A test function is written once as `fn(m, *xs)` with `m` a namespace: `gnp`
on device arrays, `REF` (NumPy plus the few names it lacks) on host arrays.
Inputs are chosen away from kinks and ties; those (ties of maximum/minimum,
the kinks of abs, relu and sign, clip at its bounds, 0**y, rounding, ties and
infinities in logaddexp) get tests of their own.
"""
import itertools

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import REF, assert_same, away_from_zero, check, dev, host, lattice, uniform


# ---- inputs ----------------------------------------------------------------------
DOMAINS = {
    "real": uniform,
    "positive": lambda s, seed=0: uniform(s, 0.5, 2.0, seed),
    "above-1": lambda s, seed=0: uniform(s, -0.5, 2.0, seed),
    "nonzero": away_from_zero,
}


def open_interval(shape, seed=0):
    return uniform(shape, -0.9, 0.9, seed)


def off_lattice(shape, seed=0):
    """k/4 + 0.1: at least 0.1 from every integer and half-integer (the
    jumps of floor, ceil and rint)."""
    return np.random.default_rng(seed).integers(-8, 9, shape) / 4 + 0.1


def hundredths(shape, seed=0):
    """k/100 + 0.003: x * 10 is 0.03 or more from every half-integer."""
    return np.random.default_rng(seed).integers(-300, 300, shape) / 100 + 0.003


# ---- unary -----------------------------------------------------------------------
UNARY = {
    "negative": ("real", lambda m, x: m.negative(x)),
    "exp": ("real", lambda m, x: m.exp(x)),
    "log": ("positive", lambda m, x: m.log(x)),
    "log1p": ("above-1", lambda m, x: m.log1p(x)),
    "expm1": ("real", lambda m, x: m.expm1(x)),
    "sqrt": ("positive", lambda m, x: m.sqrt(x)),
    "square": ("real", lambda m, x: m.square(x)),
    "reciprocal": ("nonzero", lambda m, x: m.reciprocal(x)),
    "sin": ("real", lambda m, x: m.sin(x)),
    "cos": ("real", lambda m, x: m.cos(x)),
    "tanh": ("real", lambda m, x: m.tanh(x)),
    "logistic": ("real", lambda m, x: m.logistic(x)),
    "abs": ("nonzero", lambda m, x: m.abs(x)),
    "sign": ("nonzero", lambda m, x: m.sign(x)),
    "relu": ("nonzero", lambda m, x: m.relu(x)),
    "softplus": ("real", lambda m, x: m.softplus(x)),
    "astype(float64)": ("real", lambda m, x: m.astype(x, np.float64)),
    "clip(-1, 1)": ("real", lambda m, x: m.clip(x, -1.0, 1.0)),
    "clip(None, 0.5)": ("real", lambda m, x: m.clip(x, None, 0.5)),
}


UNARY_SHAPES = [(), (3,), (2, 3, 4), (0,)]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", UNARY)
def test_unary(name, shape):
    domain, fn = UNARY[name]
    x = DOMAINS[domain](shape)
    if name.startswith("clip"):    # keep clear of the bounds
        x = np.where(np.abs(np.abs(x) - 1) < 0.05, 0.0, x)
        x = np.where(np.abs(x - 0.5) < 0.05, 0.0, x)
    check(fn, x, rtol=1e-6 if name == "logistic" else 1e-7)


TRIG_LOG_ROUNDING = {
    "tan": (lambda s: uniform(s, -1.2, 1.2), lambda m, x: m.tan(x)),
    "arcsin": (open_interval, lambda m, x: m.arcsin(x)),
    "arccos": (open_interval, lambda m, x: m.arccos(x)),
    "arctan": (uniform, lambda m, x: m.arctan(x)),
    "sinh": (uniform, lambda m, x: m.sinh(x)),
    "cosh": (uniform, lambda m, x: m.cosh(x)),
    "arcsinh": (uniform, lambda m, x: m.arcsinh(x)),
    "arccosh": (lambda s: uniform(s, 1.2, 3.0), lambda m, x: m.arccosh(x)),
    "arctanh": (open_interval, lambda m, x: m.arctanh(x)),
    "log2": (lambda s: uniform(s, 0.5, 2.0), lambda m, x: m.log2(x)),
    "log10": (lambda s: uniform(s, 0.5, 2.0), lambda m, x: m.log10(x)),
    "exp2": (uniform, lambda m, x: m.exp2(x)),
    "floor": (off_lattice, lambda m, x: m.floor(x)),
    "ceil": (off_lattice, lambda m, x: m.ceil(x)),
    "rint": (off_lattice, lambda m, x: m.rint(x)),
    "round": (off_lattice, lambda m, x: m.round(x)),
    "round(1)": (hundredths, lambda m, x: m.round(x, 1)),
    "round(-1)": (lambda s: off_lattice(s) * 10, lambda m, x: m.round(x, -1)),
    "around(2)": (hundredths, lambda m, x: m.around(x * 10, 2)),
}


@pytest.mark.parametrize("shape", [(), (2, 3), (0,)], ids=str)
@pytest.mark.parametrize("name", TRIG_LOG_ROUNDING)
def test_trig_log_rounding(name, shape):
    domain, fn = TRIG_LOG_ROUNDING[name]
    check(fn, domain(shape))


@pytest.mark.parametrize("name", TRIG_LOG_ROUNDING)
def test_trig_log_rounding_float32(name):
    """float32 stays float32, with a Python scalar too, and so does the gradient."""
    domain, fn = TRIG_LOG_ROUNDING[name]
    x = domain((2, 3)).astype(np.float32)
    assert_same(fn(gnp, dev(x)), fn(REF, x), rtol=1e-6)
    assert_same(fn(gnp, dev(x) * 1.0), fn(REF, x * 1.0), rtol=1e-6)
    g = host(gp.grad(lambda x: gnp.sum(fn(gnp, x)))(dev(x)))
    assert g.dtype == np.float32


CONSTANTS = {"stop_gradient": lambda m, x: m.stop_gradient(x), "sign": lambda m, x: m.sign(x),
             "comparison": lambda m, x: m.astype(m.greater(x, 0.0), np.float64)}


@pytest.mark.parametrize("name", CONSTANTS)
def test_constant_derivatives(name):
    """stop_gradient, sign and comparisons pass no derivative: block(x) * x**2
    has the derivative block(x) * 2x."""
    block, x = CONSTANTS[name], away_from_zero((2, 3))
    assert_same(block(gnp, dev(x)), block(REF, x))
    g = gp.grad(lambda x: gnp.sum(block(gnp, x) * x ** 2))(dev(x))
    assert_same(g, block(REF, x) * 2 * x)


@pytest.mark.parametrize("name", ["abs", "relu", "sign"])
def test_kink_at_zero_has_zero_gradient(name):
    x = np.array([-1.0, 0.0, 2.0])
    g = host(gp.grad(lambda x: gnp.sum(getattr(gnp, name)(x)))(dev(x)))
    want = {"abs": np.sign(x), "relu": (x > 0) * 1.0, "sign": np.zeros(3)}[name]
    np.testing.assert_array_equal(g, want)


def test_rounding_has_zero_gradient_and_rounds_halves_to_even():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.25])
    for f in (gnp.rint, gnp.round, gnp.floor, gnp.ceil):
        g = host(gp.grad(lambda x: gnp.sum(f(x) * x))(dev(x)))
        np.testing.assert_array_equal(g, getattr(np, f.__name__)(x))   # d(f(x) x) = f(x)
    assert_same(gnp.round(dev(x)), np.round(x))
    np.testing.assert_array_equal(np.signbit(host(gnp.rint(dev(x)))), np.signbit(np.rint(x)))


# ---- binary ----------------------------------------------------------------------
def binary_inputs(name, sx, sy):
    if name in ("maximum", "minimum"):
        return lattice(sx, 0.05, 1), lattice(sy, 0.15, 2)
    if name == "power":
        return uniform(sx, 0.5, 2.0, 1), uniform(sy, -1.5, 1.5, 2)
    if name == "divide":
        return uniform(sx, seed=1), away_from_zero(sy, 2)
    return uniform(sx, seed=1), uniform(sy, seed=2)


BINARY = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum"]


SHAPES = [(), (3,), (3, 1), (1, 4), (2, 3, 4)]


def _broadcastable(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


PAIRS = [(a, b) for a, b in itertools.product(SHAPES, SHAPES) if _broadcastable(a, b)]


EMPTY_PAIRS = [((0,), ()), ((0,), (0,)), ((3, 1), (0,)), ((1,), (0,))]


@pytest.mark.parametrize("sx,sy", PAIRS + EMPTY_PAIRS, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_broadcasting(name, sx, sy):
    check(lambda m, x, y: getattr(m, name)(x, y), *binary_inputs(name, sx, sy))


@pytest.mark.parametrize("scalar", [2, -1.5, np.float64(0.75)], ids=repr)
@pytest.mark.parametrize("name", BINARY)
def test_binary_with_python_scalar(name, scalar):
    """A scalar on either side; float32 arrays stay float32 (NumPy's rule)."""
    x = binary_inputs(name, (2, 3), ())[0] if name in ("power", "maximum", "minimum") \
        else away_from_zero((2, 3))
    f = getattr(gnp, name)
    for dtype in (np.float64, np.float32):
        xd = x.astype(dtype)
        assert_same(f(dev(xd), scalar), getattr(np, name)(xd, scalar), rtol=1e-6)
        if name != "power" or scalar > 0:
            assert_same(f(scalar, dev(xd)), getattr(np, name)(scalar, xd), rtol=1e-6)
    check_grads(lambda x: f(x, scalar), (x,))
    if name != "power" or scalar > 0:
        check_grads(lambda x: f(scalar, x), (x,))


@pytest.mark.parametrize("p", [0, 1, 2, 3, -1, -2, 2.0, 0.5, -1.5, np.float64(3.0)], ids=repr)
def test_power_scalar_exponent(p):
    integral = float(p) == int(p)
    x = away_from_zero((2, 3)) if integral else uniform((2, 3), 0.5, 2.0)
    check(lambda m, x: m.power(x, p), x)
    check(lambda m, x: x ** p + m.power(2.0, x), x)       # operators, scalar base


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_power_at_zero():
    """0**y: d/dx is 0 at y == 0 and d/dy is 0, with no inf or nan on the way."""
    x, y = np.array([0.0, 0.0, 2.0]), np.array([0.0, 2.0, 0.0])
    gx, gy = gp.grad(lambda x, y: gnp.sum(x ** y), argnums=(0, 1))(dev(x), dev(y))
    np.testing.assert_array_equal(host(gx), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(host(gy), [0.0, 0.0, np.log(2.0)])


def test_operators():
    """Python operators on tracers are the gnp functions."""
    x, y = uniform((3, 1), seed=1), away_from_zero((1, 4), seed=2)

    def f(m, x, y):
        return (x + y) * (x - y) / y + 2.0 / y - 1 - (-x) ** 2 + abs(y) ** 1.5 @ m.ones((4, 4))
    check_grads(lambda x, y: f(gnp, x, y), (x, y))
    assert_same(gp.grad(lambda x: gnp.sum(f(gnp, x, dev(y))))(dev(x)),
                np.sum(2 * x / y - 2 * x, axis=1, keepdims=True))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_elementwise_ties_split_half(name):
    x, y = np.array([1.0, 2.0, 3.0]), 2.0
    gx, gy = gp.grad(lambda x, y: gnp.sum(getattr(gnp, name)(x, y)), argnums=(0, 1))(dev(x), y)
    wins = x > y if name == "maximum" else x < y
    np.testing.assert_allclose(host(gx), np.where(x == y, 0.5, wins))
    np.testing.assert_allclose(host(gy), 0.5 + np.sum(~wins & (x != y)))


BINARY_MATH = {
    "arctan2": lambda m, x, y: m.arctan2(x, y),
    "hypot": lambda m, x, y: m.hypot(x, y),
    "logaddexp": lambda m, x, y: m.logaddexp(x, y),
}


MATH_PAIRS = [((2, 3), (2, 3)), ((3, 1), (1, 4)), ((2, 3), ()), ((), (3,)), ((0,), ())]


@pytest.mark.parametrize("sx,sy", MATH_PAIRS, ids=str)
@pytest.mark.parametrize("name", BINARY_MATH)
def test_binary_math(name, sx, sy):
    check(BINARY_MATH[name], away_from_zero(sx, 1), away_from_zero(sy, 2))


@pytest.mark.parametrize("name", BINARY_MATH)
def test_binary_math_with_python_scalar_keeps_float32(name):
    f, x = BINARY_MATH[name], away_from_zero((2, 3)).astype(np.float32)
    for a, b in [(dev(x), 0.75), (-1.5, dev(x))]:
        ha, hb = (host(v) if not isinstance(v, float) else v for v in (a, b))
        assert_same(f(gnp, a, b), f(REF, ha, hb), rtol=1e-6)
    check_grads(lambda x: f(gnp, x, 0.75) + f(gnp, -1.5, x), (x,))


def test_logaddexp_ties_infinities_and_large_values():
    x = np.array([1.0, -np.inf, np.inf, -np.inf, 1e4, -1e4, 3.0])
    y = np.array([1.0, -np.inf, np.inf, 2.0, 1e4 - 1, 5.0, np.inf])
    with np.errstate(invalid="raise"):      # no inf - inf on the way
        assert_same(gnp.logaddexp(dev(x), dev(y)), np.logaddexp(x, y))
    pick = [0, 3, 4, 5]
    gx, gy = gp.grad(lambda x, y: gnp.sum(gnp.logaddexp(x, y)), argnums=(0, 1))(
        dev(x[pick]), dev(y[pick]))
    w = np.array([0.5, 0.0, 1 / (1 + np.exp(-1.0)), 0.0])      # exp(x - out)
    np.testing.assert_allclose(host(gx), w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(host(gy), 1 - w, rtol=1e-12, atol=1e-15)
    x32 = np.array([1e4, -3e4], np.float32)
    assert_same(gnp.logaddexp(dev(x32), dev(x32 - 1)), np.logaddexp(x32, x32 - 1), rtol=1e-6)


def test_hypot_and_arctan2_gradients():
    g = gp.grad(lambda x, y: gnp.sum(gnp.hypot(x, y)), argnums=(0, 1))(
        dev([3.0, 0.0]), dev([4.0, 0.0]))
    np.testing.assert_allclose(host(g[0]), [0.6, 0.0])      # 0 at the origin, as abs
    np.testing.assert_allclose(host(g[1]), [0.8, 0.0])
    g = gp.grad(lambda y, x: gnp.arctan2(y, x), argnums=(0, 1))(1.0, -1.0)
    np.testing.assert_allclose([host(g[0]), host(g[1])], [-0.5, -0.5])


# ---- where and clip --------------------------------------------------------------
@pytest.mark.parametrize("shapes", [((2, 3), (2, 3), (2, 3)), ((3, 1), (1, 4), ()),
                                    ((2, 3, 4), (4,), (3, 1)), ((0,), (0,), ())], ids=str)
def test_where(shapes):
    sc, sx, sy = shapes
    c = uniform(sc, seed=3) > 0
    check(lambda m, x, y: m.where(m.asarray(c), x, y), uniform(sx, seed=1), uniform(sy, seed=2))


def test_where_with_float_condition():
    """NumPy's where takes any condition (nonzero is true); it has no derivative."""
    x = away_from_zero((2, 3))
    c = np.where(x > 0, x, 0.0)
    g = gp.grad(lambda x: gnp.sum(gnp.where(gnp.where(x > 0, x, 0.0), x * x, x)))(dev(x))
    assert_same(g, np.where(c, 2 * x, 1.0))


@pytest.mark.parametrize("crossed", [False, True])
def test_clip_array_bounds(crossed):
    """Bounds that broadcast; crossed: a_min > a_max in places, where NumPy's
    clip gives a_max (and so the derivative goes to a_max)."""
    x = lattice((2, 3, 4), 0.05)         # k/4 + 0.05: at least 0.05 from every bound
    lo = np.array([[-1.1], [0.8 if crossed else -0.4], [0.35]])
    hi = np.array([0.4, 1.0, 1.4, 0.9])
    check(lambda m, x, lo, hi: m.clip(x, lo, hi), x, lo, hi)


def test_clip_at_bounds_passes_gradient():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    g = host(gp.grad(lambda x: gnp.sum(gnp.clip(x, -1.0, 1.0)))(dev(x)))
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 0])


# ---- comparisons and logic -------------------------------------------------------
COMPARISONS = ["greater", "greater_equal", "less", "less_equal", "equal", "not_equal"]


@pytest.mark.parametrize("name", COMPARISONS + ["logical_and", "logical_or"])
def test_comparison_values(name):
    x, y = lattice((3, 1), 0.0, 1), lattice((1, 4), 0.0, 2)     # with ties
    x[0, 0] = y[0, 0]
    for a, b in [(x, y), (x, 0.25), (0.25, y)]:
        da, db = (dev(v) if isinstance(v, np.ndarray) else v for v in (a, b))
        assert_same(getattr(gnp, name)(da, db), getattr(np, name)(a, b))


@pytest.mark.parametrize("name", ["logical_not", "isfinite", "isnan"])
def test_predicate_values(name):
    x = np.array([0.0, 1.0, -np.inf, np.nan, np.inf])
    assert_same(getattr(gnp, name)(dev(x)), getattr(np, name)(x))


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_in_where_has_no_gradient(name):
    x, y = lattice((3, 1), 0.0, 1), lattice((1, 4), 0.0, 2)
    x[0, 0] = y[0, 0]
    cmp = getattr(gnp, name)

    def f(x, y):
        return gnp.sum(gnp.where(cmp(x, y), x * y, x - y))
    gx, gy = gp.grad(f, argnums=(0, 1))(dev(x), dev(y))
    c = getattr(np, name)(x, y)
    np.testing.assert_allclose(host(gx), np.sum(np.where(c, y, 1.0), axis=1, keepdims=True))
    np.testing.assert_allclose(host(gy), np.sum(np.where(c, x, -1.0), axis=0, keepdims=True))


# ---- dtypes ----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(UNARY) + ["sum", "mean", "max", "var", "std", "logsumexp"])
def test_float32_gradient_is_float32(name):
    """float32 stays float32 forward and backward; the values agree with float64."""
    fn = UNARY[name][1] if name in UNARY else lambda m, x: getattr(m, name)(x, axis=-1)
    x = DOMAINS[UNARY[name][0] if name in UNARY else "real"]((2, 3))
    out32 = fn(gnp, dev(x, np.float32))
    want = fn(REF, x.astype(np.float32))
    want_dtype = np.float64 if name == "astype(float64)" else np.float32
    assert host(out32).dtype == np.asarray(want).dtype == want_dtype

    def grad_at(dtype):
        return host(gp.grad(lambda x: gnp.sum(fn(gnp, x)))(dev(x, dtype)))
    g32, g64 = grad_at(np.float32), grad_at(np.float64)
    assert g32.dtype == np.float32 and g64.dtype == np.float64
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


def test_mixed_dtypes():
    x32, y64 = uniform((3,), seed=1).astype(np.float32), uniform((3,), seed=2)
    assert_same(gnp.multiply(dev(x32), dev(y64)), x32 * y64)
    gx, gy = gp.grad(lambda x, y: gnp.sum(x * y), argnums=(0, 1))(dev(x32), dev(y64))
    assert_same(gx, y64.astype(np.float32))
    assert_same(gy, x32.astype(np.float64))
    g = gp.grad(lambda x: gnp.sum(gnp.astype(x, np.float32) * 3.0))(dev(y64))
    assert_same(g, np.full(3, 3.0))


def test_python_float_argument_is_float64():
    (v, g) = gp.value_and_grad(lambda x: gnp.sin(x) * x)(1.5)
    assert_same(v, np.float64(np.sin(1.5) * 1.5))
    assert_same(g, np.float64(np.cos(1.5) * 1.5 + np.sin(1.5)))
    assert_same(gnp.exp(1.5), np.exp(1.5))
