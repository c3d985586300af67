"""Reductions: sum, prod, max, min, cumsum (primitives), mean, var, std,
argmax, argmin.

`axis` is None, an int (negative counts from the end) or a tuple; the
primitives receive it normalised to a sorted tuple of non-negative axes.
"""
import numpy as np

from ..core import Primitive, ShapedArray, bind, size_of
from ._base import (batch_reduction, bind_reduction, keep_axes, moveaxis0,  # noqa: F401
                    ones_like, reduction_aval, sum, sum_dtype, sum_to_shape)
from ._rules import normalize_axis, ndim_of, shape_of, dtype_of
from . import elementwise as ew, shape as sh


def _shift(x, s):
    """x moved s places along its last axis, with ones coming in at the start."""
    n = shape_of(x)[-1]
    head = sh.getitem(x, (Ellipsis, slice(0, n - s)))
    return sh.pad(head, [(0, 0)] * (ndim_of(x) - 1) + [(s, 0)], constant_values=1)


def _exclusive_cumprod(x):
    """The product of the entries before each one along the last axis (1 for
    the first): a log-depth scan of products with shifted copies (Hillis and
    Steele).  Made of multiply, pad and slices only, so it is differentiable
    again, with zeros anywhere."""
    y, s = _shift(x, 1), 1
    while s < shape_of(x)[-1]:
        y = ew.multiply(y, _shift(y, s))
        s *= 2
    return y


def _prod_rule(g, out, x, axis, keepdims):
    """d prod / dx_i is the product of the other entries: exclusive products
    from the left times those from the right, not out / x, so zeros (any
    number of them) get their exact derivative, at every order."""
    shape = shape_of(x)
    axes = tuple(range(len(shape))) if axis is None else axis
    g = keep_axes(g, x, axis, keepdims)
    n = size_of([shape[a] for a in axes])
    if n <= 1:      # the product of no other entries is 1
        return sh.broadcast_to(g, shape)
    order = [a for a in range(len(shape)) if a not in axes] + list(axes)
    rows = sh.reshape(sh.transpose(x, order), tuple(shape[a] for a in order[:-len(axes)]) + (n,))
    left = _exclusive_cumprod(rows)
    right = sh.flip(_exclusive_cumprod(sh.flip(rows, -1)), -1)
    others = sh.reshape(ew.multiply(left, right), tuple(shape[a] for a in order))
    return ew.multiply(g, sh.transpose(others, tuple(np.argsort(order))))


def _weighted_jvp(rule):
    """For a reduction whose VJP is the broadcast cotangent times a weight
    per entry (prod: the product of the others; max: the share of a tie),
    the JVP is the reduction of tangent times that weight."""
    def jvp(tangents, out, x, axis, keepdims):
        weight = rule(ones_like(out), out, x, axis=axis, keepdims=keepdims)
        return sum(ew.multiply(tangents[0], weight), axis, keepdims)
    return jvp


prod_p = Primitive(
    "prod", lambda xp, x, axis, keepdims: xp.prod(x, axis=axis, keepdims=keepdims),
    reduction_aval("prod", sum_dtype), vjp=(_prod_rule,), jvp=_weighted_jvp(_prod_rule), batch=batch_reduction,
    backend_fn=True, takes_out=True, reduce_ufunc="multiply")


def _extremum_rule(g, out, x, axis, keepdims):
    # the cotangent is shared equally among the positions that attain the
    # extremum: a valid subgradient when there are ties
    hit = ew.astype(ew.equal(x, keep_axes(out, x, axis, keepdims)), dtype_of(g))
    count = sum(hit, axis=axis, keepdims=True)
    return ew.multiply(ew.divide(keep_axes(g, x, axis, keepdims), count), hit)


max_p = Primitive("max", lambda xp, x, axis, keepdims: xp.max(x, axis=axis, keepdims=keepdims),
                  reduction_aval("max", np.dtype, needs_elements=True), vjp=(_extremum_rule,),
                  jvp=_weighted_jvp(_extremum_rule), batch=batch_reduction,
                  backend_fn=True, takes_out=True, reduce_ufunc="maximum")
min_p = Primitive("min", lambda xp, x, axis, keepdims: xp.min(x, axis=axis, keepdims=keepdims),
                  reduction_aval("min", np.dtype, needs_elements=True), vjp=(_extremum_rule,),
                  jvp=_weighted_jvp(_extremum_rule), batch=batch_reduction,
                  backend_fn=True, takes_out=True, reduce_ufunc="minimum")
def _batch_arg_extremum(prim, vals, dims, axis, keepdims):
    """argmax/argmin of each example: over its one axis, or over all of it
    flattened (axis None), as NumPy."""
    x = moveaxis0(vals[0], dims[0])
    if axis is not None:
        return bind(prim, (x,), {"axis": (axis[0] + 1,), "keepdims": keepdims}), 0
    shape = shape_of(x)
    flat = bind(prim, (sh.reshape(x, (shape[0], -1)),), {"axis": (1,), "keepdims": False})
    return (sh.reshape(flat, shape[:1] + (1,) * (len(shape) - 1)) if keepdims else flat), 0


# argmax/argmin take one axis (or None), as NumPy's do
argmax_p = Primitive("argmax", lambda xp, x, axis, keepdims: xp.argmax(
                         x, axis=None if axis is None else axis[0], keepdims=keepdims),
                     reduction_aval("argmax", lambda _: np.dtype(np.intp), True),
                     batch=_batch_arg_extremum)
argmin_p = Primitive("argmin", lambda xp, x, axis, keepdims: xp.argmin(
                         x, axis=None if axis is None else axis[0], keepdims=keepdims),
                     reduction_aval("argmin", lambda _: np.dtype(np.intp), True),
                     batch=_batch_arg_extremum)


def prod(x, axis=None, keepdims=False):
    """Product; its gradient is exact where entries are zero (see _prod_rule)."""
    return bind_reduction(prod_p, x, axis, keepdims)


cumsum_p = Primitive(
    "cumsum", lambda xp, x, axis: xp.cumsum(x, axis=axis),
    lambda x, axis: ShapedArray(shape_of(x), sum_dtype(dtype_of(x))),
    # each entry feeds the sums from it to the end: reversed cumsum of g
    vjp=(lambda g, out, x, axis: sh.flip(cumsum(sh.flip(g, axis), axis), axis),), linear=True,
    batch=lambda prim, vals, dims, axis: (
        bind(prim, (moveaxis0(vals[0], dims[0]),), {"axis": axis + 1}), 0))


def cumsum(x, axis=None):
    """Cumulative sum along one axis; axis None sums over the flattened array."""
    if axis is None:
        x, axis = sh.ravel(x), 0
    (axis,) = normalize_axis("cumsum", _single_axis("cumsum", axis), ndim_of(x))
    return bind(cumsum_p, (x,), {"axis": axis})


def cumprod(x, axis=None):
    """Cumulative product along one axis (the flattened array for None): the
    log-depth scan of _exclusive_cumprod times x, so its derivatives are exact
    with zeros anywhere."""
    if axis is None:
        x, axis = sh.ravel(x), 0
    (axis,) = normalize_axis("cumprod", _single_axis("cumprod", axis), ndim_of(x))
    if shape_of(x)[axis] == 0:
        return ew.astype(x, sum_dtype(dtype_of(x)))
    last = sh.moveaxis(x, axis, -1)
    return sh.moveaxis(ew.multiply(_exclusive_cumprod(last), last), -1, axis)


def diff(a, n=1, axis=-1, prepend=None, append=None):
    """The n-th differences along `axis`, with `prepend`/`append` joined first."""
    axis = _single_axis("diff", axis)
    (axis,) = normalize_axis("diff", axis, ndim_of(a))
    parts = [sh.broadcast_to(v, shape_of(a)[:axis] + (1,) + shape_of(a)[axis + 1:])
             if ndim_of(v) == 0 else v for v in (prepend, a, append) if v is not None]
    if len(parts) > 1:
        a = sh.concatenate(parts, axis=axis)
    for _ in range(int(n)):
        a = ew.subtract(sh.getitem(a, sh.along(axis, slice(1, None))),
                        sh.getitem(a, sh.along(axis, slice(None, -1))))
    return a


def gradient(f, *varargs, axis=None, edge_order=1):
    """NumPy's gradient for uniform spacings (scalars, one per axis or one for
    all): central differences inside, one-sided ones of order `edge_order`
    (1 or 2) at the ends.  A list of arrays for several axes, as NumPy's."""
    n = ndim_of(f)
    axes = list(range(n)) if axis is None else list(normalize_axis("gradient", axis, n)) \
        if isinstance(axis, (tuple, list)) else [normalize_axis("gradient", axis, n)[0]]
    if len(varargs) > 1:
        spacing = list(varargs)
    else:       # one spacing for every axis, 1 by default
        spacing = list(varargs or [1.0]) * len(axes)
    if len(spacing) != len(axes) or any(ndim_of(h) for h in spacing):
        raise ValueError(f"gnp.gradient: give one scalar spacing, or one per axis "
                         f"({len(axes)}); coordinate arrays are not supported")
    if edge_order not in (1, 2):
        raise ValueError(f"gnp.gradient: edge_order must be 1 or 2, got {edge_order}")
    out = []
    for ax, h in zip(axes, spacing):
        length = shape_of(f)[ax]
        if length < edge_order + 1:
            raise ValueError(f"gnp.gradient: axis {ax} of length {length} needs at least "
                             f"{edge_order + 1} points for edge_order={edge_order}")
        at = lambda i: sh.getitem(f, sh.along(ax, i))
        mid = ew.divide(ew.subtract(at(slice(2, None)), at(slice(None, -2))), 2.0)
        if edge_order == 1:
            first = ew.subtract(at(slice(1, 2)), at(slice(0, 1)))
            last = ew.subtract(at(slice(-1, None)), at(slice(-2, -1)))
        else:
            first = ew.divide(ew.add(ew.add(ew.multiply(at(slice(0, 1)), -3.0),
                                            ew.multiply(at(slice(1, 2)), 4.0)),
                                     ew.negative(at(slice(2, 3)))), 2.0)
            last = ew.divide(ew.add(ew.add(ew.multiply(at(slice(-1, None)), 3.0),
                                           ew.multiply(at(slice(-2, -1)), -4.0)),
                                    at(slice(-3, -2))), 2.0)
        out.append(ew.divide(sh.concatenate([first, mid, last], axis=ax), h))
    return out[0] if len(out) == 1 else out


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """The integral of y along `axis` by the trapezoidal rule, over sample
    points x (any array broadcasting against y; 1-D along `axis`) or a spacing dx."""
    (axis,) = normalize_axis("trapezoid", _single_axis("trapezoid", axis), ndim_of(y))
    if x is None:
        d = dx
    else:
        d = diff(x, axis=-1 if ndim_of(x) == 1 else axis)
        if ndim_of(x) == 1:
            d = sh.reshape(d, (-1,) + (1,) * (ndim_of(y) - 1 - axis))
    pairs = ew.add(sh.getitem(y, sh.along(axis, slice(1, None))),
                   sh.getitem(y, sh.along(axis, slice(None, -1))))
    return sum(ew.divide(ew.multiply(pairs, d), 2.0), axis=axis)


def max(x, axis=None, keepdims=False):
    """Maximum; its gradient is shared equally among ties."""
    return bind_reduction(max_p, x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    """Minimum; its gradient is shared equally among ties."""
    return bind_reduction(min_p, x, axis, keepdims)


def _count(x, axis, name="mean"):
    shape = shape_of(x)
    axis = normalize_axis(name, axis, len(shape))
    return size_of([shape[a] for a in (range(len(shape)) if axis is None else axis)])


def mean(x, axis=None, keepdims=False):
    # a Python int divisor keeps float32 float32; int inputs give float64, as in NumPy
    n = _count(x, axis)     # first: its errors name gnp.mean
    return ew.divide(sum(x, axis, keepdims), n)


def var(x, axis=None, keepdims=False, ddof=0):
    """The mean squared distance from the mean: |d|^2 for complex x (real, as NumPy)."""
    d = ew.subtract(x, mean(x, axis, keepdims=True))
    sq = ew.real(ew.multiply(d, ew.conj(d))) if ew.iscomplexobj(d) else ew.multiply(d, d)
    return ew.divide(sum(sq, axis, keepdims), _count(x, axis) - ddof)


def std(x, axis=None, keepdims=False, ddof=0):
    v = var(x, axis, keepdims, ddof)
    if _count(x, axis, "std") == 1 and ddof == 0:
        # one element: identically 0, and so is its derivative (sqrt's at 0
        # would make it 0 * inf, NaN)
        return v
    return ew.sqrt(v)


def _single_axis(name, axis):
    if isinstance(axis, (tuple, list)):
        raise TypeError(f"gnp.{name}: axis must be an int or None, got {axis!r}")
    return axis


def argmax(x, axis=None, keepdims=False):
    return bind_reduction(argmax_p, x, _single_axis("argmax", axis), keepdims)


def argmin(x, axis=None, keepdims=False):
    return bind_reduction(argmin_p, x, _single_axis("argmin", axis), keepdims)
