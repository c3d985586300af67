"""Shape/dtype rules shared by the primitive families."""
import numpy as np

from ..backend import PY_SCALARS
from ..core import ShapedArray, dtype_of, shape_of, short_dtype  # noqa: F401 (dtype_of: for the families)


def describe(x):
    """'f32[2,3]' for arrays and abstract values, the value for Python scalars."""
    if isinstance(x, ShapedArray):
        return str(x)
    if type(x) in PY_SCALARS:
        return repr(x)
    return f"{short_dtype(x.dtype)}[{','.join(map(str, x.shape))}]"


def broadcast_shapes(name, *avals):
    shapes = [a.shape for a in avals if isinstance(a, ShapedArray)]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"gnp.{name}: operands could not be broadcast together: shapes "
            f"{' and '.join(map(str, shapes))}; trailing dimensions must be "
            f"equal or 1 (reshape or add an axis, e.g. x[:, None])") from None


def dummy(a):
    """A 0-d stand-in with the dtype of abstract value `a` (scalars stay)."""
    return np.zeros((), a.dtype) if isinstance(a, ShapedArray) else a


def elementwise_aval(name, impl):
    """The rule of an elementwise primitive: broadcast the shapes; the dtype
    is what NumPy itself gives for 0-d stand-ins (weak Python scalars included)."""
    def rule(*avals, **params):
        shape = broadcast_shapes(name, *avals)
        with np.errstate(all="ignore"):
            dtype = np.result_type(impl(np, *map(dummy, avals), **params))
        return ShapedArray(shape, dtype)
    return rule


def ndim_of(x):
    return len(getattr(x, "shape", ()))


def normalize_axis(name, axis, ndim):
    """None, or a sorted tuple of non-negative axes; errors name the call."""
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 0) or ndim == 0:
            raise ValueError(f"gnp.{name}: axis {a} is out of bounds for an "
                             f"array of {ndim} dimension(s)")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"gnp.{name}: repeated axis in {axis}")
    return tuple(sorted(out))
