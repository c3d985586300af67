"""Numerically stable functions built from the primitives."""
import numpy as np

from . import elementwise as ew, reductions as red, shape as sh


def _stable_max(x, axis):
    # the shift is a constant for differentiation (it cancels analytically) and
    # is taken as 0 where the maximum is infinite (all -inf rows, +inf entries)
    m = ew.stop_gradient(red.max(x, axis=axis, keepdims=True))
    return ew.where(ew.isfinite(m), m, 0.0)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) without overflow: finite for logits of +-1e4."""
    m = _stable_max(x, axis)
    s = ew.log(red.sum(ew.exp(ew.subtract(x, m)), axis=axis, keepdims=True))
    out = ew.add(s, m)
    return out if keepdims else sh.squeeze(out, axis)


def softmax(x, axis=-1):
    e = ew.exp(ew.subtract(x, _stable_max(x, axis)))
    return ew.divide(e, red.sum(e, axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    # (x - m) - log(sum(exp(x - m))), not x - logsumexp(x): adding m back
    # first would round away the small terms (float32 logits of 1e4)
    shifted = ew.subtract(x, _stable_max(x, axis))
    return ew.subtract(shifted, ew.log(red.sum(ew.exp(shifted), axis=axis, keepdims=True)))


def relu(x):
    """max(x, 0), with derivative 0 at 0; NaN stays NaN (a diverged model shows)."""
    return ew.where(ew.less_equal(x, 0), 0.0, x)


def softplus(x):
    """log(1 + exp(x)), stable for any x: logaddexp(x, 0) (derivative 1/2 at 0)."""
    return logaddexp(x, 0.0)


def logaddexp(x, y):
    """log(exp(x) + exp(y)) = a + log1p(exp(b - a)) with a the larger argument
    (x on a tie) and b the other: stable for any x, y, and the formula is exact
    on either side, so every derivative is exact at x == y too (the first is
    1/2 each, the second 1/4).  Equal infinities give themselves, as in NumPy."""
    first = ew.greater_equal(x, y)
    a, b = ew.where(first, x, y), ew.where(first, y, x)
    # b - a is taken as 0 where both are the same infinity (inf - inf is nan)
    same_inf = ew.logical_and(ew.equal(x, y), ew.logical_not(ew.isfinite(x)))
    gap = ew.subtract(ew.where(same_inf, 0.0, b), ew.where(same_inf, 0.0, a))
    return ew.add(a, ew.log1p(ew.exp(gap)))


def logaddexp2(x, y):
    """log2(2**x + 2**y), through logaddexp (stable, exact at ties)."""
    return ew.divide(logaddexp(ew.multiply(x, ew.LN2), ew.multiply(y, ew.LN2)), ew.LN2)


def real_if_close(a, tol=100):
    """The real part of a complex `a` when every imaginary part is within
    `tol` machine epsilons of 0 (tol <= 1: an absolute tolerance), else `a`,
    as NumPy.  The choice depends on the values: not inside jit."""
    if not ew.iscomplexobj(a):
        return a
    if tol > 1:
        tol = tol * float(np.finfo(a.dtype).eps)
    far = red.sum(ew.greater_equal(ew.abs(ew.imag(a)), tol))
    return a if bool(far) else ew.real(a)
