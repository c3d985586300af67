"""Shape primitives: reshape, transpose, broadcast_to, getitem (and its
transpose scatter_add), concatenate; squeeze, expand_dims, stack, swapaxes
and ravel are built on them."""
from typing import NamedTuple

import numpy as np

from .. import backend
from ..core import Primitive, ShapedArray, Tracer, bind
from ._rules import dtype_of, ndim_of, normalize_axis, shape_of
from . import reductions


def _same_dtype(rule):
    def aval_rule(x, **params):
        return ShapedArray(rule(shape_of(x), **params), dtype_of(x))
    return aval_rule


def _reshape_shape(shape, shape_to):
    if int(np.prod(shape)) != int(np.prod(shape_to)):
        raise ValueError(f"gnp.reshape: cannot reshape an array of shape {shape} "
                         f"(size {int(np.prod(shape))}) into shape {shape_to}")
    return shape_to


reshape_p = Primitive("reshape", lambda xp, x, shape: xp.reshape(x, shape),
                      _same_dtype(lambda s, shape: _reshape_shape(s, shape)),
                      vjp=(lambda g, out, x, shape: reshape(g, shape_of(x)),))
transpose_p = Primitive("transpose", lambda xp, x, axes: xp.transpose(x, axes),
                        _same_dtype(lambda s, axes: tuple(s[a] for a in axes)),
                        vjp=(lambda g, out, x, axes: transpose(g, tuple(np.argsort(axes))),))


def _broadcast_to_shape(s, shape):
    try:
        if np.broadcast_shapes(s, shape) == shape:
            return shape
    except ValueError:
        pass
    raise ValueError(f"gnp.broadcast_to: cannot broadcast an array of shape {s} to shape {shape}")


broadcast_to_p = Primitive(
    "broadcast_to", lambda xp, x, shape: xp.broadcast_to(x, shape),
    _same_dtype(_broadcast_to_shape),
    vjp=(lambda g, out, x, shape: reductions.sum_to_shape(g, shape_of(x)),))


def reshape(x, shape):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    if -1 in shape:
        size, known = int(np.prod(shape_of(x))), -int(np.prod(shape))
        if shape.count(-1) > 1 or known == 0 or size % known:
            raise ValueError(f"gnp.reshape: cannot reshape an array of shape "
                             f"{shape_of(x)} into shape {shape}")
        shape = tuple(size // known if d == -1 else d for d in shape)
    if shape == shape_of(x):
        return x
    return bind(reshape_p, (x,), {"shape": shape})


def transpose(x, axes=None):
    n = ndim_of(x)
    axes = tuple(range(n))[::-1] if axes is None else tuple(int(a) % n for a in axes)
    if sorted(axes) != list(range(n)):
        raise ValueError(f"gnp.transpose: axes {axes} are not a permutation of "
                         f"the {n} axes of an array of shape {shape_of(x)}")
    if axes == tuple(range(n)):
        return x
    return bind(transpose_p, (x,), {"axes": axes})


def broadcast_to(x, shape):
    shape = tuple(shape)
    if shape == shape_of(x):
        return x
    return bind(broadcast_to_p, (x,), {"shape": shape})


def swapaxes(x, a, b):
    axes = list(range(ndim_of(x)))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, axes)


def moveaxis(x, source, destination):
    n = ndim_of(x)
    order = [a for a in range(n) if a != source % n]
    order.insert(destination % n, source % n)
    return transpose(x, order)


def squeeze(x, axis=None):
    s = shape_of(x)
    if axis is None:
        axis = tuple(i for i, d in enumerate(s) if d == 1)
    axis = normalize_axis("squeeze", axis, len(s))
    for a in axis:
        if s[a] != 1:
            raise ValueError(f"gnp.squeeze: cannot squeeze axis {a} of size {s[a]} "
                             f"(shape {s}); only axes of size 1 can be removed")
    return reshape(x, tuple(d for i, d in enumerate(s) if i not in axis))


def expand_dims(x, axis):
    s = list(shape_of(x))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = normalize_axis("expand_dims", axes, len(s) + len(axes))
    for a in axes:
        s.insert(a, 1)
    return reshape(x, tuple(s))


def ravel(x):
    return reshape(x, (-1,))


# ---- indexing ---------------------------------------------------------------
class Slice(NamedTuple):
    """A hashable slice (params must be hashable for jit's cache)."""
    start: object
    stop: object
    step: object

    def __repr__(self):     # as written in an index: 1:3, ::-1, :
        parts = ["" if v is None else str(v) for v in self]
        return ":".join(parts if self.step is not None else parts[:2])


ARRAY = "<array>"    # placeholder in an index spec for an index-array argument


def _spec(index):
    """Split a NumPy index into a hashable spec and its index arrays."""
    if not isinstance(index, tuple):
        index = (index,)
    spec, arrays = [], []
    for i in index:
        if isinstance(i, slice):
            spec.append(Slice(*(None if v is None else int(v) for v in (i.start, i.stop, i.step))))
        elif i is None or i is Ellipsis:
            spec.append(i)
        elif isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)):
            spec.append(int(i))
        else:
            if not isinstance(i, Tracer):
                i = backend.asarray(i) if isinstance(i, (list, tuple)) else i
            if np.dtype(dtype_of(i)).kind not in "iub":
                raise IndexError(f"gnp getitem: index arrays must be integers or booleans, "
                                 f"got dtype {dtype_of(i)}")
            spec.append(ARRAY)
            arrays.append(i)
    return tuple(spec), arrays


def _index(spec, arrays):
    it = iter(arrays)
    return tuple(next(it) if s is ARRAY else slice(*s) if isinstance(s, Slice) else s
                 for s in spec)


def _getitem_aval(x, *arrays, spec):
    if any(np.dtype(a.dtype).kind == "b" for a in arrays):
        raise IndexError("gnp getitem: a boolean mask gives a shape that depends on "
                         "the data, which jit cannot stage; use gnp.where instead")
    dummies = [np.zeros(a.shape, a.dtype) for a in arrays]
    try:
        shape = np.empty(shape_of(x), np.bool_)[_index(spec, dummies)].shape
    except IndexError as e:
        raise IndexError(f"gnp getitem: index {spec} is invalid for an array of shape "
                         f"{shape_of(x)}: {e}") from None
    return ShapedArray(shape, dtype_of(x))


def _scatter_add_impl(xp, g, *arrays, spec, shape):
    z = xp.zeros(shape, g.dtype)
    idx = _index(spec, arrays)
    if arrays:      # repeated indices must accumulate
        backend.current().index_add(z, idx, g)
    else:
        z[idx] = g
    return z


getitem_p = Primitive(
    "getitem", lambda xp, x, *arrays, spec: x[_index(spec, arrays)], _getitem_aval,
    vjp=(lambda g, out, x, *arrays, spec:
         bind(scatter_add_p, (g, *arrays), {"spec": spec, "shape": shape_of(x)}),))
scatter_add_p = Primitive(
    "scatter_add", _scatter_add_impl,
    lambda g, *arrays, spec, shape: ShapedArray(shape, g.dtype),
    vjp=(lambda g, out, _, *arrays, spec, shape:
         bind(getitem_p, (g, *arrays), {"spec": spec}),))


def getitem(x, index):
    """x[index]: ints, slices, None, Ellipsis and integer arrays (a gather:
    repeated indices sum their cotangents), as in NumPy."""
    spec, arrays = _spec(index)
    return bind(getitem_p, (x, *arrays), {"spec": spec})


# ---- joining ----------------------------------------------------------------
def _concatenate_aval(*xs, axis):
    shapes = [shape_of(x) for x in xs]
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis):
            raise ValueError(f"gnp.concatenate: shapes {' and '.join(map(str, shapes))} "
                             f"differ outside axis {axis}")
    shape = list(first)
    shape[axis] = sum(s[axis] for s in shapes)
    return ShapedArray(shape, np.result_type(*[dtype_of(x) for x in xs]))


def _concatenate_vjp(i, g, out, *xs, axis):
    start = sum(shape_of(x)[axis] for x in xs[:i])
    index = (slice(None),) * axis + (slice(start, start + shape_of(xs[i])[axis]),)
    return getitem(g, index)


concatenate_p = Primitive("concatenate", lambda xp, *xs, axis: xp.concatenate(xs, axis=axis),
                          _concatenate_aval, vjp_variadic=_concatenate_vjp)


def concatenate(arrays, axis=0):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("gnp.concatenate: needs at least one array")
    if any(ndim_of(a) == 0 for a in arrays):
        raise ValueError("gnp.concatenate: zero-dimensional arrays cannot be concatenated")
    axis = normalize_axis("concatenate", axis, ndim_of(arrays[0]))[0]
    return bind(concatenate_p, tuple(arrays), {"axis": axis})


def stack(arrays, axis=0):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("gnp.stack: needs at least one array")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"gnp.stack: all arrays must have the same shape, got {sorted(shapes)}")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)
