"""Ordering and selection: sort, argsort (the one primitive here), partition,
quantile/percentile/median, the NaN-ignoring reductions, select, nonzero,
unique, and the functional index updates behind `x.at[idx]`.

sort is a gather of x by argsort(x), so its gradient goes back through the
permutation (on ties, to whichever equal entry the stable sort put there).
nonzero and unique have shapes that depend on the data: they need concrete
values (eager, or under grad), not jit."""
import numpy as np

from .. import backend
from ..core import Primitive, ShapedArray, Tracer, bind, size_of
from ._base import moveaxis0, ones_like
from ._rules import dtype_of, ndim_of, normalize_axis, shape_of
from . import elementwise as ew, reductions as red, shape as sh


def _argsort_impl(xp, x, axis):
    return xp.argsort(x, axis=axis, kind="stable")


argsort_p = Primitive("argsort", _argsort_impl,
                      lambda x, axis: ShapedArray(shape_of(x), np.intp),
                      batch=lambda prim, vals, dims, axis: (
                          bind(prim, (moveaxis0(vals[0], dims[0]),), {"axis": axis + 1}), 0))


def argsort(a, axis=-1, kind=None, stable=None):
    """Indices that sort `a` along `axis` (None: the flattened array); always
    stable.  Integers: not differentiable."""
    if axis is None:
        a, axis = sh.ravel(a), 0
    (axis,) = normalize_axis("argsort", int(axis), ndim_of(a))
    return bind(argsort_p, (a,), {"axis": axis})


def take_along_axis(arr, indices, axis):
    """arr's entries at `indices` along `axis` (NumPy's take_along_axis): a
    gather, whose gradient scatters back."""
    if axis is None:
        arr, axis = sh.ravel(arr), 0
    n = ndim_of(arr)
    (axis,) = normalize_axis("take_along_axis", int(axis), n)
    shape = np.broadcast_shapes(shape_of(arr)[:axis] + (1,) + shape_of(arr)[axis + 1:],
                                shape_of(indices)[:axis] + (1,) + shape_of(indices)[axis + 1:])
    index = []
    for k in range(n):
        if k == axis:
            index.append(sh.broadcast_to(indices, shape[:k] + shape_of(indices)[k:k + 1]
                                         + shape[k + 1:]))
        else:
            index.append(backend.asarray(np.arange(shape[k]).reshape(
                (1,) * k + (-1,) + (1,) * (n - k - 1))))
    return sh.getitem(arr, tuple(index))


def sort(a, axis=-1, kind=None, stable=None):
    """`a` sorted along `axis` (NaNs last, as NumPy): a gather by argsort."""
    if axis is None:
        a, axis = sh.ravel(a), 0
    return take_along_axis(a, argsort(a, axis), axis)


def partition(a, kth, axis=-1):
    """A full sort, which is one valid partition: entry kth is in its sorted
    place, smaller ones before it, larger after (NumPy leaves their order open)."""
    return sort(a, axis)


def argpartition(a, kth, axis=-1):
    return argsort(a, axis)


# ---- quantiles ---------------------------------------------------------------
def _to_last(name, a, axis):
    """a with the axes `axis` (None: all) merged into one last axis."""
    n = ndim_of(a)
    axes = tuple(range(n)) if axis is None else normalize_axis(name, axis, n)
    rest = [k for k in range(n) if k not in axes]
    moved = sh.transpose(a, rest + list(axes))
    merged = size_of([shape_of(a)[k] for k in axes])
    return sh.reshape(moved, tuple(shape_of(a)[k] for k in rest) + (merged,)), axes


def quantile(a, q, axis=None, keepdims=False, method="linear"):
    """NumPy's quantile with method 'linear': the sorted values interpolated
    at q * (n - 1); q may be traced (its derivative is the local slope).  The
    result has q's shape first, then the reduced shape; NaN if a holds one."""
    if method != "linear":
        raise NotImplementedError(f"gnp.quantile: method {method!r} is not supported, only "
                                  f"'linear'")
    flat, axes = _to_last("quantile", a, axis)
    n = shape_of(flat)[-1]
    if n == 0:
        raise ValueError(f"gnp.quantile: an empty axis of shape {shape_of(a)} has no quantile")
    s = sort(flat, -1)
    qs = q if isinstance(q, Tracer) else backend.asarray(q)
    pos = ew.multiply(qs, n - 1)
    lo = ew.astype(ew.clip(ew.floor(pos), 0, n - 1), np.intp)
    hi = ew.minimum(ew.add(lo, 1), n - 1)
    w = ew.subtract(pos, ew.astype(lo, dtype_of(pos)))
    qshape = shape_of(qs)
    lead = shape_of(s)[:-1]

    def at(i):      # s[..., i] for each q: shape q + lead
        picked = sh.getitem(s, (Ellipsis, sh.reshape(i, (-1,))))
        picked = sh.moveaxis(picked, -1, 0)
        return sh.reshape(picked, qshape + lead)
    wq = sh.reshape(w, qshape + (1,) * len(lead))
    out = ew.add(at(lo), ew.multiply(ew.subtract(at(hi), at(lo)), wq))
    out = ew.where(red.max(ew.isnan(flat), axis=-1), np.nan, out)  # NaN anywhere: NaN
    if keepdims:
        kept = tuple(1 if k in axes else d for k, d in enumerate(shape_of(a)))
        out = sh.reshape(out, qshape + kept)
    return out


def percentile(a, q, axis=None, keepdims=False, method="linear"):
    return quantile(a, ew.divide(q, 100.0) if isinstance(q, Tracer) else
                    np.asarray(q, np.float64) / 100, axis, keepdims, method)


def median(a, axis=None, keepdims=False):
    """The middle value (the mean of the two middle ones): at ties, the
    gradient goes to the equal entries the sort put in the middle."""
    return quantile(a, 0.5, axis, keepdims)


# ---- NaN-ignoring reductions ---------------------------------------------------
def _without_nan(a, fill):
    return ew.where(ew.isnan(a), fill, a)


def nansum(a, axis=None, keepdims=False):
    return red.sum(_without_nan(a, 0.0), axis, keepdims)


def nanprod(a, axis=None, keepdims=False):
    return red.prod(_without_nan(a, 1.0), axis, keepdims)


def _nancount(a, axis, keepdims):
    return red.sum(ew.logical_not(ew.isnan(a)), axis, keepdims)


def nanmean(a, axis=None, keepdims=False):
    """The mean of the entries that are not NaN (NaN where all are)."""
    return ew.divide(nansum(a, axis, keepdims), _nancount(a, axis, keepdims))


def nanvar(a, axis=None, keepdims=False, ddof=0):
    d = _without_nan(ew.subtract(a, nanmean(a, axis, keepdims=True)), 0.0)
    return ew.divide(red.sum(ew.multiply(d, d), axis, keepdims),
                     ew.subtract(_nancount(a, axis, keepdims), ddof))


def nanstd(a, axis=None, keepdims=False, ddof=0):
    return ew.sqrt(nanvar(a, axis, keepdims, ddof))


def _nan_extremum(name, reduce, fill):
    def f(a, axis=None, keepdims=False):
        out = reduce(_without_nan(a, fill), axis, keepdims)
        every = red.min(ew.isnan(a), axis, keepdims)    # all NaN: NaN, as NumPy
        return ew.where(every, np.nan, out)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"{reduce.__name__} ignoring NaNs (NaN where a slice is all NaN)."
    return f


nanmax = _nan_extremum("nanmax", red.max, -np.inf)
nanmin = _nan_extremum("nanmin", red.min, np.inf)


def nanargmax(a, axis=None):
    return red.argmax(_without_nan(a, -np.inf), axis)


def nanargmin(a, axis=None):
    return red.argmin(_without_nan(a, np.inf), axis)


# ---- selection -------------------------------------------------------------------
def select(condlist, choicelist, default=0):
    """The first choice whose condition holds, else `default` (nested where)."""
    if len(condlist) != len(choicelist):
        raise ValueError(f"gnp.select: {len(condlist)} conditions for {len(choicelist)} "
                         f"choices; give one condition per choice")
    out = default
    for c, x in reversed(list(zip(condlist, choicelist))):
        out = ew.where(c, x, out)
    return out


def _concrete(name, x):
    """The value behind x: eager arrays pass; a tracer must have one (grad
    does, jit does not: the shape of the result depends on it)."""
    if isinstance(x, Tracer):
        return x._concrete(f"gnp.{name} (its result's shape depends on the values)")
    return x if hasattr(x, "shape") else backend.asarray(x)


def nonzero(a):
    """The indices of the nonzero entries, one integer array per axis (not
    jittable: their length depends on the data)."""
    return tuple(backend.current().xp.nonzero(_concrete("nonzero", a)))


def where(condition, x=None, y=None):
    if x is None and y is None:
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError("gnp.where: give both x and y, or neither")
    return ew.where(condition, x, y)


where.__doc__ = ew.where.__doc__ + """

    With one argument, where(condition) is nonzero(condition) (not jittable)."""


def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None):
    """The sorted unique values (a gather of their first occurrences, so
    differentiable: each gets the gradient of its first occurrence), and
    NumPy's optional integer outputs.  Not jittable."""
    found = backend.current().xp.unique(_concrete("unique", ar), return_index=True,
                                        return_inverse=return_inverse,
                                        return_counts=return_counts, axis=axis)
    index = found[1]
    values = sh.take(ar, index, axis=axis) if axis is not None else sh.take(ar, index)
    extra = ((index,) if return_index else ()) + tuple(found[2:])
    return (values,) + extra if extra else values


# ---- index updates: x.at[idx] --------------------------------------------------------
def _fold_runs(op, v, pos):
    """op folded over each run of equal positions (consecutive in sorted
    order), read at the run's last entry: a log-depth segmented scan (Hillis
    and Steele) in which entry i takes entry i - s when both are in one run."""
    k, s = shape_of(v)[0], 1
    while s < k:
        same = ew.equal(sh.getitem(pos, slice(s, None)), sh.getitem(pos, slice(0, k - s)))
        later = sh.getitem(v, slice(s, None))
        folded = ew.where(same, op(sh.getitem(v, slice(0, k - s)), later), later)
        v = sh.concatenate([sh.getitem(v, slice(0, s)), folded])
        s *= 2
    return v


class _IndexUpdate:
    """x.at[idx]: .set/.add/.multiply/.min/.max/.get, JAX's functional
    updates, differentiable in x and in the values.  Repeated indices
    combine: add sums, multiply multiplies, min/max take the extreme, and set
    keeps the last value given (in C order of the index)."""

    def __init__(self, x, index):
        self.x, self.index = x, index

    def get(self):
        return sh.getitem(self.x, self.index)

    def set(self, values):
        return self._update("set", values)

    def add(self, values):
        return self._update("add", values)

    def multiply(self, values):
        return self._update("multiply", values)

    def min(self, values):
        return self._update("min", values)

    def max(self, values):
        return self._update("max", values)

    def _update(self, mode, values):
        x = self.x
        spec, arrays = sh.index_spec(self.index)
        selected = sh.getitem_p.abstract_eval(ShapedArray(shape_of(x), dtype_of(x)),
                                              *[ShapedArray(shape_of(a), dtype_of(a))
                                                for a in arrays], spec=spec).shape
        try:
            np.broadcast_shapes(shape_of(values), selected)
        except ValueError:
            raise ValueError(f"x.at[...].{mode}: values of shape {shape_of(values)} do not "
                             f"broadcast to the selected shape {selected} of x "
                             f"{shape_of(x)}") from None
        v = sh.broadcast_to(ew.astype(values, dtype_of(x)) if dtype_of(values) != dtype_of(x)
                            else values, selected)
        if mode == "add":
            return ew.add(x, bind(sh.scatter_add_p, (v, *arrays),
                                  {"spec": spec, "shape": shape_of(x)}))
        # the flat position of each selected entry (constants unless the index is traced)
        iota = backend.asarray(np.arange(size_of(shape_of(x))).reshape(shape_of(x)))
        pos = sh.ravel(sh.getitem(iota, self.index))
        v = sh.ravel(v)
        k = size_of(selected)
        if arrays and k > 1:     # repeated positions are possible: combine each run
            order = argsort(pos)
            pos, v = sh.getitem(pos, order), sh.getitem(v, order)
            if mode != "set":   # set keeps the last value (the sort is stable)
                v = _fold_runs({"multiply": ew.multiply, "min": ew.minimum,
                                "max": ew.maximum}[mode], v, pos)
            last = sh.concatenate([ew.not_equal(sh.getitem(pos, slice(1, None)),
                                                sh.getitem(pos, slice(0, k - 1))),
                                   backend.asarray(np.ones(1, bool))])
            v = ew.where(last, v, 0)
        flat_shape = {"spec": (sh.ARRAY,), "shape": (size_of(shape_of(x)),)}
        hit = bind(sh.scatter_add_p, (ones_like(pos, np.int32), pos), flat_shape)
        scattered = bind(sh.scatter_add_p, (v, pos), flat_shape)
        hit = ew.greater(sh.reshape(hit, shape_of(x)), 0)
        new = sh.reshape(scattered, shape_of(x))
        new = {"set": lambda: new, "multiply": lambda: ew.multiply(x, new),
               "min": lambda: ew.minimum(x, new), "max": lambda: ew.maximum(x, new)}[mode]()
        return ew.where(hit, new, x)


class _At:
    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __getitem__(self, index):
        return _IndexUpdate(self.x, index)


def at(x):
    """x.at (a tracer's property; gnp.at(x) for any array): x.at[idx].set(v)..."""
    return _At(x)
