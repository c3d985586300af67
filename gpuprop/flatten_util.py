"""ravel_pytree: a pytree of arrays as one vector, and back (JAX's name)."""
import numpy as np

from .core import shape_of
from .numpy import creation
from .numpy.elementwise import astype
from .numpy.shape import concatenate, getitem, reshape
from .numpy._rules import dtype_of
from .tree import tree_flatten, tree_unflatten


def ravel_pytree(tree):
    """(flat, unravel): the leaves of `tree` flattened and concatenated in
    tree_flatten's order into one 1-D array of their common dtype, and the
    function that rebuilds a tree of the same structure, shapes and dtypes
    from such a vector.  Both directions are differentiable and jittable."""
    leaves, treedef = tree_flatten(tree)
    leaves = [x if hasattr(x, "shape") else creation.asarray(x) for x in leaves]
    shapes = [shape_of(x) for x in leaves]
    dtypes = [np.dtype(dtype_of(x)) for x in leaves]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    dtype = np.result_type(*dtypes) if leaves else np.dtype(np.float64)
    if leaves:
        flat = concatenate([reshape(x if d == dtype else astype(x, dtype), (-1,))
                            for x, d in zip(leaves, dtypes)])
    else:
        flat = creation.zeros((0,), dtype)
    total = sum(sizes)

    def unravel(vector):
        if shape_of(vector) != (total,):
            raise ValueError(f"ravel_pytree's unravel: expected a vector of shape "
                             f"({total},) for the structure {treedef}, got shape "
                             f"{shape_of(vector)}")
        parts, start = [], 0
        for shape, size, d in zip(shapes, sizes, dtypes):
            part = reshape(getitem(vector, slice(start, start + size)), shape)
            parts.append(part if dtype_of(part) == d else astype(part, d))
            start += size
        return tree_unflatten(treedef, parts)

    return flat, unravel
