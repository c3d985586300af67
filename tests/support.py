"""Helpers shared by the test modules (a plain module: no test module imports
another test module or conftest).

- the backends of the run (`BACKENDS`) and host <-> device (`dev`, `host`);
- the NumPy reference namespace `REF`, `assert_same` (one array against
  NumPy's) and `check` (values against NumPy and derivatives against finite
  differences of a function written once as `fn(m, *xs)`);
- input data away from kinks and ties: `uniform`, `away_from_zero`,
  `lattice`, `distinct`;
- `assert_same_trees`: two pytrees, leaf by leaf;
- the random-program generator of the fuzz tests: `fuzz_programs`,
  `run_fuzz_program`;
- `weak_ref` (a weak reference to a device array) and `find_mpiexec`.
"""
import importlib.util
import os
import shutil
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads

# Every test runs under each backend of the run: numpy and the strict test
# backend by default; only cupy with GPUPROP_BACKEND=cupy (bench/gpu_check.sh).
BACKENDS = (["cupy"] if os.environ.get("GPUPROP_BACKEND", "").strip() == "cupy"
            else ["numpy", "strict"])


def dev(x, dtype=None):
    """Host data as an array of the active backend."""
    return gp.asarray(np.asarray(x, dtype=dtype))


def host(x):
    return gp.to_numpy(x)


# ---- the reference namespace and comparisons ----------------------------------------
def _logsumexp(x, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


class _Ref:
    """NumPy, plus the names gnp has and NumPy lacks: the reference side."""
    logistic = staticmethod(lambda x: 1 / (1 + np.exp(-x)))
    stop_gradient = staticmethod(lambda x: x)
    astype = staticmethod(lambda x, dtype: np.asarray(x).astype(dtype))
    getitem = staticmethod(lambda x, index: x[index])
    relu = staticmethod(lambda x: np.maximum(x, 0))
    softplus = staticmethod(lambda x: np.logaddexp(0, x))
    logsumexp = staticmethod(_logsumexp)
    softmax = staticmethod(_softmax)
    log_softmax = staticmethod(lambda x, axis=-1: x - _logsumexp(x, axis, keepdims=True))

    def __getattr__(self, name):
        return getattr(np, name)


REF = _Ref()


def assert_same(got, want, rtol=1e-7, atol=1e-12):
    """A gpuprop result (device) against NumPy's (host): shape, dtype, values."""
    got, want = np.asarray(host(got)), np.asarray(want)
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def check(fn, *xs, order=2, rtol=1e-7):
    """fn(gnp) on the device agrees with fn(REF) on the host, and its
    derivatives with finite differences."""
    assert_same(fn(gnp, *map(dev, xs)), fn(REF, *xs), rtol=rtol)
    if order:
        check_grads(lambda *a: fn(gnp, *a), xs, order=order)


def assert_same_trees(got, want, rtol=0.0, atol=0.0, same_dtype=True):
    """Two pytrees (device or host leaves): the same structure and, leaf by
    leaf, the same shape, dtype and values; exactly (NaNs equal) unless
    rtol or atol is given. same_dtype=False leaves the dtypes unchecked (a
    float32 run against a float64 reference)."""
    got, want = host(got), host(want)
    assert gp.tree_structure(got) == gp.tree_structure(want)
    for g, w in zip(gp.tree_leaves(got), gp.tree_leaves(want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and (not same_dtype or g.dtype == w.dtype), \
            (g.shape, g.dtype, w.shape, w.dtype)
        if rtol or atol:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(g, w)


# ---- inputs -------------------------------------------------------------------
def uniform(shape, lo=-2.0, hi=2.0, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def away_from_zero(shape, seed=0):
    """Signed values with |x| >= 0.3: clear of the kinks of abs, sign, relu."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)


def lattice(shape, offset, seed=0):
    """Values k/4 + offset: two lattices with offsets 0.1 apart never tie."""
    return np.random.default_rng(seed).integers(-6, 7, shape) / 4 + offset


def distinct(shape, seed=0):
    """All entries at least 0.07 apart: no ties for max and min."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0, 0.03, n)).reshape(shape)


# ---- random programs for the fuzz tests ------------------------------------------------
# Ops whose domain is limited are guarded (log(x*x+1), sqrt(x*x+1), ...), so
# every program is smooth and finite wherever its inputs are.
FUZZ_UNARY = {
    "sin": lambda m, x: m.sin(x),
    "cos": lambda m, x: m.cos(x),
    "tanh": lambda m, x: m.tanh(x),
    "logistic": lambda m, x: m.logistic(x),
    "negative": lambda m, x: m.negative(x),
    "square": lambda m, x: m.square(x),
    "cube": lambda m, x: m.power(x, 3),
    "exp(-x*x)": lambda m, x: m.exp(-(x * x)),
    "expm1(tanh)": lambda m, x: m.expm1(m.tanh(x)),
    "log(x*x+1)": lambda m, x: m.log(x * x + 1.0),
    "log1p(x*x)": lambda m, x: m.log1p(x * x),
    "sqrt(x*x+1)": lambda m, x: m.sqrt(x * x + 1.0),
    "softplus": lambda m, x: m.softplus(x),
}
FUZZ_BINARY = {
    "add": lambda m, x, y: m.add(x, y),
    "subtract": lambda m, x, y: m.subtract(x, y),
    "multiply": lambda m, x, y: m.multiply(x, y),
    "divide": lambda m, x, y: m.divide(x, y * y + 1.0),
    "power": lambda m, x, y: m.power(x * x + 1.0, m.tanh(y)),
    # tanh(t) = t - t**3/3 + ...: the two branches meet smoothly (C2) at x == y
    "where": lambda m, x, y: m.where(m.greater(x, y), m.tanh(x - y), x - y),
}
FUZZ_REDUCE = {
    "sum": lambda m, x, axis, keepdims: m.sum(x, axis=axis, keepdims=keepdims),
    "mean": lambda m, x, axis, keepdims: m.mean(x, axis=axis, keepdims=keepdims),
    "max": lambda m, x, axis, keepdims: m.max(x, axis=axis, keepdims=keepdims),
    "var": lambda m, x, axis, keepdims: m.var(x, axis=axis, keepdims=keepdims),
    "logsumexp": lambda m, x, axis, keepdims: m.logsumexp(x, axis=axis, keepdims=keepdims),
}


def _reduced(shape, axis, keepdims):
    axes = range(len(shape)) if axis is None else axis
    return tuple(1 if i in axes else d for i, d in enumerate(shape)) if keepdims \
        else tuple(d for i, d in enumerate(shape) if i not in axes)


def fuzz_programs():
    """A hypothesis strategy of random programs: (input shapes, ops, outputs,
    seed), DAGs of FUZZ_UNARY, FUZZ_BINARY and FUZZ_REDUCE ops.  Every shape
    broadcasts to one base shape, so any two nodes can meet in a binary op;
    reductions keep that (keepdims, or dropping leading axes only).
    (hypothesis, a test extra, is imported here: only the fuzz tests need it.)"""
    from hypothesis import strategies as st

    @st.composite
    def programs(draw):
        base = draw(st.sampled_from([(3,), (2, 3), (2, 3, 2)]))

        def sub_shape():
            tail = base[len(base) - draw(st.integers(0, len(base))):]
            return tuple(draw(st.sampled_from([d, 1])) for d in tail)

        shapes = [sub_shape() for _ in range(draw(st.integers(1, 3)))]
        nodes, ops = list(shapes), []
        for _ in range(draw(st.integers(1, 6))):
            kind = draw(st.sampled_from(["unary", "binary", "reduce"]))
            i = draw(st.integers(0, len(nodes) - 1))
            s = nodes[i]
            if kind == "unary":
                ops.append((kind, draw(st.sampled_from(sorted(FUZZ_UNARY))), i))
            elif kind == "binary":
                j = draw(st.integers(0, len(nodes) - 1))
                ops.append((kind, draw(st.sampled_from(sorted(FUZZ_BINARY))), i, j))
                s = np.broadcast_shapes(s, nodes[j])
            else:
                axes = draw(st.lists(st.integers(0, len(s) - 1), unique=True,
                                     max_size=len(s))) if s else []
                axis = None if not axes else tuple(sorted(axes))
                leading = axis is None or axis == tuple(range(len(axis)))
                keepdims = draw(st.booleans()) if leading else True
                neg = draw(st.booleans()) and axis is not None
                axis = tuple(a - len(s) for a in axis) if neg else axis
                ops.append((kind, draw(st.sampled_from(sorted(FUZZ_REDUCE))), i, axis, keepdims))
                s = _reduced(s, range(len(s)) if axis is None else [a % len(s) for a in axis],
                             keepdims)
            nodes.append(s)
        outs = sorted({len(nodes) - 1, draw(st.integers(0, len(nodes) - 1))})
        return shapes, ops, outs, draw(st.integers(0, 2 ** 32 - 1))

    return programs()


def run_fuzz_program(m, ops, outs, *xs):
    """A program of fuzz_programs on namespace m (gnp or the NumPy reference)."""
    nodes = list(xs)
    for kind, name, i, *rest in ops:
        if kind == "unary":
            nodes.append(FUZZ_UNARY[name](m, nodes[i]))
        elif kind == "binary":
            nodes.append(FUZZ_BINARY[name](m, nodes[i], nodes[rest[0]]))
        else:
            nodes.append(FUZZ_REDUCE[name](m, nodes[i], *rest))
    return tuple(nodes[k] for k in outs)


# ---- memory and processes -----------------------------------------------------------
def weak_ref(a):
    """A weak reference to a device array's buffer: for the strict backend's
    wrapper, to the NumPy array inside, which lives as long as the buffer."""
    try:
        return weakref.ref(a._a if hasattr(a, "_a") else a)
    except TypeError:
        pytest.skip(f"{type(a).__name__} does not support weak references")


def find_mpiexec():
    """The mpiexec beside this python (the mpich wheel puts it there), else on PATH."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed: pip install -e '.[mpi]'")
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec beside python or on PATH: pip install -e '.[mpi]'")
    return found
