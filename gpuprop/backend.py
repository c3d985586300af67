"""The array namespace underneath everything: NumPy on the CPU, CuPy on CUDA.

A backend is a small record: a name, an array namespace `xp`, the array types
it owns, and the two explicit transfers (`from_host`, `to_host`).  Nothing here
knows about differentiation.  The active backend comes from GPUPROP_BACKEND,
`set_backend`, or the `use_backend` context manager (per thread).
"""
import contextlib
import os
import threading
import weakref

import numpy as np

# Python and NumPy scalars are host values that every backend accepts as
# operands (CuPy does too): they are not arrays living on another device.
PY_SCALARS = frozenset([bool, int, float, complex])
SCALAR_TYPES = PY_SCALARS | frozenset([
    t for t in set(np.sctypeDict.values()) if issubclass(t, np.generic)])


class Backend:
    """One array library: `xp` is its namespace (numpy, cupy, ...)."""

    def __init__(self, name, xp, array_types, from_host, to_host, index_add,
                 describe=None, device="cpu", fuser=None):
        self.name = name
        self.device = device            # "cpu" or "cuda": where its arrays live
        self.fuser = fuser              # how jit fuses elementwise groups (None: the device's default)
        self.xp = xp
        self.array_types = tuple(array_types)
        self.ok_types = frozenset(self.array_types) | SCALAR_TYPES
        self.from_host = from_host      # numpy array / list / scalar -> device array
        self.to_host = to_host          # device array -> numpy.ndarray
        self.index_add = index_add      # z[idx] += v with repeated indices summed
        self.describe = describe or name

    def owns(self, x):
        return isinstance(x, self.array_types)

    def __repr__(self):
        return f"<gpuprop backend {self.name!r}>"


def _numpy_backend():
    return Backend("numpy", np, (np.ndarray,), np.asarray, np.asarray,
                   np.add.at, "NumPy on the CPU")


def _cupy_backend():
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(
            "GPUPROP_BACKEND=cupy needs CuPy, which is not installed: install "
            "gpuprop with the extra for your CUDA version, e.g. "
            "`pip install gpuprop[cuda12]` or `pip install gpuprop[cuda13]`, "
            "or unset GPUPROP_BACKEND to run on the CPU with NumPy") from e
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError, driver missing, ...
        raise RuntimeError(
            f"GPUPROP_BACKEND=cupy: CuPy is installed but no usable CUDA device "
            f"was found ({e}); check the NVIDIA driver with `nvidia-smi`, or "
            f"unset GPUPROP_BACKEND to run on the CPU with NumPy") from e
    if count < 1:
        raise RuntimeError(
            "GPUPROP_BACKEND=cupy: CuPy is installed but reports no CUDA device; "
            "unset GPUPROP_BACKEND to run on the CPU with NumPy")
    import cupyx
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return Backend("cupy", cupy, (cupy.ndarray,), cupy.asarray, cupy.asnumpy,
                   cupyx.scatter_add, f"CuPy on {name}", device="cuda")


# name -> factory; a factory runs once, when the backend is first used, so
# CuPy is imported only by someone who asks for it.
_factories = {"numpy": _numpy_backend, "cupy": _cupy_backend}
_backends = {}
_lock = threading.Lock()


class _State(threading.local):
    override = None     # set by use_backend in this thread


_state = _State()
_default = None


def register_backend(name, factory):
    """Make `factory()` (returning a Backend) available as backend `name`."""
    with _lock:
        _factories[name] = factory
        _backends.pop(name, None)


def backend_names():
    return sorted(_factories)


def get(name):
    """The Backend object called `name`, created on first use."""
    be = _backends.get(name)
    if be is not None:
        return be
    if name not in _factories:
        raise ValueError(f"unknown gpuprop backend {name!r}; valid names are "
                         f"{', '.join(backend_names())} (GPUPROP_BACKEND, "
                         f"set_backend, use_backend)")
    with _lock:
        if name not in _backends:
            _backends[name] = _factories[name]()
        return _backends[name]


def _default_backend():
    global _default
    if _default is None:
        _default = get(os.environ.get("GPUPROP_BACKEND", "").strip() or "numpy")
    return _default


def current():
    """The active Backend object for this thread."""
    return _state.override or _default or _default_backend()


def get_backend():
    """The active backend's name: 'numpy', 'cupy', ..."""
    return current().name


def set_backend(name):
    """Make `name` the process-wide default backend."""
    global _default
    _default = get(name)


@contextlib.contextmanager
def use_backend(name):
    """Run a block with backend `name` active in this thread."""
    be = get(name)
    saved = _state.override
    _state.override = be
    try:
        yield be
    finally:
        _state.override = saved


def which(x):
    """The name of the backend that owns array `x`, or a description of its type."""
    for name, be in _backends.items():
        if be.owns(x):
            return name
    mod = type(x).__module__.split(".")[0]
    return {"numpy": "numpy", "cupy": "cupy"}.get(mod, type(x).__name__)


class BackendMismatchError(TypeError):
    """An array of one backend reached an operation running on another."""


def mismatch(op, x, be=None):
    be = be or current()
    return BackendMismatchError(
        f"{op}: got an array of backend {which(x)!r} (type "
        f"{type(x).__module__}.{type(x).__name__}, shape {getattr(x, 'shape', '?')}) "
        f"while the active backend is {be.name!r}; gpuprop never copies between "
        f"host and device silently: move it with gpuprop.asarray(x) (to the "
        f"active device) or gpuprop.to_numpy(x) (to the host)")


class DeletedArrayError(RuntimeError):
    """An array donated to a jitted function (donate_argnums) was used again."""


# id -> weak reference of the arrays donated to a jitted program; an entry
# leaves when its array dies (so a later array with the same id is not taken for it)
deleted = {}


def delete(x):
    """Mark `x` deleted: its buffer was donated, and any later use through
    gpuprop raises DeletedArrayError (NumPy's own functions cannot be
    stopped from reading it).  An array type without weak references cannot
    be tracked and is left alone."""
    key = id(x)
    try:
        deleted[key] = weakref.ref(x, lambda _: deleted.pop(key, None))
    except TypeError:
        pass


def check_live(x, where):
    ref = deleted.get(id(x))
    if ref is not None and ref() is x:
        raise DeletedArrayError(
            f"{where}: an array of shape {x.shape} and dtype {x.dtype} was donated to a "
            f"jitted function (donate_argnums) and is deleted: its buffer may hold "
            f"that call's result now. Use the function's output instead, or donate a "
            f"copy if the array is needed again")


def asarray(x, dtype=None):
    """`x` as an array of the active backend: numbers, lists and NumPy arrays
    are copied to the device, arrays of other backends go through the host."""
    be = current()
    if deleted:
        check_live(x, "gpuprop.asarray")
    if not be.owns(x):
        if not isinstance(x, (np.ndarray, np.generic, list, tuple, int, float, bool, complex)):
            x = _other_backend_to_host(x)
        x = be.from_host(x)
    return x if dtype is None else x.astype(dtype, copy=False)


def _other_backend_to_host(x):
    for be in _backends.values():
        if be.owns(x):
            return be.to_host(x)
    raise TypeError(f"gpuprop.asarray: cannot convert {type(x).__name__} to an array")


def to_host(x):
    """One array (of any backend) as a numpy.ndarray; scalars pass through."""
    if deleted:
        check_live(x, "gpuprop.to_numpy")
    if isinstance(x, np.ndarray) or type(x) in SCALAR_TYPES:
        return x
    for be in _backends.values():
        if be.owns(x):
            return be.to_host(x)
    return x
