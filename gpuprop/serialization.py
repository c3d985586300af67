"""Saving arrays to disk: `save`/`load` for any pytree of arrays, the
Trainer's checkpoints, and the lock that keeps two runs out of one
checkpoint directory.

    gp.save("model.npz", params)            # a list of {"W", "b"} dicts
    params = gp.load("model.npz")           # on the active device

Both formats are an .npz file (np.savez, never pickle): the arrays, plus
one JSON entry for the tree's structure and metadata.  Every write goes to
a temporary file beside the target, is flushed to disk and renamed over
it, so a crash leaves the old file or the new one, never half of one.
"""
import json
import os

import numpy as np

from . import backend
from .devices import device_put, to_numpy
from .tree import tree_flatten, tree_unflatten

CHECKPOINT_NAME = "checkpoint.npz"
LOCK_NAME = "lock"
_FORMAT = 1
_SAVE_KEY = "__gpuprop__"           # the JSON entry of a gp.save file
_CHECKPOINT_KEY = "__metadata__"    # the JSON entry of a checkpoint


class FileFormatError(ValueError):
    """A file that is not what the reader expects: damaged, or foreign."""


class NonFiniteValueError(FileFormatError):
    """A loaded array holds NaN or infinity: the run that wrote it diverged."""


class DirectoryLockedError(RuntimeError):
    """Another live process holds the lock on a checkpoint directory."""


# ---- atomic writes and safe reads ---------------------------------------------
def write_npz(path, arrays):
    """np.savez(path, **arrays) atomically: into a temporary file beside
    `path`, flushed to disk, then renamed over it."""
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


def _read_npz(who, path, key, what):
    """(arrays, the JSON entry `key`) of an .npz file; FileFormatError when
    it is damaged or lacks the entry (written by something else)."""
    path = os.fspath(path)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise FileFormatError(f"{who}: {path} is not a {what}: it holds one bare "
                                  f"array (np.save), not an .npz archive")
        with z:
            arrays = {k: z[k] for k in z.files}
    except (FileNotFoundError, IsADirectoryError, FileFormatError):
        raise
    except Exception as e:      # a zip or npy error: the file is damaged
        raise FileFormatError(f"{who}: {path} is not a readable {what} ({type(e).__name__}: "
                              f"{e}); it is truncated or damaged") from e
    if key not in arrays:
        other = {_SAVE_KEY: "a gp.save file (read it with gp.load)",
                 _CHECKPOINT_KEY: "a training checkpoint (continue it with "
                                  "Trainer.fit(resume=True) or --resume)"}
        found = next((v for k, v in other.items() if k in arrays), "not written by gpuprop")
        raise FileFormatError(f"{who}: {path} is not a {what}: it is {found}")
    try:
        meta = json.loads(str(arrays.pop(key)[()]))
    except ValueError as e:
        raise FileFormatError(f"{who}: {path} has a damaged {key} entry ({e})") from e
    if meta.get("format") != _FORMAT:
        raise FileFormatError(f"{who}: {path} has format {meta.get('format')!r}; this "
                              f"version of gpuprop reads format {_FORMAT}")
    return arrays, meta


def _refuse_nonfinite(who, path, name, array):
    if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise NonFiniteValueError(
            f"{who}: {path} holds {bad} NaN or infinite value(s) in {name}: the run that "
            f"wrote it diverged; use an earlier file, or pass allow_nonfinite=True to "
            f"load it anyway")


# ---- save / load: any pytree of arrays --------------------------------------------
def save(path, tree, metadata=None):
    """Write `tree`, a pytree of arrays (dicts with string keys, lists,
    tuples, None), to `path` (an .npz file) atomically; `metadata` is an
    optional JSON-able dict, read back by load_metadata."""
    leaves = []
    structure = _encode("save", tree, "tree", leaves)
    try:
        entry = json.dumps({"format": _FORMAT, "tree": structure, "metadata": metadata})
    except TypeError as e:
        raise TypeError(f"save: metadata must be JSON-able (dicts, lists, strings, "
                        f"numbers): {e}") from e
    arrays = {f"leaf{i}": leaf for i, leaf in enumerate(leaves)}
    write_npz(path, {**arrays, _SAVE_KEY: np.array(entry)})


def _encode(who, node, where, leaves):
    """The JSON description of `node`; its arrays are appended to `leaves`
    and described by their index."""
    if node is None:
        return None
    if type(node) in (list, tuple):
        return {type(node).__name__: [_encode(who, c, f"{where}[{i}]", leaves)
                                      for i, c in enumerate(node)]}
    if type(node) is dict:
        if not all(isinstance(k, str) for k in node):
            raise TypeError(f"{who}: {where} has keys {sorted(map(repr, node))}; only "
                            f"string keys can be stored")
        return {"dict": {k: _encode(who, node[k], f"{where}[{k!r}]", leaves)
                         for k in sorted(node)}}
    if not (hasattr(node, "shape") or isinstance(node, (int, float, complex, np.generic))):
        raise TypeError(f"{who}: {where} is a {type(node).__name__}; a stored tree holds "
                        f"arrays in dicts, lists and tuples only (convert a namedtuple "
                        f"with ._asdict())")
    array = backend.to_host(node) if hasattr(node, "shape") else np.asarray(node)
    if array.dtype.kind not in "biufc":
        raise TypeError(f"{who}: {where} has dtype {array.dtype}; only numeric and bool "
                        f"arrays can be stored")
    leaves.append(array)
    return len(leaves) - 1


def load(path, allow_nonfinite=False):
    """The pytree written by save(path, ...), its arrays on the active
    device.  NaN or infinite values raise NonFiniteValueError unless
    allow_nonfinite=True."""
    arrays, entry = _read_npz("load", path, _SAVE_KEY, "gpuprop save file")
    return device_put(_decode("load", path, entry["tree"], "tree", arrays, allow_nonfinite))


def load_metadata(path):
    """The metadata dict given to save(path, tree, metadata) (None if none)."""
    return _read_npz("load_metadata", path, _SAVE_KEY, "gpuprop save file")[1]["metadata"]


def _decode(who, path, node, where, arrays, allow_nonfinite):
    if node is None:
        return None
    if isinstance(node, int):
        array = arrays.get(f"leaf{node}")
        if array is None:
            raise FileFormatError(f"{who}: {path} lacks the array of {where}; the file "
                                  f"is damaged")
        if not allow_nonfinite:
            _refuse_nonfinite(who, path, where, array)
        return array
    (kind, children), = node.items()
    if kind == "dict":
        return {k: _decode(who, path, c, f"{where}[{k!r}]", arrays, allow_nonfinite)
                for k, c in children.items()}
    items = [_decode(who, path, c, f"{where}[{i}]", arrays, allow_nonfinite)
             for i, c in enumerate(children)]
    return tuple(items) if kind == "tuple" else items


# ---- training checkpoints ---------------------------------------------------------
def save_checkpoint(path, trees, metadata):
    """Write the pytrees `trees` ({name: pytree}) as host arrays and
    `metadata` (JSON-able) to `path` (an .npz file), atomically, so a crash
    leaves either the old checkpoint or the new one."""
    arrays, shapes = {}, {}
    for name, tree in trees.items():
        leaves, td = tree_flatten(to_numpy(tree))
        shapes[name] = str(td)
        for i, leaf in enumerate(leaves):
            arrays[f"{name}/{i}"] = np.asarray(leaf)
    meta = dict(metadata, format=_FORMAT, trees=shapes)
    write_npz(path, {**arrays, _CHECKPOINT_KEY: np.array(json.dumps(meta))})


def load_checkpoint(path, like):
    """(trees, metadata) from `path`; `like` ({name: pytree}) gives each
    tree's structure, shapes and dtypes, which the checkpoint must match.
    Arrays are placed on the active device; NaN or infinite ones are
    refused.  Trees absent from the file are absent from the result."""
    stored, meta = _read_npz("load_checkpoint", path, _CHECKPOINT_KEY, "gpuprop checkpoint")
    trees = {}
    for name, template in like.items():
        if name not in meta["trees"]:
            continue
        leaves, td = tree_flatten(template)
        got = [stored.get(f"{name}/{i}") for i in range(len(leaves))]
        if f"{name}/{len(leaves)}" in stored or any(g is None for g in got):
            raise FileFormatError(f"load_checkpoint: {path} holds a {name} of structure "
                                  f"{meta['trees'][name]}, expected {td}: it was written "
                                  f"for another model or optimizer; start without resume "
                                  f"or use another checkpoint directory")
        for i, (g, t) in enumerate(zip(got, leaves)):
            if g.shape != tuple(t.shape) or g.dtype != t.dtype:
                raise FileFormatError(f"load_checkpoint: {path}: {name} leaf {i} has "
                                      f"{g.dtype}{list(g.shape)}, the current model expects "
                                      f"{np.dtype(t.dtype)}{list(t.shape)}: the checkpoint "
                                      f"was written for another model or optimizer")
            _refuse_nonfinite("load_checkpoint", path, f"{name} leaf {i}", g)
        trees[name] = device_put(tree_unflatten(td, got))
    return trees, meta


# ---- the checkpoint directory's lock ----------------------------------------------
class DirectoryLock:
    """`with DirectoryLock(d):` creates `d` and the file d/lock holding this
    process's id, or raises DirectoryLockedError naming the live process
    that holds it.  A lock left by a process that no longer runs is taken
    over.  Creating the lock also proves that `d` is writable."""

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, LOCK_NAME)

    def __enter__(self):
        while True:
            try:
                os.makedirs(self.directory, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not os.path.isdir(self.directory):
                    raise NotADirectoryError(f"checkpoint directory {self.directory} is "
                                             f"a file; choose another directory") from None
                self._check_holder()
                continue
            except OSError as e:
                raise type(e)(e.errno, f"checkpoint directory {self.directory} cannot be "
                                       f"created or written ({e.strerror})") from e
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self

    def _check_holder(self):
        """Raise if a live process holds the lock; else remove the stale one."""
        try:
            with open(self.path) as f:
                pid = int(f.read().strip() or 0)
        except FileNotFoundError:
            return                      # released meanwhile
        except ValueError:
            pid = 0
        if pid > 0 and pid != os.getpid() and _alive(pid):
            raise DirectoryLockedError(
                f"checkpoint directory {self.directory} is in use by another run (pid "
                f"{pid}, lock file {self.path}); wait for it to finish, or choose another "
                f"directory")
        try:
            os.remove(self.path)        # a stale lock: its process is gone
        except FileNotFoundError:
            pass

    def __exit__(self, *exc):
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:             # it exists, under another user
        return True
    return True
