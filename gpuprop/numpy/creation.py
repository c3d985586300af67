"""Array creation on the active backend.  These make constants: nothing to
differentiate, so they return plain backend arrays."""
import numpy as np

from .. import backend
from ..core import Tracer, size_of
from ._rules import dtype_of, shape_of
from ._base import ones_like, zeros_like  # noqa: F401  (public here)
from . import elementwise as ew
from .elementwise import astype
from . import shape as sh

float32, float64 = np.float32, np.float64
int32, int64, bool_ = np.int32, np.int64, np.bool_
uint32, uint64 = np.uint32, np.uint64
complex64, complex128 = np.complex64, np.complex128
pi, e, inf, nan, newaxis = np.pi, np.e, np.inf, np.nan, None


def _xp():
    return backend.current().xp


def asarray(x, dtype=None):
    """An array of the active backend; a traced value passes through, and
    (nested) lists and tuples holding traced values are stacked, so
    gnp.array([x, x ** 2]) is differentiable."""
    if isinstance(x, (list, tuple)) and _holds_tracer(x):
        x = sh.stack([asarray(e) for e in x])
    if isinstance(x, Tracer):
        return x if dtype is None else astype(x, dtype)
    return backend.asarray(x, dtype)


def _holds_tracer(x):
    return isinstance(x, Tracer) or (isinstance(x, (list, tuple)) and any(map(_holds_tracer, x)))


class _AxisConcatenator:
    """gnp.r_ and gnp.c_: NumPy's index tricks, with traced values allowed.
    Items are arrays, numbers and slices (constants: arange, or linspace for
    a complex step); a leading string "axis[,ndmin[,trans1d]]" overrides the
    defaults.  The result is a concatenate, so it is differentiable."""

    def __init__(self, name, axis, ndmin, trans1d):
        self.name, self.axis, self.ndmin, self.trans1d = name, axis, ndmin, trans1d

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        if key and isinstance(key[0], str):
            try:
                axis, ndmin, trans1d = (list(map(int, key[0].split(","))) + [ndmin, trans1d][
                    len(key[0].split(",")) - 1:])[:3]
            except ValueError:
                raise ValueError(f"gnp.{self.name}: directive {key[0]!r} is not supported; "
                                 f"use 'axis[,ndmin[,trans1d]]' (no matrix 'r'/'c')") from None
            key = key[1:]
        items = []
        for k in key:
            a = backend.asarray(np.r_[k]) if isinstance(k, slice) else asarray(k)
            n = len(shape_of(a))
            target = max(ndmin, 1)
            if n < target:
                a = sh.reshape(a, (1,) * (target - n) + shape_of(a))
                if trans1d != -1 and n > 0:     # NumPy's placement of the original axes
                    k2, k1 = target - n, trans1d if trans1d >= 0 else trans1d + target - n + 1
                    axes = list(range(target))
                    a = sh.transpose(a, axes[:k1] + axes[k2:] + axes[k1:k2])
            items.append(a)
        return sh.concatenate(items, axis=axis)


r_ = _AxisConcatenator("r_", 0, 1, -1)
c_ = _AxisConcatenator("c_", -1, 2, 0)


array = asarray


def zeros(shape, dtype=np.float32):
    return _xp().zeros(shape, dtype)


def ones(shape, dtype=np.float32):
    return _xp().ones(shape, dtype)


def full(shape, fill_value, dtype=np.float32):
    return _xp().full(shape, fill_value, dtype)


def full_like(x, fill_value, dtype=None):
    return full(shape_of(x), fill_value, dtype or dtype_of(x))


def arange(*args, dtype=None):
    return _xp().arange(*args, dtype=dtype)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """`num` evenly spaced values from start to stop, of `dtype`, else of the
    endpoints' floating dtype (float32 for Python numbers).  Traced endpoints
    (arrays too) give a differentiable start + (stop - start) * t, ending at
    stop exactly."""
    dt = _endpoint_dtype(start, stop, dtype)
    if not (isinstance(start, Tracer) or isinstance(stop, Tracer)):
        return _xp().linspace(start, stop, num, endpoint=endpoint, retstep=retstep,
                              dtype=dt, axis=axis)
    num, div = int(num), int(num) - 1 if endpoint else int(num)
    span = ew.subtract(stop, start)
    lead = len(np.broadcast_shapes(shape_of(start), shape_of(stop)))
    t = backend.asarray((np.arange(num) / max(div, 1)).astype(dt).reshape((num,) + (1,) * lead))
    out = ew.add(start, ew.multiply(span, t))
    if endpoint and num > 1:
        end = sh.broadcast_to(stop, shape_of(out)[1:])
        out = sh.concatenate([sh.getitem(out, slice(0, num - 1)), sh.expand_dims(end, 0)])
    out = sh.moveaxis(out, 0, axis) if lead else out
    out = out if dtype_of(out) == dt else astype(out, dt)
    return (out, ew.divide(span, div)) if retstep else out


def _endpoint_dtype(start, stop, dtype):
    if dtype is not None:
        return np.dtype(dtype)
    arrays = [dtype_of(v) for v in (start, stop) if hasattr(v, "dtype")]
    return np.result_type(np.float32, *arrays)


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """base ** linspace(start, stop): differentiable in traced endpoints."""
    if not (isinstance(start, Tracer) or isinstance(stop, Tracer)):
        return _xp().logspace(start, stop, num, endpoint=endpoint, base=base,
                              dtype=_endpoint_dtype(start, stop, dtype), axis=axis)
    return ew.power(base, linspace(start, stop, num, endpoint, dtype=dtype, axis=axis))


def eye(n, m=None, dtype=np.float32):
    return _xp().eye(n, m, dtype=dtype)


def shape(x):
    return shape_of(x)


def ndim(x):
    return len(shape_of(x))


def size(x):
    return size_of(shape_of(x))
