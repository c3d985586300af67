"""Special functions: primitives computed by the backend's special-function
module (see gpuprop.scipy), whose derivatives are closed forms written with
gpuprop's functions (so differentiable again), and composites."""
import math

import numpy as np

from ..core import Primitive, ShapedArray, bind
from ..numpy import elementwise as ew, reductions as red
from ..numpy._base import batch_elementwise
from ..numpy._rules import broadcast_shapes, dtype_of, ndim_of, normalize_axis, shape_of
from ..numpy.composites import _stable_max, logsumexp as _gnp_logsumexp
from ..numpy.shape import broadcast_to, squeeze

_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _backend_special(xp, name):
    """The special-function module of backend namespace `xp`."""
    try:
        if xp is np:
            import scipy.special as special
        elif getattr(xp, "__name__", None) == "cupy":
            import cupyx.scipy.special as special
        else:
            special = xp.scipy.special
    except (ImportError, AttributeError) as e:
        raise ImportError(
            f"gpuprop.scipy.special.{name} needs SciPy on the NumPy backend (CuPy's own "
            f"cupyx.scipy.special on CUDA), which is not installed: pip install "
            f"gpuprop[scipy]") from e
    return getattr(special, name)


def _float_aval(*avals, **params):
    """Floating results: float32 stays, integers and Python numbers give float64."""
    dtypes = [dtype_of(a) for a in avals if isinstance(a, ShapedArray)]
    dt = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    return ShapedArray(broadcast_shapes("special", *avals),
                       dt if dt.kind == "f" else np.dtype(np.float64))


def _prim(name, vjp):
    return Primitive(f"special.{name}", lambda xp, x: _backend_special(xp, name)(x),
                     _float_aval, vjp=(vjp,), batch=batch_elementwise)


def _gaussian(x):
    """exp(-x^2)"""
    return ew.exp(ew.negative(ew.multiply(x, x)))


_erf_p = _prim("erf", lambda g, out, x: ew.multiply(g, ew.multiply(_TWO_OVER_SQRT_PI,
                                                                   _gaussian(x))))
_erfc_p = _prim("erfc", lambda g, out, x: ew.multiply(g, ew.multiply(-_TWO_OVER_SQRT_PI,
                                                                     _gaussian(x))))
# d erfinv(y) = sqrt(pi)/2 exp(erfinv(y)^2) dy
_erfinv_p = _prim("erfinv", lambda g, out, x: ew.divide(g, ew.multiply(_TWO_OVER_SQRT_PI,
                                                                       _gaussian(out))))
_gammaln_p = _prim("gammaln", lambda g, out, x: ew.multiply(g, digamma(x)))
# d log Phi(x) = phi(x) / Phi(x) = exp(log phi(x) - log Phi(x)): finite far in the tail
_log_ndtr_p = _prim("log_ndtr", lambda g, out, x: ew.multiply(g, ew.exp(ew.subtract(
    ew.subtract(ew.multiply(-0.5, ew.multiply(x, x)), _LOG_SQRT_2PI), out))))


def _polygamma_impl(xp, x, n):
    if n == 0:
        return _backend_special(xp, "digamma")(x)
    return _backend_special(xp, "polygamma")(n, x)


# polygamma(n, x), the n-th derivative of digamma: the chain of derivatives
# of gammaln at every order
_polygamma_p = Primitive("special.polygamma", _polygamma_impl, _float_aval,
                         vjp=(lambda g, out, x, n: ew.multiply(g, _polygamma(n + 1, x)),),
                         batch=batch_elementwise)


def _polygamma(n, x):
    return bind(_polygamma_p, (x,), {"n": n})


def erf(x):
    """The error function 2/sqrt(pi) * integral of exp(-t^2) from 0 to x."""
    return bind(_erf_p, (x,), {})


def erfc(x):
    """1 - erf(x), accurate where erf(x) is close to 1."""
    return bind(_erfc_p, (x,), {})


def erfinv(y):
    """The inverse of erf on (-1, 1)."""
    return bind(_erfinv_p, (y,), {})


def gammaln(x):
    """log |Gamma(x)|."""
    return bind(_gammaln_p, (x,), {})


def digamma(x):
    """The derivative of gammaln."""
    return _polygamma(0, x)


def ndtr(x):
    """The standard normal CDF, erfc(-x / sqrt(2)) / 2 (accurate in the lower tail)."""
    return ew.multiply(0.5, erfc(ew.multiply(x, -1 / math.sqrt(2))))


def log_ndtr(x):
    """log(ndtr(x)), accurate far in the lower tail (x = -40 gives -804.6)."""
    return bind(_log_ndtr_p, (x,), {})


def expit(x):
    """The logistic function 1 / (1 + exp(-x))."""
    return ew.logistic(x)


def logit(p):
    """log(p / (1 - p)), the inverse of expit."""
    return ew.subtract(ew.log(p), ew.log1p(ew.negative(p)))


def xlogy(x, y):
    """x * log(y), taken as 0 where x == 0 (for y of any value but NaN).
    Derivatives as JAX's: log(y) and x / y, each 0 where x == y == 0."""
    # y is replaced by 1 where x == 0 and log(y) is not finite
    unsafe = ew.logical_and(ew.equal(x, 0),
                            ew.logical_or(ew.less_equal(y, 0), ew.equal(y, np.inf)))
    return ew.multiply(x, ew.log(ew.where(unsafe, 1.0, y)))


def xlog1py(x, y):
    """x * log1p(y), taken as 0 where x == 0 (for y of any value but NaN)."""
    unsafe = ew.logical_and(ew.equal(x, 0),
                            ew.logical_or(ew.less_equal(y, -1), ew.equal(y, np.inf)))
    return ew.multiply(x, ew.log1p(ew.where(unsafe, 0.0, y)))


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b * exp(a))) over `axis` without overflow, as SciPy's.  With
    return_sign, (log|sum|, sign of the sum); without it a negative sum
    gives NaN.  Differentiable in a and b."""
    if b is None and not return_sign:
        return _gnp_logsumexp(a, axis=axis, keepdims=keepdims)
    axis = normalize_axis("special.logsumexp", axis, max(ndim_of(a), ndim_of(b)))
    if b is not None and shape_of(a) != shape_of(b):
        shape = broadcast_shapes("special.logsumexp", *[ShapedArray(shape_of(v), "f")
                                                         for v in (a, b)])
        a = broadcast_to(a, shape)
    m = _stable_max(a, axis)
    e = ew.exp(ew.subtract(a, m))
    total = red.sum(e if b is None else ew.multiply(b, e), axis=axis, keepdims=True)
    if return_sign:
        sign = ew.sign(total)
        out = ew.add(ew.log(ew.abs(total)), m)
    else:
        out = ew.add(ew.log(total), m)
    if not keepdims:
        out = squeeze(out, axis)
    if return_sign:
        return out, (sign if keepdims else squeeze(sign, axis))
    return out
