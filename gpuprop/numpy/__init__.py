"""gpuprop.numpy: differentiable array functions under NumPy's names.

    import gpuprop.numpy as gnp

Called on plain arrays with no transform active they just compute on the
active backend; inside grad/jit they are seen and differentiated/staged.
This module also gives tracers their Python operators and routes NumPy
functions called on a tracer (np.exp(t)) to the functions here.
"""
import numpy as _np

from ..core import Tracer as _Tracer
from .elementwise import (
    add, subtract, multiply, divide, true_divide, negative, power, exp, log, log1p,
    expm1, sqrt, square, reciprocal, sin, cos, tanh, logistic, sigmoid, abs, absolute,
    sign, maximum, minimum, clip, astype, stop_gradient, greater,
    greater_equal, less, less_equal, equal, not_equal, logical_and, logical_or,
    logical_not, isfinite, isnan, tan, arcsin, arccos, arctan, arctan2, sinh, cosh,
    arcsinh, arccosh, arctanh, log2, log10, exp2, hypot, floor, ceil, rint, round,
    around, asin, acos, atan, atan2, asinh, acosh, atanh, remainder, mod, fmod, floor_divide,
    divmod, fmax, fmin, fabs, sinc, deg2rad, radians, rad2deg, degrees, nan_to_num, heaviside,
    copysign, trunc, signbit, bitwise_and, bitwise_or, bitwise_xor, left_shift,
    right_shift, bitwise_left_shift, bitwise_right_shift, nextafter, bitcast, invert,
    bitwise_not, real, imag, conj, conjugate, angle, iscomplex, isreal, iscomplexobj, isrealobj)
from .reductions import (sum, prod, cumsum, cumprod, mean, max, min, var, std, argmax, argmin,
                         diff, gradient, trapezoid)
from .shape import (reshape, transpose, broadcast_to, swapaxes, moveaxis, squeeze,
                    expand_dims, ravel, getitem, concatenate, stack, flip, roll, pad,
                    split, array_split, take, diagonal, triu, tril, rollaxis, atleast_1d,
                    atleast_2d, atleast_3d, hstack, vstack, dstack, column_stack, row_stack,
                    append, repeat, tile, hsplit, vsplit, dsplit, fliplr, flipud, rot90, diag,
                    diagflat)
from .products import (matmul, dot, inner, vdot, outer, kron, cross, tensordot, einsum, trace,
                       convolve, correlate)
from . import linalg, fft
from .composites import (logsumexp, logaddexp, logaddexp2, softmax, log_softmax, relu, softplus,
                         real_if_close)
from .selection import (argsort, sort, take_along_axis, partition, argpartition, quantile,
                        percentile, median, nansum, nanprod, nanmean, nanvar, nanstd, nanmax,
                        nanmin, nanargmax, nanargmin, select, nonzero, where, unique, at)
from . import creation
from .creation import (
    asarray, array, zeros, ones, full, zeros_like, ones_like, full_like, arange,
    linspace, logspace, eye, shape, ndim, size, r_, c_, float32, float64, int32, int64, uint32, uint64,
    complex64, complex128, bool_, pi, e,
    inf, nan, newaxis)

amax, amin = max, min


def _swap(f):
    return lambda self, other: f(other, self)


def _install_tracer_methods():
    T = _Tracer
    # & | ^ ~ are NumPy's bitwise operators (on bool arrays: logical)
    for name, f in [("add", add), ("sub", subtract), ("mul", multiply),
                    ("truediv", divide), ("pow", power), ("matmul", matmul),
                    ("mod", remainder), ("floordiv", floor_divide), ("divmod", divmod),
                    ("and", bitwise_and), ("or", bitwise_or), ("xor", bitwise_xor),
                    ("lshift", left_shift), ("rshift", right_shift)]:
        setattr(T, f"__{name}__", f)
        setattr(T, f"__r{name}__", _swap(f))
    for name, f in [("lt", less), ("le", less_equal), ("gt", greater),
                    ("ge", greater_equal), ("eq", equal), ("ne", not_equal)]:
        setattr(T, f"__{name}__", f)
    T.__neg__ = negative
    T.__pos__ = lambda self: self
    T.__abs__ = abs
    T.__invert__ = invert
    T.__getitem__ = getitem
    T.__setitem__ = _setitem
    T.at = property(at)
    T.T = property(lambda self: transpose(self))
    T.reshape = lambda self, *shape: reshape(
        self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)
    T.transpose = lambda self, *axes: transpose(self, axes or None)
    for name, f in [("sum", sum), ("mean", mean), ("max", max), ("min", min),
                    ("var", var), ("std", std), ("argmax", argmax), ("argmin", argmin),
                    ("prod", prod), ("cumsum", cumsum), ("round", round),
                    ("diagonal", diagonal), ("trace", trace), ("take", take),
                    ("sort", sort), ("argsort", argsort), ("cumprod", cumprod)]:
        setattr(T, name, f)
    T.astype = astype
    T.squeeze = squeeze
    T.ravel = T.flatten = ravel
    T.mT = property(lambda self: swapaxes(self, -1, -2))
    T.swapaxes = swapaxes
    T.repeat = repeat
    T.clip = clip
    T.real = property(real)
    T.imag = property(imag)
    T.conj = T.conjugate = conj
    T.__array_ufunc__ = _array_ufunc
    T.__array_function__ = _array_function


def _setitem(self, index, value):
    raise TypeError(f"a gpuprop traced value ({self.aval}) cannot be assigned to in place "
                    f"(t[{index!r}] = ...): arrays inside grad/jit are immutable. Use the "
                    f"functional update t = t.at[{index!r}].set(value) (also .add, .multiply, "
                    f".min, .max), as in JAX")


def _unsupported(what):
    return TypeError(f"{what} was applied to a gpuprop tracer and has no gpuprop "
                     f"equivalent; inside grad/jit use `gpuprop.numpy` (import "
                     f"gpuprop.numpy as gnp), whose functions are differentiable")


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """np.exp(t), ndarray * t, ...: use the gpuprop function of the same name."""
    f = globals().get(ufunc.__name__)
    if method != "__call__" or kwargs or not callable(f):
        raise _unsupported(f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}"))
    return f(*inputs)


def _array_function(self, func, types, args, kwargs):
    # np.fft.fft(t) -> gnp.fft.fft; others by their name here
    space = vars(fft) if func.__module__ == "numpy.fft" else globals()
    f = space.get(func.__name__)
    # only the differentiable functions: creation functions would call NumPy again
    if not callable(f) or getattr(f, "__module__", "") in ("", creation.__name__) \
            or not f.__module__.startswith("gpuprop."):
        raise _unsupported(f"numpy.{func.__name__}")
    return f(*args, **kwargs)


_install_tracer_methods()
