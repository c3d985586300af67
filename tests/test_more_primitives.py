"""The wider NumPy surface of gpuprop.numpy (inverse and hyperbolic
trigonometry, rounding, hypot, logaddexp, prod, cumsum, tensordot, einsum,
trace, diagonal, flip, roll, pad, split, take, triu, tril) against NumPy
(values and dtypes) and against finite differences (check_grads, to second
order) in float64, away from kinks; the points where a rule must be careful
(zeros in prod, ties and infinities in logaddexp) have tests of their own.
"""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import dev, host
from test_primitives import REF, assert_same, away_from_zero, check, distinct, uniform


def open_interval(shape, seed=0):
    return uniform(shape, -0.9, 0.9, seed)


def off_lattice(shape, seed=0):
    """k/4 + 0.1: at least 0.1 from every integer and half-integer (the
    jumps of floor, ceil and rint)."""
    return np.random.default_rng(seed).integers(-8, 9, shape) / 4 + 0.1


def hundredths(shape, seed=0):
    """k/100 + 0.003: x * 10 is 0.03 or more from every half-integer."""
    return np.random.default_rng(seed).integers(-300, 300, shape) / 100 + 0.003


# ---- elementwise ---------------------------------------------------------------
UNARY = {
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
@pytest.mark.parametrize("name", UNARY)
def test_unary(name, shape):
    domain, fn = UNARY[name]
    check(fn, domain(shape))


@pytest.mark.parametrize("name", UNARY)
def test_unary_float32(name):
    """float32 stays float32, with a Python scalar too, and so does the gradient."""
    domain, fn = UNARY[name]
    x = domain((2, 3)).astype(np.float32)
    assert_same(fn(gnp, dev(x)), fn(REF, x), rtol=1e-6)
    assert_same(fn(gnp, dev(x) * 1.0), fn(REF, x * 1.0), rtol=1e-6)
    g = host(gp.grad(lambda x: gnp.sum(fn(gnp, x)))(dev(x)))
    assert g.dtype == np.float32


def test_rounding_has_zero_gradient_and_rounds_halves_to_even():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.25])
    for f in (gnp.rint, gnp.round, gnp.floor, gnp.ceil):
        g = host(gp.grad(lambda x: gnp.sum(f(x) * x))(dev(x)))
        np.testing.assert_array_equal(g, getattr(np, f.__name__)(x))   # d(f(x) x) = f(x)
    assert_same(gnp.round(dev(x)), np.round(x))
    np.testing.assert_array_equal(np.signbit(host(gnp.rint(dev(x)))), np.signbit(np.rint(x)))


BINARY = {
    "arctan2": lambda m, x, y: m.arctan2(x, y),
    "hypot": lambda m, x, y: m.hypot(x, y),
    "logaddexp": lambda m, x, y: m.logaddexp(x, y),
}
PAIRS = [((2, 3), (2, 3)), ((3, 1), (1, 4)), ((2, 3), ()), ((), (3,)), ((0,), ())]


@pytest.mark.parametrize("sx,sy", PAIRS, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary(name, sx, sy):
    check(BINARY[name], away_from_zero(sx, 1), away_from_zero(sy, 2))


@pytest.mark.parametrize("name", BINARY)
def test_binary_with_python_scalar_keeps_float32(name):
    f, x = BINARY[name], away_from_zero((2, 3)).astype(np.float32)
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


# ---- reductions ---------------------------------------------------------------
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


# ---- linear algebra -------------------------------------------------------------
TENSORDOT = [((3, 4), (4, 5), 1), ((2, 3, 4), (3, 4, 5), 2), ((3,), (4,), 0),
             ((2, 3, 4), (4, 3, 5), ([1, 2], [1, 0])), ((2, 3), (3, 2), ([0, 1], [1, 0])),
             ((3, 4), (2, 3), (0, 1)), ((0, 3), (3, 2), 1)]


@pytest.mark.parametrize("sa,sb,axes", TENSORDOT, ids=str)
def test_tensordot(sa, sb, axes):
    check(lambda m, a, b: m.tensordot(a, b, axes), uniform(sa, seed=1), uniform(sb, seed=2))


EINSUM = [("ij,jk->ik", (3, 4), (4, 5)), ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
          ("i,i->", (4,), (4,)), ("i,j->ij", (3,), (4,)), ("ij,ij->i", (3, 4), (3, 4)),
          ("bij,jk->bki", (2, 3, 4), (4, 5)), ("ij,jk", (3, 4), (4, 2)),
          ("ijk,kj->ik", (2, 3, 4), (4, 3)), ("ij,kl->", (2, 3), (4, 1)),
          ("ii,ij->j", (3, 3), (3, 2)), ("ij,jk->ik", (2, 1), (3, 4)),
          ("ij->ji", (3, 4)), ("ii->i", (3, 3)), ("ii", (3, 3)), ("ij->", (3, 4)),
          ("iji->j", (3, 2, 3)), ("ij,jk,kl->il", (2, 3), (3, 4), (4, 2))]


@pytest.mark.parametrize("case", EINSUM, ids=lambda c: c[0])
def test_einsum(case):
    spec, *shapes = case
    check(lambda m, *xs: m.einsum(spec, *xs), *(uniform(s, seed=k) for k, s in enumerate(shapes)))


def test_einsum_dtypes():
    a, b = uniform((2, 3)).astype(np.float32), uniform((3, 4))
    assert_same(gnp.einsum("ij,jk->ik", dev(a), dev(a.T.copy())),
                np.einsum("ij,jk->ik", a, a.T), rtol=1e-6)
    assert_same(gnp.einsum("ij,jk->ik", dev(a), dev(b)), np.einsum("ij,jk->ik", a, b))
    n = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert_same(gnp.einsum("ij->i", dev(n)), np.einsum("ij->i", n))


@pytest.mark.parametrize("shape,offset,axes", [((3, 4), 0, (0, 1)), ((3, 4), 1, (0, 1)),
                                               ((3, 4), -2, (0, 1)), ((3, 4), 5, (0, 1)),
                                               ((4, 3), -1, (1, 0)), ((2, 3, 4), 1, (1, 2)),
                                               ((2, 3, 4), 0, (2, 0))], ids=str)
def test_diagonal_and_trace(shape, offset, axes):
    check(lambda m, x: m.diagonal(x, offset, *axes), uniform(shape))
    check(lambda m, x: m.trace(x, offset, *axes), uniform(shape))


def test_trace_of_integers_and_methods():
    n = np.arange(9, dtype=np.int32).reshape(3, 3)
    assert_same(gnp.trace(dev(n)), np.trace(n))
    x = uniform((3, 3))
    f = lambda x: x.trace() + x.diagonal().prod() + x.cumsum().sum() + x.take(1) + x.round().sum()
    check_grads(f, (x,))


# ---- shape ----------------------------------------------------------------------
SHAPE_OPS = {
    "flip": lambda m, x: m.flip(x),
    "flip(0)": lambda m, x: m.flip(x, 0),
    "flip((0,-1))": lambda m, x: m.flip(x, (0, -1)),
    "roll(1)": lambda m, x: m.roll(x, 1),
    "roll(-2,1)": lambda m, x: m.roll(x, -2, axis=1),
    "roll(7,-1)": lambda m, x: m.roll(x, 7, axis=-1),
    "roll((1,2),(0,2))": lambda m, x: m.roll(x, (1, 2), axis=(0, 2)),
    "roll(3,0)": lambda m, x: m.roll(x, 2, axis=0),
    "pad(1)": lambda m, x: m.pad(x, 1),
    "pad((1,2))": lambda m, x: m.pad(x, (1, 2), constant_values=1.5),
    "pad(per axis)": lambda m, x: m.pad(x, ((0, 1), (2, 0), (0, 0)), "constant",
                                        constant_values=-1),
    "take(None)": lambda m, x: m.take(x, m.asarray([5, 0, 5, -1])),
    "take(1)": lambda m, x: m.take(x, m.asarray([[2, 0], [2, 2]]), axis=1),
    "take(-1, int)": lambda m, x: m.take(x, 3, axis=-1),
    "take(list)": lambda m, x: m.take(x, [1, 0, 1], axis=0),
    "tril": lambda m, x: m.tril(x),
    "triu(1)": lambda m, x: m.triu(x, 1),
    "tril(-1)": lambda m, x: m.tril(x, -1),
    "triu(-2)": lambda m, x: m.triu(x, k=-2),
}


@pytest.mark.parametrize("name", SHAPE_OPS)
def test_shape_op(name):
    check(SHAPE_OPS[name], uniform((2, 3, 4)))


@pytest.mark.parametrize("name", ["triu", "tril"])
def test_triangles_of_1d_and_special_values(name):
    check(lambda m, x: getattr(m, name)(x, 1), uniform((3,)))
    x = np.array([[1.0, np.inf], [np.nan, 2.0]])
    assert_same(getattr(gnp, name)(dev(x)), getattr(np, name)(x))
    for dt in (np.float32, np.int32, np.bool_):
        assert_same(getattr(gnp, name)(dev(x > 0, dt)), getattr(np, name)((x > 0).astype(dt)))


def test_pad_keeps_dtype():
    x = uniform((2, 3)).astype(np.float32)
    assert_same(gnp.pad(dev(x), 1, constant_values=2.5), np.pad(x, 1, constant_values=2.5))
    assert gnp.pad(dev(x), 0) is not None


@pytest.mark.parametrize("parts,axis", [(3, 0), ([1, 3], 0), ([2, -1, 9], 1), (2, -1),
                                        ([], 0)], ids=str)
@pytest.mark.parametrize("name", ["split", "array_split"])
def test_split(name, parts, axis):
    x = uniform((6, 4))
    got = getattr(gnp, name)(dev(x), parts, axis=axis)
    want = getattr(np, name)(x, parts, axis=axis)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_same(g, w)
    check_grads(lambda x: [p * (k + 1.0) for k, p in enumerate(getattr(gnp, name)(x, parts, axis))],
                (x,))


def test_array_split_uneven():
    x = uniform((7, 2))
    for n in (3, 4, 7, 9):
        got, want = gnp.array_split(dev(x), n), np.array_split(x, n)
        assert [host(g).shape for g in got] == [w.shape for w in want]
    check_grads(lambda x: gnp.array_split(x, 3)[0] * 2.0 + 1.0, (x,))


def test_errors_name_the_function():
    x = dev(uniform((6, 4)))
    with pytest.raises(ValueError, match="gnp.split.*array_split"):
        gnp.split(x, 4)
    with pytest.raises(NotImplementedError, match="gnp.pad.*edge"):
        gnp.pad(x, 1, mode="edge")
    with pytest.raises(ValueError, match="gnp.pad"):
        gnp.pad(x, -1)
    with pytest.raises(ValueError, match="gnp.tensordot"):
        gnp.tensordot(x, x, 1)
    with pytest.raises(ValueError, match="gnp.einsum.*sizes 4 and 6"):
        gnp.einsum("ij,jk->ik", x, x)
    with pytest.raises(NotImplementedError, match="ellips"):
        gnp.einsum("...ij->...ji", x)
    with pytest.raises(ValueError, match="gnp.diagonal"):
        gnp.diagonal(dev(uniform((3,))))


# ---- transforms and NumPy dispatch -------------------------------------------------
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
