"""Moving whole pytrees between the host and the active backend's device."""
from . import backend
from .numpy.creation import asarray
from .tree import tree_map


def device_put(tree):
    """Every array leaf of `tree` moved to the active backend's device."""
    return tree_map(lambda x: asarray(x) if hasattr(x, "shape") else x, tree)


def to_numpy(tree):
    """Every array leaf of `tree` copied to the host as a numpy.ndarray."""
    return tree_map(backend.to_host, tree)
