"""Numerically stable functions built from the primitives."""
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
    """max(x, 0), with derivative 0 at 0."""
    return ew.where(ew.greater(x, 0), x, 0.0)


def softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), stable for any x."""
    return ew.add(relu(x), ew.log1p(ew.exp(ew.negative(ew.abs(x)))))


def logaddexp(x, y):
    """log(exp(x) + exp(y)) = max(x, y) + log1p(exp(-|x - y|)), stable for any
    x, y; equal infinities give themselves, as in NumPy.  At x == y each
    argument gets half of the gradient (the exact derivative)."""
    # |x - y| is taken as 0 where x == y, without computing inf - inf there;
    # p is an array when either argument is (a Python scalar stays weak)
    same = ew.equal(x, y)
    p, q = (y, x) if type(x) in (int, float) else (x, y)
    p = ew.where(same, 0.0, p)
    gap = ew.abs(ew.subtract(p, ew.where(same, p, q)))
    return ew.add(ew.maximum(x, y), ew.log1p(ew.exp(ew.negative(gap))))
