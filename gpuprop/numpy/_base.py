"""The bottom of gpuprop.numpy: reshape, broadcast_to, transpose and sum, the
primitives every family's rules need: VJPs to bring a cotangent back to an
argument's shape (sum_to_shape, unbroadcast), batching rules to move and pad
the batch axis (batch_broadcasting & co).  Their own rules use only each
other, so this module imports nothing else of the package, and the families
import downward: elementwise -> shape -> reductions -> products -> ..."""
import numpy as np

from .. import backend
from ..core import Primitive, ShapedArray, bind, size_of
from ._rules import dtype_of, normalize_axis, ndim_of, shape_of


def same_dtype(rule):
    def aval_rule(x, **params):
        return ShapedArray(rule(shape_of(x), **params), dtype_of(x))
    return aval_rule


# ---- batching: where the batch axis goes -----------------------------------------
def moveaxis0(x, d):
    """x with its axis d (the batch axis) moved to the front."""
    if d == 0:
        return x
    n = len(shape_of(x))
    return transpose(x, (d,) + tuple(i for i in range(n) if i != d))


def batch_size(vals, dims):
    return next(shape_of(v)[d] for v, d in zip(vals, dims) if d is not None)


def with_batch(v, d, size):
    """v with the batch axis first: moved there, or broadcast if v has none."""
    return moveaxis0(v, d) if d is not None else broadcast_to(v, (size,) + shape_of(v))


def all_batched(vals, dims):
    """Every value with the batch axis first (unbatched ones broadcast)."""
    size = batch_size(vals, dims)
    return [with_batch(v, d, size) for v, d in zip(vals, dims)]


def batch_first(vals, dims, rank=None):
    """The batched values with the batch axis first and, with `rank`, ones
    inserted after it to 1 + rank dimensions (so that broadcasting against
    unbatched values lines the example axes up, and the batch axis with
    nothing); unbatched values as they are."""
    out = []
    for v, d in zip(vals, dims):
        if d is not None:
            v = moveaxis0(v, d)
            s = shape_of(v)
            if rank is not None and len(s) - 1 < rank:
                v = reshape(v, s[:1] + (1,) * (rank - len(s) + 1) + s[1:])
        out.append(v)
    return out


def example_rank(vals, dims):
    """The largest number of dimensions of one example among the arguments."""
    return max(len(shape_of(v)) - (d is not None) for v, d in zip(vals, dims))


def batch_broadcasting(prim, vals, dims, **params):
    """The batching rule of a primitive that broadcasts its arguments'
    leading axes as NumPy does (stacks of matrices; elementwise operations):
    the batch axis goes first, every batched argument padded to one rank."""
    return bind(prim, tuple(batch_first(vals, dims, example_rank(vals, dims))), params), 0


def batch_elementwise(prim, vals, dims, **params):
    """An elementwise primitive of one array: the batch axis stays where it is."""
    if len(vals) == 1:
        return bind(prim, tuple(vals), params), dims[0]
    return batch_broadcasting(prim, vals, dims, **params)


def batch_reduction(prim, vals, dims, axis, keepdims):
    """A reduction over `axis` (a sorted tuple, or None for every axis)."""
    x = moveaxis0(vals[0], dims[0])
    n = len(shape_of(x)) - 1
    axes = tuple(range(1, n + 1)) if axis is None else tuple(a + 1 for a in axis)
    return bind(prim, (x,), {"axis": axes, "keepdims": keepdims}), 0


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
                      batch=lambda prim, vals, dims, shape: (
                          reshape(moveaxis0(vals[0], dims[0]),
                                  (batch_size(vals, dims),) + tuple(shape)), 0),
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
    batch=lambda prim, vals, dims, shape: (
        broadcast_to(batch_first(vals, dims, len(shape))[0],
                     (batch_size(vals, dims),) + tuple(shape)), 0),
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


def _compose_axes(inner, outer):
    return {"axes": tuple(inner["axes"][a] for a in outer["axes"])}


transpose_p = Primitive("transpose", lambda xp, x, axes: xp.transpose(x, axes),
                        same_dtype(lambda s, axes: tuple(s[a] for a in axes)),
                        vjp=(lambda g, out, x, axes: transpose(g, tuple(np.argsort(axes))),),
                        linear=True, batch=lambda prim, vals, dims, axes: (
                            transpose(moveaxis0(vals[0], dims[0]),
                                      (0,) + tuple(a + 1 for a in axes)), 0),
                        method="axes", view=True, compose=_compose_axes,
                        is_identity=lambda x, axes: axes == tuple(range(len(axes))))


def transpose(x, axes=None):
    n = ndim_of(x)
    axes = tuple(range(n))[::-1] if axes is None else tuple(int(a) % n for a in axes)
    if sorted(axes) != list(range(n)):
        raise ValueError(f"gnp.transpose: axes {axes} are not a permutation of "
                         f"the {n} axes of an array of shape {shape_of(x)}")
    if axes == tuple(range(n)):
        return x
    return bind(transpose_p, (x,), {"axes": axes})


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
    batch=batch_reduction, backend_fn=True, takes_out=True, reduce_ufunc="add")


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
