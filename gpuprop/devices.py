"""Moving whole pytrees between the host and the active backend's device."""
from . import backend
from .core import Tracer
from .tree import tree_map


def asarray(x, dtype=None):
    """An array of the active backend (copied to its device if needed); a
    tracer (inside grad/jit) is already one and passes through."""
    if isinstance(x, Tracer):
        return x if dtype is None else x.astype(dtype)
    return backend.asarray(x, dtype)


def device_put(tree):
    """Every array leaf of `tree` moved to the active backend's device."""
    return tree_map(lambda x: asarray(x) if hasattr(x, "shape") else x, tree)


def to_numpy(tree):
    """Every array leaf of `tree` copied to the host as a numpy.ndarray."""
    return tree_map(backend.to_host, tree)
