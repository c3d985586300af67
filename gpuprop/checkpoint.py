"""Checkpoints: pytrees of arrays and JSON metadata in one .npz file, written
atomically (a temporary file, flushed to disk, then renamed over the old
one), so a crash mid-write leaves the previous checkpoint loadable."""
import json
import os

import numpy as np

from .devices import device_put, to_numpy
from .tree import tree_flatten, tree_unflatten

CHECKPOINT_NAME = "checkpoint.npz"
_FORMAT = 1


def save_checkpoint(path, trees, metadata):
    """Write the pytrees `trees` ({name: pytree}) as host arrays and
    `metadata` (JSON-able) to `path` (an .npz file), atomically: into a
    temporary file beside it, flushed to disk, then renamed over `path`, so
    a crash leaves either the old checkpoint or the new one."""
    arrays, shapes = {}, {}
    for name, tree in trees.items():
        leaves, td = tree_flatten(to_numpy(tree))
        shapes[name] = str(td)
        for i, leaf in enumerate(leaves):
            arrays[f"{name}/{i}"] = np.asarray(leaf)
    meta = dict(metadata, format=_FORMAT, trees=shapes)
    arrays["__metadata__"] = np.array(json.dumps(meta))
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_dir(d):
    """Make the rename itself durable (POSIX); a no-op where unsupported."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path, like):
    """(trees, metadata) from `path`; `like` ({name: pytree}) gives each
    tree's structure, shapes and dtypes, which the checkpoint must match.
    Arrays are placed on the active device.  Trees absent from the file
    are absent from the result."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = {k: z[k] for k in z.files}
        meta = json.loads(str(stored.pop("__metadata__")[()]))
    except FileNotFoundError:
        raise
    except Exception as e:      # a zip, npy or JSON error: the file is damaged
        raise ValueError(f"load_checkpoint: {path} is not a readable gpuprop checkpoint "
                         f"({type(e).__name__}: {e}); delete it or resume from another "
                         f"checkpoint directory") from e
    if meta.get("format") != _FORMAT:
        raise ValueError(f"load_checkpoint: {path} has format {meta.get('format')!r}, this "
                         f"version of gpuprop reads format {_FORMAT}")
    trees = {}
    for name, template in like.items():
        if name not in meta["trees"]:
            continue
        leaves, td = tree_flatten(template)
        got = [stored.get(f"{name}/{i}") for i in range(len(leaves))]
        if f"{name}/{len(leaves)}" in stored or any(g is None for g in got):
            raise ValueError(f"load_checkpoint: {path} holds a {name} of structure "
                             f"{meta['trees'][name]}, expected {td}: it was written for "
                             f"another model or optimizer; start without resume or use "
                             f"another checkpoint directory")
        for i, (g, t) in enumerate(zip(got, leaves)):
            if g.shape != tuple(t.shape) or g.dtype != t.dtype:
                raise ValueError(f"load_checkpoint: {path}: {name} leaf {i} has "
                                 f"{g.dtype}{list(g.shape)}, the current model expects "
                                 f"{np.dtype(t.dtype)}{list(t.shape)}: the checkpoint "
                                 f"was written for another model or optimizer")
        trees[name] = device_put(tree_unflatten(td, got))
    return trees, meta
