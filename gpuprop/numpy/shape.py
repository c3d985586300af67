"""Shape primitives: getitem (and its transpose scatter_add), concatenate,
pad (reshape, broadcast_to and transpose are in _base); squeeze, expand_dims, stack,
swapaxes, ravel, flip, roll, split, take, diagonal, triu and tril are built
on them."""
from typing import NamedTuple

import numpy as np

from .. import backend
from ..core import Primitive, ShapedArray, Tracer, bind
from ._base import (all_batched, batch_size, broadcast_to, moveaxis0,  # noqa: F401
                    reshape, transpose, with_batch, zeros_like)
from ._rules import dtype_of, ndim_of, normalize_axis, shape_of
from . import elementwise as ew


def swapaxes(a, axis1, axis2):
    n = ndim_of(a)
    axis1, axis2 = _one_axis("swapaxes", axis1, n), _one_axis("swapaxes", axis2, n)
    axes = list(range(n))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(a, axes)


def moveaxis(a, source, destination):
    """Axes `source` (an int or a sequence) moved to `destination`."""
    n = ndim_of(a)
    src = [_one_axis("moveaxis", s, n) for s in np.atleast_1d(source).tolist()]
    dst = [_one_axis("moveaxis", d, n) for d in np.atleast_1d(destination).tolist()]
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(f"gnp.moveaxis: source {source} and destination {destination} "
                         f"must be as many distinct axes")
    order = [k for k in range(n) if k not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


def rollaxis(a, axis, start=0):
    """NumPy's rollaxis: `axis` moved to just before position `start`."""
    n = ndim_of(a)
    axis = _one_axis("rollaxis", axis, n)
    if not -n <= start <= n:
        raise ValueError(f"gnp.rollaxis: start {start} is out of range for an array of "
                         f"{n} dimension(s)")
    start = start % (n + 1) if start < 0 else start
    if axis < start:
        start -= 1
    return moveaxis(a, axis, start) if axis != start else a


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


def _atleast(n, arrays):
    out = []
    for a in arrays:
        s = shape_of(a)
        if len(s) < n:      # NumPy's placement: (N,) -> (1, N) -> (1, N, 1); (M, N) -> (M, N, 1)
            s = ((1,) * (n - len(s)) + s if n < 3 or not s else
                 (1,) + s + (1,) if len(s) == 1 else s + (1,))
        out.append(reshape(a, s))
    return out[0] if len(out) == 1 else tuple(out)


def atleast_1d(*arrays): return _atleast(1, arrays)
def atleast_2d(*arrays): return _atleast(2, arrays)
def atleast_3d(*arrays): return _atleast(3, arrays)


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


def index_spec(index):
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


# ---- batching of indexing -----------------------------------------------------
# An example's index arrays become a batch's by prepending an index array
# arange(B) for the batch axis (each index array gets the batch axis first,
# padded to one rank).  NumPy then puts the broadcast index dimensions first,
# then the other result dimensions in order: (B, *bshape, *rest).  One
# example's result has the broadcast dimensions in place instead when its
# advanced indices (arrays, and ints beside them) are consecutive: then the
# dimensions before them move back in front of the broadcast ones.
FULL = Slice(None, None, None)


def _layout(spec, x_ndim, index_ndim):
    """(permutation of the batched result into the batch's layout, B first)."""
    adv = [i for i, s in enumerate(spec) if s is ARRAY or type(s) is int]
    consecutive = adv == list(range(adv[0], adv[-1] + 1))
    consumed = sum(1 for s in spec if s is ARRAY or type(s) is int or isinstance(s, Slice))
    pre = sum(x_ndim - consumed if s is Ellipsis else 1 for s in spec[:adv[0]])
    if not consecutive or pre == 0:
        return None
    nb = index_ndim
    return (0,) + tuple(range(1 + nb, 1 + nb + pre)) + tuple(range(1, 1 + nb))


def _batched_index(spec, vals, dims, size):
    """The batch's spec and index arrays (arange(B) first), and the index rank."""
    arrays, adims = vals[1:], dims[1:]
    rank = max(len(shape_of(a)) - (d is not None) for a, d in zip(arrays, adims))
    idx = []
    for a, d in zip(arrays, adims):
        if d is not None:
            a = moveaxis0(a, d)
            s = shape_of(a)
            a = reshape(a, s[:1] + (1,) * (rank + 1 - len(s)) + s[1:])
        idx.append(a)
    ar = reshape(backend.current().xp.arange(size), (size,) + (1,) * rank)
    return (ARRAY,) + spec, [ar] + idx, rank


def _full_perm(perm, n):
    return perm + tuple(range(len(perm), n))


def _batch_getitem(prim, vals, dims, spec):
    size = batch_size(vals, dims)
    x = with_batch(vals[0], dims[0], size)
    if ARRAY not in spec:       # basic indexing: the batch axis is one more slice
        return bind(prim, (x,), {"spec": (FULL,) + spec}), 0
    bspec, idx, rank = _batched_index(spec, vals, dims, size)
    out = bind(prim, (x, *idx), {"spec": bspec})
    perm = _layout(spec, len(shape_of(x)) - 1, rank)
    return (transpose(out, _full_perm(perm, len(shape_of(out)))) if perm else out), 0


def _batch_scatter_add(prim, vals, dims, spec, shape):
    size = batch_size(vals, dims)
    g = with_batch(vals[0], dims[0], size)
    out_shape = (size,) + tuple(shape)
    if ARRAY not in spec:
        return bind(prim, (g,), {"spec": (FULL,) + spec, "shape": out_shape}), 0
    bspec, idx, rank = _batched_index(spec, vals, dims, size)
    perm = _layout(spec, len(shape), rank)
    if perm:        # into the layout the batched getitem gives
        g = transpose(g, tuple(np.argsort(_full_perm(perm, len(shape_of(g))))))
    return bind(prim, (g, *idx), {"spec": bspec, "shape": out_shape}), 0


getitem_p = Primitive(
    "getitem", lambda xp, x, *arrays, spec: x[_index(spec, arrays)], _getitem_aval,
    vjp=(lambda g, out, x, *arrays, spec:
         bind(scatter_add_p, (g, *arrays), {"spec": spec, "shape": shape_of(x)}),),
    linear=True, batch=_batch_getitem, view=lambda x, *arrays, spec: not arrays)     # basic indexing gives a view
scatter_add_p = Primitive(
    "scatter_add", _scatter_add_impl,
    lambda g, *arrays, spec, shape: ShapedArray(shape, g.dtype),
    vjp=(lambda g, out, _, *arrays, spec, shape:
         bind(getitem_p, (g, *arrays), {"spec": spec}),), linear=True,
    batch=_batch_scatter_add)


def getitem(x, index):
    """x[index]: ints, slices, None, Ellipsis and integer arrays (a gather:
    repeated indices sum their cotangents), as in NumPy."""
    spec, arrays = index_spec(index)
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


def _concatenate_jvp(tangents, out, *xs, axis):
    """The tangents joined as the arrays are (zeros where a tangent is zero)."""
    parts = [t if t is not None else zeros_like(x) for t, x in zip(tangents, xs)]
    return bind(concatenate_p, parts, {"axis": axis})


concatenate_p = Primitive("concatenate", lambda xp, *xs, axis: xp.concatenate(xs, axis=axis),
                          _concatenate_aval, vjp_variadic=_concatenate_vjp,
                          jvp=_concatenate_jvp, batch=lambda prim, vals, dims, axis: (
                              bind(prim, all_batched(vals, dims), {"axis": axis + 1}), 0))


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


def _one_axis(name, axis, ndim):
    return normalize_axis(name, int(axis), ndim)[0]


def hstack(tup):
    arrays = _as_list(atleast_1d(*tup))
    return concatenate(arrays, axis=0 if ndim_of(arrays[0]) == 1 else 1)


def vstack(tup):
    return concatenate(_as_list(atleast_2d(*tup)), axis=0)


def dstack(tup):
    return concatenate(_as_list(atleast_3d(*tup)), axis=2)


def column_stack(tup):
    """1-D arrays become columns; 2-D arrays are stacked as they are."""
    return concatenate([reshape(a, (-1, 1)) if ndim_of(a) < 2 else a for a in tup], axis=1)


row_stack = vstack


def _as_list(atleast):
    return list(atleast) if isinstance(atleast, tuple) else [atleast]


def append(arr, values, axis=None):
    """arr and values joined (both flattened when axis is None)."""
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


def repeat(a, repeats, axis=None):
    """Each entry repeated `repeats` times (an int, or one count per entry
    along `axis`; constants): a gather, whose gradient sums the copies."""
    if axis is None:
        a, axis = ravel(a), 0
    axis = _one_axis("repeat", axis, ndim_of(a))
    if isinstance(repeats, Tracer):
        raise TypeError("gnp.repeat: repeats must be constants (ints), not traced values: "
                        "the result's shape depends on them")
    n = shape_of(a)[axis]
    counts = np.asarray(backend.to_host(repeats))
    if counts.dtype.kind not in "iu" or counts.ndim > 1 or counts.size not in (1, n) \
            or (counts < 0).any():
        raise ValueError(f"gnp.repeat: repeats must be a non-negative int or one per entry "
                         f"({n}) along axis {axis}, got {repeats!r}")
    index = np.repeat(np.arange(n), np.broadcast_to(counts.reshape(-1), (n,)))
    return getitem(a, along(axis, backend.asarray(index)))


def tile(A, reps):
    """A repeated `reps` times along each axis, as NumPy's tile: a broadcast
    and a reshape, so the gradient sums the tiles."""
    reps = (int(reps),) if np.ndim(reps) == 0 else tuple(int(r) for r in reps)
    s = shape_of(A)
    n = max(len(s), len(reps))
    s, reps = (1,) * (n - len(s)) + s, (1,) * (n - len(reps)) + reps
    spread = reshape(A, tuple(d for dim in s for d in (1, dim)))
    full = broadcast_to(spread, tuple(d for r, dim in zip(reps, s) for d in (r, dim)))
    return reshape(full, tuple(r * dim for r, dim in zip(reps, s)))


def _split_along(name, axis, min_ndim):
    def f(ary, indices_or_sections):
        if ndim_of(ary) < min_ndim:
            raise ValueError(f"gnp.{name}: needs an array of at least {min_ndim} "
                             f"dimension(s), got shape {shape_of(ary)}")
        return split(ary, indices_or_sections, 0 if name == "hsplit" and ndim_of(ary) == 1
                     else axis)
    f.__name__ = f.__qualname__ = name
    return f


hsplit, vsplit, dsplit = (_split_along("hsplit", 1, 1), _split_along("vsplit", 0, 2),
                          _split_along("dsplit", 2, 3))


def fliplr(m):
    if ndim_of(m) < 2:
        raise ValueError(f"gnp.fliplr: needs an array of at least 2 dimensions, got "
                         f"shape {shape_of(m)}")
    return flip(m, 1)


def flipud(m):
    if ndim_of(m) < 1:
        raise ValueError("gnp.flipud: needs an array of at least 1 dimension")
    return flip(m, 0)


def rot90(m, k=1, axes=(0, 1)):
    """m rotated by 90 degrees k times in the plane `axes` (NumPy's direction)."""
    n = ndim_of(m)
    a0, a1 = (_one_axis("rot90", a, n) for a in axes)
    if a0 == a1:
        raise ValueError(f"gnp.rot90: axes {axes} must be two different axes")
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(m, (a0, a1))
    perm = list(range(n))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    return transpose(flip(m, a1), perm) if k == 1 else flip(transpose(m, perm), a1)


def along(axis, index):
    """An index that applies `index` to one axis."""
    return (slice(None),) * axis + (index,)


def flip(x, axis=None):
    """x reversed along `axis` (an int, a tuple, or None for every axis): a view."""
    n = ndim_of(x)
    axes = range(n) if axis is None else normalize_axis("flip", axis, n)
    if not axes:
        return x
    return getitem(x, tuple(slice(None, None, -1) if i in axes else slice(None)
                            for i in range(n)))


def roll(x, shift, axis=None):
    """x shifted cyclically by `shift` places (ints, or tuples paired with
    `axis`); axis None rolls the flattened array and restores the shape."""
    if axis is None:
        return reshape(roll(ravel(x), shift, 0), shape_of(x))
    shifts, axes = np.broadcast_arrays(np.atleast_1d(np.asarray(shift, dtype=np.int64)),
                                       np.atleast_1d(np.asarray(axis, dtype=np.int64)))
    total = {}
    for s, a in zip(shifts.tolist(), axes.tolist()):
        a = _one_axis("roll", a, ndim_of(x))
        total[a] = total.get(a, 0) + s
    for a, s in total.items():
        n = shape_of(x)[a]
        if n and s % n:
            cut = n - s % n
            x = concatenate([getitem(x, along(a, slice(cut, None))),
                             getitem(x, along(a, slice(0, cut)))], axis=a)
    return x


def _pad_aval(x, pad_width, constant_values):
    return ShapedArray(tuple(d + b + a for d, (b, a) in zip(shape_of(x), pad_width)),
                       dtype_of(x))


pad_p = Primitive(
    "pad", lambda xp, x, pad_width, constant_values: xp.pad(
        x, pad_width, mode="constant", constant_values=constant_values),
    _pad_aval,
    vjp=(lambda g, out, x, pad_width, constant_values: getitem(
        g, tuple(slice(b, b + d) for d, (b, _) in zip(shape_of(x), pad_width))),),
    # the fill value is a constant: the tangent is padded with zeros
    jvp=lambda ts, out, x, pad_width, constant_values: bind(
        pad_p, (ts[0],), {"pad_width": pad_width, "constant_values": 0}),
    batch=lambda prim, vals, dims, pad_width, constant_values: (bind(
        prim, (moveaxis0(vals[0], dims[0]),),
        {"pad_width": ((0, 0),) + pad_width, "constant_values": constant_values}), 0))


def pad(array, pad_width, mode="constant", constant_values=0):
    """NumPy's pad in mode "constant" with one scalar fill value; pad_width
    is an int, (before, after), or one pair per axis.  The gradient is the
    slice of the cotangent where `array` sits."""
    if mode != "constant":
        raise NotImplementedError(f"gnp.pad: mode {mode!r} is not supported, only "
                                  f"'constant'; build other modes from gnp.concatenate "
                                  f"of slices")
    if isinstance(constant_values, Tracer) or np.ndim(constant_values) != 0:
        raise TypeError(f"gnp.pad: constant_values must be one number (it is not "
                        f"differentiated), got {type(constant_values).__name__}")
    widths = np.asarray(pad_width)
    n = ndim_of(array)
    try:
        if widths.dtype.kind not in "iu":
            raise TypeError
        widths = np.broadcast_to(widths, (n, 2))
    except (TypeError, ValueError):
        raise ValueError(f"gnp.pad: pad_width {pad_width!r} is not an int, a pair "
                         f"(before, after) or one pair per axis of an array of shape "
                         f"{shape_of(array)}") from None
    if (widths < 0).any():
        raise ValueError(f"gnp.pad: pad widths must be non-negative, got {pad_width!r}")
    pairs = tuple((int(b), int(a)) for b, a in widths)
    if not any(b or a for b, a in pairs):
        return array
    value = constant_values.item() if hasattr(constant_values, "item") else constant_values
    return bind(pad_p, (array,), {"pad_width": pairs, "constant_values": value})


def array_split(x, indices_or_sections, axis=0):
    """A list of slices of x along `axis`: into n parts (the first ones one
    longer when n does not divide the length), or at the given indices."""
    axis = _one_axis("array_split", axis, ndim_of(x))
    length = shape_of(x)[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        parts = int(indices_or_sections)
        if parts <= 0:
            raise ValueError(f"gnp.array_split: the number of sections must be "
                             f"positive, got {parts}")
        q, r = divmod(length, parts)
        cuts = [k * q + min(k, r) for k in range(1, parts)]
    else:
        cuts = [int(c) for c in indices_or_sections]
    starts, stops = [0] + cuts, cuts + [None]
    return [getitem(x, along(axis, slice(a, b))) for a, b in zip(starts, stops)]


def split(x, indices_or_sections, axis=0):
    """array_split, requiring n equal parts when given a number of sections."""
    if isinstance(indices_or_sections, (int, np.integer)):
        length = shape_of(x)[_one_axis("split", axis, ndim_of(x))]
        if indices_or_sections <= 0 or length % indices_or_sections:
            raise ValueError(f"gnp.split: an axis of length {length} does not split "
                             f"into {indices_or_sections} equal parts; use "
                             f"gnp.array_split for unequal parts")
    return array_split(x, indices_or_sections, axis)


def take(a, indices, axis=None):
    """a[..., indices, ...] along `axis` (the flattened array for None): a
    gather, whose repeated indices sum their cotangents."""
    if axis is None:
        a, axis = ravel(a), 0
    return getitem(a, along(_one_axis("take", axis, ndim_of(a)), indices))


def diagonal(x, offset=0, axis1=0, axis2=1):
    """The diagonal of the planes (axis1, axis2), as a last axis (NumPy's
    order): a strided slice of the plane flattened, so its gradient is a
    scatter into zeros."""
    n = ndim_of(x)
    if n < 2:
        raise ValueError(f"gnp.diagonal: needs an array of at least two dimensions, "
                         f"got shape {shape_of(x)}")
    a1, a2 = _one_axis("diagonal", axis1, n), _one_axis("diagonal", axis2, n)
    if a1 == a2:
        raise ValueError(f"gnp.diagonal: axis1 and axis2 are both {a1}; they must differ")
    x = transpose(x, [a for a in range(n) if a not in (a1, a2)] + [a1, a2])
    *rest, rows, cols = shape_of(x)
    offset = int(offset)
    length = max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))
    start = offset if offset >= 0 else -offset * cols     # the flat index of entry 0
    stop = start + (length - 1) * (cols + 1) + 1 if length else start
    flat = reshape(x, tuple(rest) + (rows * cols,))
    return getitem(flat, (Ellipsis, slice(start, stop, cols + 1)))


def diag(v, k=0):
    """The k-th diagonal of a 2-D v, or a square matrix with 1-D v on its k-th
    diagonal (a scatter into zeros, whose gradient is the gather back)."""
    k = int(k)
    if ndim_of(v) == 2:
        return diagonal(v, k)
    if ndim_of(v) != 1:
        raise ValueError(f"gnp.diag: needs a 1-D or 2-D array, got shape {shape_of(v)}")
    n = shape_of(v)[0]
    m = n + abs(k)
    rows = np.arange(n) + max(-k, 0)
    index = (backend.asarray(rows), backend.asarray(rows + k))
    return bind(scatter_add_p, (v, *index), {"spec": (ARRAY, ARRAY), "shape": (m, m)})


def diagflat(v, k=0):
    return diag(ravel(v), k)


def _triangle(name, x, k, upper):
    s = shape_of(x)
    if not s:
        raise ValueError(f"gnp.{name}: needs an array of at least one dimension")
    rows, cols = s[-2:] if len(s) > 1 else (s[-1], s[-1])
    lower = np.tri(rows, cols, int(k) - 1 if upper else int(k), dtype=bool)
    mask = backend.asarray(~lower if upper else lower)
    # a masked select, not a product: inf and nan above the diagonal give 0
    return ew.where(mask, x, False if dtype_of(x) == np.bool_ else 0)


def tril(x, k=0):
    """x with the entries above the k-th diagonal set to 0 (the last two axes;
    a 1-D x is taken as the rows of a square matrix, as in NumPy)."""
    return _triangle("tril", x, k, upper=False)


def triu(x, k=0):
    """x with the entries below the k-th diagonal set to 0."""
    return _triangle("triu", x, k, upper=True)
