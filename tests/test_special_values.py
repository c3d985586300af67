"""Special values, eager and under jit, in float32 and float64: infinities
where calculus says infinity (log and sqrt at 0, 1/0), zeros where a limit
is 0 (0**2, 0**0 with respect to the base), finite values and gradients
from the stable softmax family at logits of +-1e4 and with -inf masks,
gradients shared among ties, and the documented NaN of `where` whose
untaken branch has an infinite derivative (with the safe pattern beside it).
"""
import os

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import dev, host

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # inf and nan on purpose
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=["eager", "jit"])
def transform(request):
    """How each function under test is run: as it is, or compiled."""
    return (lambda f: f) if request.param == "eager" else gp.jit


@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return request.param


def value_and_grad(transform, f, x, dtype):
    """f's value and gradient at host data x (as dtype), both on the host;
    the gradient must keep the input's dtype."""
    v, g = transform(gp.value_and_grad(f))(dev(x, dtype))
    v, g = np.asarray(host(v)), np.asarray(host(g))
    assert g.dtype == dtype and g.shape == np.shape(x)
    return v, g


def test_log_at_zero_is_minus_inf_with_gradient_plus_inf(transform, dtype):
    v, g = value_and_grad(transform, lambda x: gnp.sum(gnp.log(x)), [0.0, 1.0], dtype)
    assert v == -np.inf
    np.testing.assert_array_equal(g, [np.inf, 1.0])


def test_sqrt_at_zero_is_zero_with_gradient_plus_inf(transform, dtype):
    v, g = value_and_grad(transform, lambda x: gnp.sum(gnp.sqrt(x)), [0.0, 4.0], dtype)
    assert v == 2.0
    np.testing.assert_array_equal(g, [np.inf, 0.25])


@pytest.mark.parametrize("p,value,slope", [(2, 0.0, 0.0), (2.0, 0.0, 0.0), (0.5, 0.0, np.inf),
                                           (0, 1.0, 0.0), (0.0, 1.0, 0.0), (1, 0.0, 1.0)])
@pytest.mark.parametrize("exponent", ["python", "array"])
def test_zero_to_the_power_p(transform, dtype, p, value, slope, exponent):
    """0**p: the value, and d/dx x**p at x = 0 (0 for p = 2; 0, not nan, for
    p = 0), whether p is a Python number or an array (not differentiated)."""
    pp = p if exponent == "python" else dev(p, dtype)
    v, g = value_and_grad(transform, lambda x: gnp.sum(gnp.power(x, pp)), [0.0], dtype)
    assert v == value
    np.testing.assert_array_equal(g, [slope])


def test_power_gradient_with_respect_to_exponent_at_zero_base(transform, dtype):
    """d/dy 0**y is 0 (the limit along y > 0), not nan from log(0) * 0."""
    zero = dev(0.0, dtype)
    v, g = value_and_grad(transform, lambda y: gnp.sum(gnp.power(zero, y)), [0.0, 2.0], dtype)
    assert v == 1.0
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_division_by_zero(transform, dtype):
    """1/0 = inf with derivative -1/0**2 = -inf; x/0 has derivative 1/0 = inf."""
    v, g = value_and_grad(transform, lambda x: gnp.sum(gnp.divide(1.0, x)), [0.0], dtype)
    assert v == np.inf
    np.testing.assert_array_equal(g, [-np.inf])
    zero = dev([0.0], dtype)
    v, g = value_and_grad(transform, lambda x: gnp.sum(gnp.divide(x, zero)), [2.0], dtype)
    assert v == np.inf
    np.testing.assert_array_equal(g, [np.inf])


# ---- where: both branches are differentiated --------------------------------
def test_naive_where_gives_nan_gradient_and_the_safe_pattern_does_not(transform, dtype):
    """The documented pitfall: where(x > 0, log(x), 0) at x = 0 has gradient
    0 * inf = nan; log(where(x > 0, x, 1)) keeps the untaken branch finite."""
    x = [0.0, 2.0]
    naive = lambda x: gnp.sum(gnp.where(x > 0, gnp.log(x), 0.0))
    safe = lambda x: gnp.sum(gnp.where(x > 0, gnp.log(gnp.where(x > 0, x, 1.0)), 0.0))
    v, g = value_and_grad(transform, naive, x, dtype)
    assert np.isclose(v, np.log(2.0))
    assert np.isnan(g[0]) and g[1] == 0.5
    v, g = value_and_grad(transform, safe, x, dtype)
    assert np.isclose(v, np.log(2.0))
    np.testing.assert_array_equal(g, [0.0, 0.5])


def test_where_pitfall_is_documented():
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as fh:
        readme = fh.read()
    for text in (gnp.where.__doc__, readme):
        assert "where(x > 0, x, 1" in text and "NaN" in text


# ---- the softmax family: stable at huge logits and with -inf masks ----------
LOGITS = np.array([[1e4, -1e4, 0.0, 3.0],         # one huge entry
                   [-1e4, -1e4, 2.0, 2.0],        # huge negative entries, a tie
                   [1e4, 1e4 - 1.0, -1e4, 1e4],   # all near the float32 top of the row
                   [0.5, -np.inf, 1.5, -np.inf],  # masked entries (not the whole row)
                   [-np.inf, -np.inf, -np.inf, 7.0]])
LABELS = np.array([0, 2, 1, 2, 3])       # never a masked entry
WEIGHTS = np.arange(1.0, 21.0).reshape(5, 4) / 10


def _ref_softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _ref_logsumexp(x):
    m = np.max(x, axis=-1)
    return m + np.log(np.sum(np.exp(x - m[:, None]), axis=-1))


def cross_entropy(logits):
    n = logits.shape[0]
    return -gnp.mean(gnp.log_softmax(logits)[gnp.arange(n), dev(LABELS)])


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "cross_entropy"])
def test_softmax_family_is_finite_at_huge_logits_and_masks(transform, dtype, name):
    x = LOGITS.astype(dtype)
    p = _ref_softmax(LOGITS)
    w = WEIGHTS
    if name == "softmax":
        f = lambda x: gnp.sum(gnp.softmax(x) * dev(w, dtype))
        want_v = p
        want_g = p * (w - np.sum(p * w, axis=-1, keepdims=True))
        out = gnp.softmax
    elif name == "log_softmax":
        f = lambda x: gnp.sum(gnp.where(gnp.isfinite(x), gnp.log_softmax(x), 0.0) * dev(w, dtype))
        want_v = LOGITS - _ref_logsumexp(LOGITS)[:, None]     # -inf where masked
        want_g = np.where(np.isfinite(LOGITS), w, 0.0) - p * np.sum(
            np.where(np.isfinite(LOGITS), w, 0.0), axis=-1, keepdims=True)
        out = gnp.log_softmax
    elif name == "logsumexp":
        f = lambda x: gnp.sum(gnp.logsumexp(x, axis=-1) * dev(w[:, 0], dtype))
        want_v = _ref_logsumexp(LOGITS)
        want_g = p * w[:, :1]
        out = lambda x: gnp.logsumexp(x, axis=-1)
    else:
        f = cross_entropy
        want_v = -np.mean(np.log(p[np.arange(5), LABELS]))
        want_g = (p - np.eye(4)[LABELS]) / 5
        out = cross_entropy
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    got = np.asarray(host(transform(out)(dev(x))))
    assert got.dtype == dtype
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want_v, rtol=rtol, atol=1e-30)
    v, g = value_and_grad(transform, f, x, dtype)
    assert np.isfinite(v) and np.isfinite(g).all(), g
    np.testing.assert_allclose(g, want_g, rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-14)


# ---- ties ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["max", "min"])
def test_reduction_ties_share_the_gradient(transform, dtype, name):
    x = np.array([[3.0, 1.0, 3.0, 3.0], [-1.0, 2.0, -1.0, 2.0]])
    v, g = value_and_grad(transform, lambda x: gnp.sum(getattr(gnp, name)(x, axis=1)), x, dtype)
    hit = x == getattr(np, name)(x, axis=1, keepdims=True)
    assert v == np.sum(getattr(np, name)(x, axis=1))
    np.testing.assert_allclose(g, hit / hit.sum(axis=1, keepdims=True), rtol=1e-6)
    _, g = value_and_grad(transform, getattr(gnp, name), np.full(4, 2.0), dtype)
    np.testing.assert_array_equal(g, np.full(4, 0.25))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_elementwise_ties_split_the_gradient(transform, dtype, name):
    y = dev([1.0, 2.0, 3.0], dtype)
    _, g = value_and_grad(transform, lambda x: gnp.sum(getattr(gnp, name)(x, y)),
                          [1.0, 5.0, -5.0], dtype)
    np.testing.assert_array_equal(g, [0.5, name == "maximum", name == "minimum"])
