"""gpuprop.numpy.linalg: NumPy's linear-algebra names, and only those.  The
matrix products live in products.py, the decompositions and what is built
on them in decompositions.py."""
from . import products as _products
from .products import matmul, outer, tensordot  # noqa: F401
from .decompositions import (  # noqa: F401
    cholesky, cond, det, eigh, eigvalsh, inv, lstsq, matrix_power, matrix_rank, norm, pinv,
    qr, slogdet, solve, svd, svdvals)


def trace(x, /, *, offset=0):
    """NumPy 2's linalg.trace: over the last two axes (gnp.trace takes axes 0, 1)."""
    return _products.trace(x, offset, -2, -1)
