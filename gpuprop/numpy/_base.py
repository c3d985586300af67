"""The bottom of gpuprop.numpy: reshape, broadcast_to and sum, the three
primitives every family's VJP rules need to bring a cotangent back to an
argument's shape (sum_to_shape, unbroadcast).  Their own rules use only each
other, so this module imports nothing else of the package, and the families
import downward: elementwise -> shape -> reductions -> linalg -> composites."""
import numpy as np

from .. import backend
from ..core import Primitive, ShapedArray, bind, size_of
from ._rules import dtype_of, normalize_axis, ndim_of, shape_of


def same_dtype(rule):
    def aval_rule(x, **params):
        return ShapedArray(rule(shape_of(x), **params), dtype_of(x))
    return aval_rule


def _reshape_shape(shape, shape_to):
    if size_of(shape) != size_of(shape_to):
        raise ValueError(f"gnp.reshape: cannot reshape an array of shape {shape} "
                         f"(size {size_of(shape)}) into shape {shape_to}")
    return shape_to


def _same_shape(x, shape):
    return x.shape == shape


reshape_p = Primitive("reshape", lambda xp, x, shape: xp.reshape(x, shape),
                      same_dtype(lambda s, shape: _reshape_shape(s, shape)),
                      vjp=(lambda g, out, x, shape: reshape(g, shape_of(x)),), linear=True,
                      method="shape", view=True, compose=lambda inner, outer: outer,
                      is_identity=_same_shape)


def _broadcast_to_shape(s, shape):
    try:
        if np.broadcast_shapes(s, shape) == shape:
            return shape
    except ValueError:
        pass
    raise ValueError(f"gnp.broadcast_to: cannot broadcast an array of shape {s} to shape {shape}")


broadcast_to_p = Primitive(
    "broadcast_to", lambda xp, x, shape: xp.broadcast_to(x, shape),
    same_dtype(_broadcast_to_shape),
    vjp=(lambda g, out, x, shape: sum_to_shape(g, shape_of(x)),), linear=True,
    view=True, is_identity=_same_shape)


def reshape(x, shape):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    if -1 in shape:
        size, known = size_of(shape_of(x)), -size_of(shape)
        if shape.count(-1) > 1 or known == 0 or size % known:
            raise ValueError(f"gnp.reshape: cannot reshape an array of shape "
                             f"{shape_of(x)} into shape {shape}")
        shape = tuple(size // known if d == -1 else d for d in shape)
    if shape == shape_of(x):
        return x
    return bind(reshape_p, (x,), {"shape": shape})


def broadcast_to(x, shape):
    shape = tuple(shape)
    if shape == shape_of(x):
        return x
    return bind(broadcast_to_p, (x,), {"shape": shape})


def zeros_like(x, dtype=None):
    """Zeros of x's shape (and dtype) on the active backend: a constant, such
    as the tangent of what does not depend on the input."""
    return backend.current().xp.zeros(shape_of(x), dtype or dtype_of(x))


def ones_like(x, dtype=None):
    return backend.current().xp.ones(shape_of(x), dtype or dtype_of(x))


def _reduced_shape(shape, axis, keepdims):
    if axis is None:
        axis = range(len(shape))
    if keepdims:
        return tuple(1 if i in axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axis)


def reduction_aval(name, result_dtype, needs_elements=False):
    """The rule of a reduction; `needs_elements`: an empty axis has no result
    (max, argmax: there is no identity element to return)."""
    def rule(x, axis, keepdims):
        shape = shape_of(x)
        for a in axis or ():
            if needs_elements and shape[a] == 0:
                raise ValueError(f"gnp.{name}: zero-size axis {a} of an array of "
                                 f"shape {shape} has no {name}; pass initial "
                                 f"values or check the shape")
        return ShapedArray(_reduced_shape(shape, axis, keepdims), result_dtype(dtype_of(x)))
    return rule


def keep_axes(g, x, axis, keepdims):
    """The reduced value `g` made to broadcast against `x`'s shape (a full
    reduction's 0-d value already does)."""
    if not keepdims and axis is not None:
        g = reshape(g, _reduced_shape(shape_of(x), axis, True))
    return g


def sum_dtype(dt):
    return np.sum(np.zeros(0, dt)).dtype


sum_p = Primitive(
    "sum", lambda xp, x, axis, keepdims: xp.sum(x, axis=axis, keepdims=keepdims),
    reduction_aval("sum", sum_dtype),
    vjp=(lambda g, out, x, axis, keepdims:
         broadcast_to(keep_axes(g, x, axis, keepdims), shape_of(x)),), linear=True,
    backend_fn=True, takes_out=True, reduce_ufunc="add")


def bind_reduction(prim, x, axis, keepdims):
    axis = normalize_axis(prim.name, axis, ndim_of(x))
    return bind(prim, (x,), {"axis": axis, "keepdims": bool(keepdims)})


def sum(x, axis=None, keepdims=False):
    return bind_reduction(sum_p, x, axis, keepdims)


def sum_to_shape(g, shape):
    """Sum `g` over the axes that broadcasting added or stretched to reach `shape`."""
    gshape = shape_of(g)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and gshape[lead + i] != 1)
    if axes:
        g = sum(g, axis=axes)
    return reshape(g, shape) if shape_of(g) != shape else g


def unbroadcast(g, x):
    """Sum cotangent `g` down to the shape of argument `x`."""
    shape = getattr(x, "shape", ())        # inline shape_of: the hottest VJP helper
    return g if getattr(g, "shape", ()) == shape else sum_to_shape(g, shape)
