"""gpuprop.scipy against SciPy's values (where SciPy is installed: the
functions computed by the backend's special-function module need it on
NumPy) or closed forms, and against finite differences (check_grads,
second order, float64), eagerly and under jit."""
import importlib.util
import math
import sys

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.scipy import special, stats
from gpuprop.testing import check_grads
from support import dev, host

HAVE_SCIPY = importlib.util.find_spec("scipy") is not None
needs_scipy = pytest.mark.skipif(not HAVE_SCIPY, reason="SciPy (the 'scipy' extra) is not installed")


def close(got, want, tol=1e-12):
    np.testing.assert_allclose(host(got), want, rtol=tol, atol=tol)


def grid(lo, hi, shape=(2, 5)):
    return np.linspace(lo, hi, int(np.prod(shape))).reshape(shape)


# name -> domain; the reference is scipy.special's function.  erfinv stops at
# 0.9 (and logit below at 0.1): steeper, and the fourth derivatives that the
# finite differences of the second-order checks see grow past their tolerance
BACKEND_FUNCTIONS = {
    "erf": grid(-3, 3), "erfc": grid(-3, 3), "erfinv": grid(-0.9, 0.9),
    "gammaln": grid(0.3, 6), "digamma": grid(0.3, 6), "ndtr": grid(-5, 5),
    "log_ndtr": grid(-30, 5),
}


@needs_scipy
@pytest.mark.parametrize("name", BACKEND_FUNCTIONS)
def test_backend_functions(name):
    import scipy.special as ss
    x = BACKEND_FUNCTIONS[name]
    f = getattr(special, name)
    close(f(dev(x)), getattr(ss, name)(x))
    close(gp.jit(f)(dev(x)), getattr(ss, name)(x))
    check_grads(f, (x,), order=2)
    assert host(f(dev(x.astype(np.float32)))).dtype == np.float32


@needs_scipy
def test_derivatives_are_the_known_closed_forms():
    import scipy.special as ss
    x = grid(-2, 2)
    close(gp.grad(lambda x: gnp.sum(special.erf(x)))(dev(x)), 2 / math.sqrt(math.pi) * np.exp(-x * x))
    close(gp.grad(lambda x: gnp.sum(special.gammaln(x)))(dev(x + 3)), ss.digamma(x + 3))
    close(gp.grad(gp.grad(lambda x: special.digamma(x)))(2.5), ss.polygamma(2, 2.5))
    # far in the lower tail, d log_ndtr = phi / Phi is about -x, not NaN
    close(gp.grad(special.log_ndtr)(-40.0), 40.0249, 1e-5)


@needs_scipy
def test_norm_matches_scipy():
    import scipy.stats as st
    x, loc, scale = grid(-3, 3), dev([0.5]), dev([[2.0], [0.5]])
    for name in ("logpdf", "pdf", "cdf", "logcdf"):
        f = getattr(stats.norm, name)
        close(f(dev(x), loc, scale), getattr(st.norm, name)(x, 0.5, np.array([[2.0], [0.5]])))
        check_grads(f, (x, 0.5, np.array([[2.0], [0.5]])), order=2)
        close(f(dev(x)), getattr(st.norm, name)(x))


def test_norm_logpdf_and_pdf_without_scipy():
    x = grid(-3, 3)
    close(stats.norm.logpdf(dev(x), 1.0, 2.0),
          -((x - 1) / 2) ** 2 / 2 - math.log(2) - 0.5 * math.log(2 * math.pi))
    close(stats.norm.pdf(dev(x)), np.exp(-x * x / 2) / math.sqrt(2 * math.pi))
    check_grads(stats.norm.logpdf, (x, 1.0, 2.0), order=2)


def test_expit_logit():
    x, p = grid(-5, 5), grid(0.05, 0.95)
    close(special.expit(dev(x)), 1 / (1 + np.exp(-x)))
    close(special.logit(dev(p)), np.log(p / (1 - p)))
    close(special.logit(special.expit(dev(x))), x, 1e-10)
    check_grads(special.expit, (x,), order=2)
    check_grads(special.logit, (grid(0.1, 0.9),), order=2)


def test_xlogy_xlog1py():
    x = np.array([0.0, 0.0, 0.0, 2.0, 1.5, 0.0])
    y = np.array([0.0, 3.0, -1.0, 3.0, 0.5, np.inf])
    close(special.xlogy(dev(x), dev(y)), [0, 0, 0, 2 * np.log(3), 1.5 * np.log(0.5), 0])
    close(special.xlog1py(dev(x), dev(y - 1)), [0, 0, 0, 2 * np.log(3), 1.5 * np.log(0.5), 0])
    assert np.isnan(host(special.xlogy(dev(0.0), dev(np.nan))))
    # JAX's derivatives: log(y) in x even at x = 0, x / y in y
    close(gp.grad(special.xlogy)(0.0, 3.0), math.log(3))
    close(gp.grad(special.xlogy, argnums=1)(0.0, 3.0), 0.0)
    close(gp.grad(special.xlogy)(0.0, 0.0), 0.0)
    xs, ys = grid(-1, 2), grid(0.5, 3)
    check_grads(special.xlogy, (xs, ys), order=2)
    check_grads(special.xlog1py, (xs, ys - 0.4), order=2)


def _reference_logsumexp(a, axis, b=None):
    s = np.sum((1 if b is None else b) * np.exp(a), axis=axis)
    return np.log(np.abs(s)), np.sign(s)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_logsumexp(axis):
    a = np.random.default_rng(0).standard_normal((3, 4))
    b = np.random.default_rng(1).standard_normal((3, 4))
    out, sign = _reference_logsumexp(a, axis, b)
    got, got_sign = special.logsumexp(dev(a), axis=axis, b=dev(b), return_sign=True)
    close(got, out)
    close(got_sign, sign)
    close(special.logsumexp(dev(a), axis=axis, b=dev(abs(b))),
          _reference_logsumexp(a, axis, abs(b))[0])
    close(special.logsumexp(dev(a), axis=axis), _reference_logsumexp(a, axis)[0])
    kept = special.logsumexp(dev(a), axis=axis, b=dev(abs(b)), keepdims=True)
    assert host(kept).shape == np.sum(a, axis=axis, keepdims=True).shape
    check_grads(lambda a, b: special.logsumexp(a, axis=axis, b=b, return_sign=True)[0],
                (a, b), order=2)
    check_grads(lambda a: special.logsumexp(a, axis=axis), (a,), order=2)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")     # log of a negative sum
def test_logsumexp_is_stable_and_broadcasts_b():
    a = np.array([[1e4, 1e4 - 1], [-1e4, -1e4]])
    close(special.logsumexp(dev(a), axis=1, b=dev([2.0, 0.5])),
          [1e4 + np.log(2 + 0.5 * np.exp(-1)), -1e4 + np.log(2.5)])
    assert np.isnan(host(special.logsumexp(dev([0.0, 0.0]), b=dev([-1.0, 0.5]))))
    close(gp.jit(lambda a: special.logsumexp(a, axis=1, b=dev([2.0, 0.5])))(dev(a)),
          [1e4 + np.log(2 + 0.5 * np.exp(-1)), -1e4 + np.log(2.5)])


def test_without_scipy_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.special", None)     # import fails
    with gp.use_backend("numpy"):
        with pytest.raises(ImportError, match=r"special.erf needs SciPy.*gpuprop\[scipy\]"):
            special.erf(np.array([0.5]))
        close(special.expit(np.array([0.0])), [0.5])      # composites need no SciPy
