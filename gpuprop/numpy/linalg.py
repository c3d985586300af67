"""Matrix products: matmul with NumPy's rules for 1-D operands and batch
broadcasting; dot, inner, outer built on it."""
import numpy as np

from ..core import Primitive, ShapedArray, bind
from ._rules import broadcast_shapes, dtype_of, ndim_of, shape_of
from . import elementwise as ew, reductions, shape as sh


def _matmul_aval(a, b):
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        raise ValueError(f"gnp.matmul: operands must have at least one dimension, "
                         f"got shapes {sa} and {sb}; use gnp.multiply for scalars")
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise ValueError(f"gnp.matmul: contracted dimensions differ: shapes {sa} and "
                         f"{sb} ({ka} != {kb}); the last axis of the first operand "
                         f"must match the {'only' if len(sb) == 1 else 'second-to-last'} "
                         f"axis of the second")
    batch = broadcast_shapes("matmul", ShapedArray(sa[:-2], "f"), ShapedArray(sb[:-2], "f"))
    shape = batch + (sa[-2:-1] if len(sa) > 1 else ()) + (sb[-1:] if len(sb) > 1 else ())
    return ShapedArray(shape, np.result_type(dtype_of(a), dtype_of(b)))


def _as_matrices(g, a, b):
    """Promote 1-D operands (and the cotangent) to matrices, as matmul does."""
    A = sh.expand_dims(a, 0) if ndim_of(a) == 1 else a
    B = sh.expand_dims(b, -1) if ndim_of(b) == 1 else b
    if ndim_of(b) == 1:     # b first: for vector @ vector, g is 0-d
        g = sh.expand_dims(g, -1)
    if ndim_of(a) == 1:
        g = sh.expand_dims(g, -2)
    return g, A, B


def _matmul_da(g, out, a, b):
    g, A, B = _as_matrices(g, a, b)
    dA = reductions.sum_to_shape(matmul(g, sh.swapaxes(B, -1, -2)), shape_of(A))
    return sh.reshape(dA, shape_of(a))


def _matmul_db(g, out, a, b):
    g, A, B = _as_matrices(g, a, b)
    dB = reductions.sum_to_shape(matmul(sh.swapaxes(A, -1, -2), g), shape_of(B))
    return sh.reshape(dB, shape_of(b))


matmul_p = Primitive("matmul", lambda xp, a, b: xp.matmul(a, b), _matmul_aval,
                     vjp=(_matmul_da, _matmul_db))


def matmul(a, b):
    return bind(matmul_p, (a, b), {})


def dot(a, b):
    """NumPy's dot for operands of at most two dimensions."""
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return ew.multiply(a, b)
    if ndim_of(a) > 2 or ndim_of(b) > 2:
        raise TypeError(f"gnp.dot: operands of shapes {shape_of(a)} and {shape_of(b)}; "
                        f"dot of arrays with more than two dimensions is not supported "
                        f"(it is not matmul): use gpuprop.numpy.matmul for batched products")
    return matmul(a, b)


def outer(a, b):
    return matmul(sh.reshape(a, (-1, 1)), sh.reshape(b, (1, -1)))
