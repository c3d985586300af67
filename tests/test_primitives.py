"""Every public function of gpuprop.numpy against NumPy (values and dtypes)
and against finite differences (check_grads, to second order), in float64.

A test function is written once as `fn(m, *xs)` with `m` a namespace: `gnp`
on device arrays, `REF` (NumPy plus the few names it lacks) on host arrays.
Inputs are chosen away from kinks and ties; those get tests of their own.
"""
import itertools

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import dev, host


def _logsumexp(x, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


class _Ref:
    """NumPy, plus the names gnp has and NumPy lacks: the reference side."""
    logistic = staticmethod(lambda x: 1 / (1 + np.exp(-x)))
    stop_gradient = staticmethod(lambda x: x)
    astype = staticmethod(lambda x, dtype: np.asarray(x).astype(dtype))
    getitem = staticmethod(lambda x, index: x[index])
    relu = staticmethod(lambda x: np.maximum(x, 0))
    softplus = staticmethod(lambda x: np.logaddexp(0, x))
    logsumexp = staticmethod(_logsumexp)
    softmax = staticmethod(_softmax)
    log_softmax = staticmethod(lambda x, axis=-1: x - _logsumexp(x, axis, keepdims=True))

    def __getattr__(self, name):
        return getattr(np, name)


REF = _Ref()


def assert_same(got, want, rtol=1e-7, atol=1e-12):
    """A gpuprop result (device) against NumPy's (host): shape, dtype, values."""
    got, want = np.asarray(host(got)), np.asarray(want)
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def check(fn, *xs, order=2, rtol=1e-7):
    """fn(gnp) on the device agrees with fn(REF) on the host, and its
    derivatives with finite differences."""
    assert_same(fn(gnp, *map(dev, xs)), fn(REF, *xs), rtol=rtol)
    if order:
        check_grads(lambda *a: fn(gnp, *a), xs, order=order)


# ---- inputs -------------------------------------------------------------------
def uniform(shape, lo=-2.0, hi=2.0, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def away_from_zero(shape, seed=0):
    """Signed values with |x| >= 0.3: clear of the kinks of abs, sign, relu."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)


def lattice(shape, offset, seed=0):
    """Values k/4 + offset: two lattices with offsets 0.1 apart never tie."""
    return np.random.default_rng(seed).integers(-6, 7, shape) / 4 + offset


def distinct(shape, seed=0):
    """All entries at least 0.07 apart: no ties for max and min."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0, 0.03, n)).reshape(shape)


DOMAINS = {
    "real": uniform,
    "positive": lambda s, seed=0: uniform(s, 0.5, 2.0, seed),
    "above-1": lambda s, seed=0: uniform(s, -0.5, 2.0, seed),
    "nonzero": away_from_zero,
}


# ---- elementwise, unary -----------------------------------------------------------
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


# ---- elementwise, binary ------------------------------------------------------
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


def test_operators():
    """Python operators on tracers are the gnp functions."""
    x, y = uniform((3, 1), seed=1), away_from_zero((1, 4), seed=2)

    def f(m, x, y):
        return (x + y) * (x - y) / y + 2.0 / y - 1 - (-x) ** 2 + abs(y) ** 1.5 @ m.ones((4, 4))
    check_grads(lambda x, y: f(gnp, x, y), (x, y))
    assert_same(gp.grad(lambda x: gnp.sum(f(gnp, x, dev(y))))(dev(x)),
                np.sum(2 * x / y - 2 * x, axis=1, keepdims=True))


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3), (2, 3)), ((3, 1), (1, 4), ()),
                                    ((2, 3, 4), (4,), (3, 1)), ((0,), (0,), ())], ids=str)
def test_where(shapes):
    sc, sx, sy = shapes
    c = uniform(sc, seed=3) > 0
    check(lambda m, x, y: m.where(m.asarray(c), x, y), uniform(sx, seed=1), uniform(sy, seed=2))


@pytest.mark.parametrize("crossed", [False, True])
def test_clip_array_bounds(crossed):
    """Bounds that broadcast; crossed: a_min > a_max in places, where NumPy's
    clip gives a_max (and so the derivative goes to a_max)."""
    x = lattice((2, 3, 4), 0.05)         # k/4 + 0.05: at least 0.05 from every bound
    lo = np.array([[-1.1], [0.8 if crossed else -0.4], [0.35]])
    hi = np.array([0.4, 1.0, 1.4, 0.9])
    check(lambda m, x, lo, hi: m.clip(x, lo, hi), x, lo, hi)


def test_where_with_float_condition():
    """NumPy's where takes any condition (nonzero is true); it has no derivative."""
    x = away_from_zero((2, 3))
    c = np.where(x > 0, x, 0.0)
    g = gp.grad(lambda x: gnp.sum(gnp.where(gnp.where(x > 0, x, 0.0), x * x, x)))(dev(x))
    assert_same(g, np.where(c, 2 * x, 1.0))


# ---- comparisons and logic ------------------------------------------------------
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


# ---- dtypes -------------------------------------------------------------------
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


def test_mean_of_integers_is_float64():
    x = np.arange(6).reshape(2, 3)
    assert_same(gnp.mean(dev(x), axis=1), np.mean(x, axis=1))
    assert_same(gnp.sum(dev(x)), np.sum(x))


# ---- reductions ---------------------------------------------------------------
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


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_elementwise_ties_split_half(name):
    x, y = np.array([1.0, 2.0, 3.0]), 2.0
    gx, gy = gp.grad(lambda x, y: gnp.sum(getattr(gnp, name)(x, y)), argnums=(0, 1))(dev(x), y)
    wins = x > y if name == "maximum" else x < y
    np.testing.assert_allclose(host(gx), np.where(x == y, 0.5, wins))
    np.testing.assert_allclose(host(gy), 0.5 + np.sum(~wins & (x != y)))


@pytest.mark.parametrize("name", ["abs", "relu", "sign"])
def test_kink_at_zero_has_zero_gradient(name):
    x = np.array([-1.0, 0.0, 2.0])
    g = host(gp.grad(lambda x: gnp.sum(getattr(gnp, name)(x)))(dev(x)))
    want = {"abs": np.sign(x), "relu": (x > 0) * 1.0, "sign": np.zeros(3)}[name]
    np.testing.assert_array_equal(g, want)


def test_clip_at_bounds_passes_gradient():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    g = host(gp.grad(lambda x: gnp.sum(gnp.clip(x, -1.0, 1.0)))(dev(x)))
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 0])


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_power_at_zero():
    """0**y: d/dx is 0 at y == 0 and d/dy is 0, with no inf or nan on the way."""
    x, y = np.array([0.0, 0.0, 2.0]), np.array([0.0, 2.0, 0.0])
    gx, gy = gp.grad(lambda x, y: gnp.sum(x ** y), argnums=(0, 1))(dev(x), dev(y))
    np.testing.assert_array_equal(host(gx), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(host(gy), [0.0, 0.0, np.log(2.0)])


# ---- linear algebra -----------------------------------------------------------
MATMUL_SHAPES = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
                 ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 2)),
                 ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((4,), (2, 4, 5)),
                 ((2, 3, 4), (4,)), ((0, 4), (4, 5)), ((3, 0), (0, 5))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul(sa, sb):
    check(lambda m, a, b: m.matmul(a, b), uniform(sa, seed=1), uniform(sb, seed=2))
    check(lambda m, a, b: a @ b, uniform(sa, seed=1), uniform(sb, seed=2), order=1)


@pytest.mark.parametrize("name,sa,sb", [("dot", (3, 4), (4,)), ("dot", (), (3,)),
                                        ("dot", (4,), (4,)), ("outer", (3,), (4,))], ids=str)
def test_dot_outer(name, sa, sb):
    check(lambda m, a, b: getattr(m, name)(a, b), uniform(sa, seed=1), uniform(sb, seed=2))


# ---- shape ----------------------------------------------------------------------
SHAPE_OPS = {
    "transpose": ((2, 3, 4), lambda m, x: m.transpose(x)),
    "transpose(1,0,2)": ((2, 3, 4), lambda m, x: m.transpose(x, (1, 0, 2))),
    "transpose(-1,0,1)": ((2, 3, 4), lambda m, x: m.transpose(x, (-1, 0, 1))),
    "reshape(6,4)": ((2, 3, 4), lambda m, x: m.reshape(x, (6, 4))),
    "reshape(4,-1)": ((2, 3, 4), lambda m, x: m.reshape(x, (4, -1))),
    "reshape(-1)": ((2, 3, 4), lambda m, x: m.reshape(x, -1)),
    "reshape(())": ((1, 1), lambda m, x: m.reshape(x, ())),
    "reshape(0)": ((0, 3), lambda m, x: m.reshape(x, (3, 0))),
    "ravel": ((2, 3), lambda m, x: m.ravel(x)),
    "broadcast_to": ((3, 1), lambda m, x: m.broadcast_to(x, (2, 3, 4))),
    "broadcast_to(scalar)": ((), lambda m, x: m.broadcast_to(x, (2, 3))),
    "broadcast_to(0)": ((3, 1), lambda m, x: m.broadcast_to(x, (3, 0))),
    "squeeze": ((1, 3, 1), lambda m, x: m.squeeze(x)),
    "squeeze(0)": ((1, 3, 1), lambda m, x: m.squeeze(x, 0)),
    "squeeze(-1)": ((1, 3, 1), lambda m, x: m.squeeze(x, -1)),
    "squeeze((0,2))": ((1, 3, 1), lambda m, x: m.squeeze(x, (0, 2))),
    "expand_dims(0)": ((2, 3), lambda m, x: m.expand_dims(x, 0)),
    "expand_dims(-1)": ((2, 3), lambda m, x: m.expand_dims(x, -1)),
    "expand_dims((0,3))": ((2, 3), lambda m, x: m.expand_dims(x, (0, 3))),
    "swapaxes(0,2)": ((2, 3, 4), lambda m, x: m.swapaxes(x, 0, 2)),
    "swapaxes(-1,0)": ((2, 3, 4), lambda m, x: m.swapaxes(x, -1, 0)),
    "moveaxis(0,-1)": ((2, 3, 4), lambda m, x: m.moveaxis(x, 0, -1)),
    "moveaxis(-1,0)": ((2, 3, 4), lambda m, x: m.moveaxis(x, -1, 0)),
}


@pytest.mark.parametrize("name", SHAPE_OPS)
def test_shape_op(name):
    shape, fn = SHAPE_OPS[name]
    check(fn, uniform(shape))


A = np.array
INDICES = [
    1, -1, slice(1, None), slice(None, None, -1), (slice(None), slice(None, None, -2)),
    (Ellipsis, 1), (None, 1), (slice(None), None, slice(1, 3)), (1, Ellipsis, None),
    (slice(2, 0, -1), -2, slice(None, None, 2)), (Ellipsis,), (), (0, 1, 2),
    A([0, 2, 2, 1]), A([-1, 0, -1]), (slice(None), A([3, 3, 0])), A([[0, 1], [1, 1]]),
    (A([0, 0, 2]), slice(None), A([4, 4, 1])), (Ellipsis, A([1, 1])), [0, 0, 1],
    (1, [2, 2]), (None, A([0, 0]), Ellipsis, -1), (A([[2], [0]]), A([1, 1, 3])),
]


def _index(m, index):
    """The index with its arrays on the namespace's device."""
    if isinstance(index, tuple):
        return tuple(_index(m, i) for i in index)
    return m.asarray(index) if isinstance(index, np.ndarray) else index


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_getitem(index):
    check(lambda m, x: m.getitem(x, _index(m, index)), uniform((3, 4, 5)))
    check_grads(lambda x: x[_index(gnp, index)] * 2.0, (uniform((3, 4, 5)),))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis):
    shapes = [[2, 3, 4] for _ in range(3)]
    for k, s in enumerate(shapes):
        s[axis] = k + 1
    check(lambda m, *xs: m.concatenate(xs, axis=axis), *(uniform(s, seed=k) for k, s in enumerate(shapes)))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack(axis):
    check(lambda m, *xs: m.stack(xs, axis=axis), *(uniform((2, 3), seed=k) for k in range(3)))


def test_concatenate_dtypes_and_empty():
    a, b = uniform((2, 3)).astype(np.float32), uniform((0, 3))
    assert_same(gnp.concatenate([dev(a), dev(b)]), np.concatenate([a, b]), rtol=1e-6)
    check(lambda m, a, b: m.concatenate([a, b]), a.astype(np.float64), b)


# ---- composites -----------------------------------------------------------------
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
    assert_same(gnp.logsumexp(dev(x), axis=1), np.max(x, 1) + _logsumexp(x - np.max(x, 1, keepdims=True), 1))
    assert_same(gnp.softmax(dev(x)), _softmax(x))
    assert_same(gnp.softplus(dev(np.array([-1e4, 1e4]))), np.array([0.0, 1e4]))
    g = host(gp.grad(lambda x: gnp.sum(gnp.logsumexp(x, axis=1)))(dev(x)))
    np.testing.assert_allclose(g, _softmax(x))
