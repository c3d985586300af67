"""A test-only backend that behaves like CuPy where it matters.

Its arrays are not numpy.ndarray and refuse implicit conversion to NumPy
(np.asarray raises, NumPy functions and ufuncs refuse them), and its
functions refuse NumPy arrays, as CuPy's do.  Everything is computed by NumPy
underneath, so running the suite under it needs no GPU, yet any silent
host/device mixing in gpuprop fails the tests.
"""
import types

import numpy as np

from gpuprop.backend import Backend
from gpuprop.compile import fusion
from gpuprop.ir import Program, eval_program


class StrictArray:
    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100    # below gpuprop's tracers, so they win mixed operators

    def __init__(self, a):
        self._a = a

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))

    def __array__(self, *args, **kwargs):
        raise TypeError("StrictArray: implicit conversion to a NumPy array is not "
                        "allowed (as with CuPy); use gpuprop.to_numpy")

    def __array_ufunc__(self, *args, **kwargs):
        raise TypeError("StrictArray: NumPy ufuncs do not take strict-backend arrays")

    def __array_function__(self, *args, **kwargs):
        raise TypeError("StrictArray: NumPy functions do not take strict-backend arrays")

    def get(self):
        """To the host, explicitly (as cupy.ndarray.get)."""
        return self._a.copy()

    def __getitem__(self, idx):
        return wrap(self._a[unwrap(idx, "getitem")])

    def __setitem__(self, idx, value):
        self._a[unwrap(idx, "setitem")] = unwrap(value, "setitem")

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (wrap(r) for r in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    __hash__ = None

    def __getattr__(self, name):   # methods: astype, reshape, sum, copy, ...
        if name.startswith("__"):    # no __array_interface__ & co: no way to NumPy
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *a, **k: wrap(attr(*unwrap(a, name), **unwrap(k, name)))
        return attr


def _binop(name):
    f = getattr(np.ndarray, name)

    def op(self, other):
        # as CuPy: defer to an operand of higher priority (gpuprop's tracers)
        if getattr(other, "__array_priority__", 0) > self.__array_priority__:
            return NotImplemented
        return wrap(f(self._a, unwrap(other, name)))
    return op


for _op in ["add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul",
            "and", "or", "xor"]:
    for _n in (f"__{_op}__", f"__r{_op}__", f"__i{_op}__"):
        setattr(StrictArray, _n, _binop(_n))
for _n in ["__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"]:
    setattr(StrictArray, _n, _binop(_n))
for _n in ["__neg__", "__pos__", "__abs__", "__invert__"]:
    setattr(StrictArray, _n, (lambda f: lambda self: wrap(f(self._a)))(getattr(np.ndarray, _n)))


def unwrap(x, where):
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"strict backend ({where}): got a numpy.ndarray where a device "
                        f"array is expected (CuPy refuses these too)")
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v, where) for v in x)
    if isinstance(x, dict):
        return {k: unwrap(v, where) for k, v in x.items()}
    return x


def wrap(x):
    if isinstance(x, np.ndarray):
        return StrictArray(x)
    if isinstance(x, np.generic):      # CuPy gives 0-d arrays, not scalars
        return StrictArray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(wrap(v) for v in x)
    return x


class StrictNamespace:
    """numpy's names (and its submodules', e.g. linalg), each taking and
    giving StrictArrays; `scipy` wraps SciPy, as cupyx.scipy goes with CuPy."""

    ndarray = StrictArray

    def __init__(self, module=np):
        self._module = module

    def __getattr__(self, name):
        if name == "scipy" and self._module is np:
            import scipy.special    # noqa: F401 (loads the submodule)
            attr = scipy
        else:
            attr = getattr(self._module, name)
        if isinstance(attr, types.ModuleType):
            ns = StrictNamespace(attr)
            setattr(self, name, ns)
            return ns
        if isinstance(attr, type) or not callable(attr):
            return attr                 # dtypes, constants

        def f(*args, **kwargs):
            out = kwargs.get("out")
            res = attr(*unwrap(args, name), **unwrap(kwargs, name))
            return out if isinstance(out, StrictArray) else wrap(res)
        f.__name__ = name
        setattr(self, name, f)          # cache
        return f

    @staticmethod
    def asarray(x, dtype=None):
        """Explicit host -> device transfer, as cupy.asarray."""
        if isinstance(x, StrictArray):
            return x if dtype is None else StrictArray(x._a.astype(dtype, copy=False))
        return StrictArray(np.array(x, dtype=dtype))

    array = asarray


def reference_kernels(kernels):
    """Each kernel as its equations evaluated by ir.eval_program on the active
    backend: the CUDA executor's fusion plan (every fusible group, sums
    merged with their map), exercised without a GPU."""
    calls = type("Calls", (), {})()
    for k in kernels:
        eqns = k.eqns + ([k.reduction] if isinstance(k, fusion.ReduceKernel) else [])
        prog = Program(k.inputs, {}, eqns, k.outputs, k.name)
        setattr(calls, k.name, lambda *ins, prog=prog: eval_program(prog, *ins))
    return calls


REFERENCE_FUSER = fusion.Fuser(fusible=fusion.fusible, accepts=lambda kernel: True,
                               build=reference_kernels, fuse_reductions=True)


def strict_backend():
    xp = StrictNamespace()
    return Backend(
        "strict", xp, (StrictArray,), from_host=xp.asarray,
        to_host=lambda a: a._a.copy(),
        index_add=lambda z, idx, v: np.add.at(z._a, unwrap(idx, "index_add"), unwrap(v, "index_add")),
        describe="strict test backend (NumPy underneath, CuPy's rules and fusion plan)",
        fuser=REFERENCE_FUSER)
