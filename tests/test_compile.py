"""The compile path: which fuser a backend gets, CUDA graphs wrapping an
already compiled run (the graph step faked, so it runs under every backend),
and the speed shortcuts of the generated code shown equal to the plain path."""
import functools

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop import compile as gcompile
from gpuprop.backend import Backend
from gpuprop.compile import cpu, cuda, executor
from gpuprop.numpy import _base, elementwise as ew, reductions
from gpuprop.numpy.products import matmul_p
from support import dev, host
from strict_backend import REFERENCE_FUSER

pytestmark = pytest.mark.usefixtures("executor")     # native and NumPy executors


# ---- the fuser -----------------------------------------------------------------
def test_each_backend_gets_its_fuser(backend_name, monkeypatch):
    be = gp.backend.current()
    want = REFERENCE_FUSER if backend_name == "strict" else (
        cpu.FUSER if cpu.compiler() else None)
    assert gcompile.fuser_for(be) is want
    gpu = Backend("fake-gpu", np, (np.ndarray,), np.asarray, np.asarray, np.add.at,
                  device="cuda")
    assert gcompile.fuser_for(gpu) is cuda.FUSER
    monkeypatch.setenv("GPUPROP_FUSION", "0")
    assert gcompile.fuser_for(be) is None and gcompile.fuser_for(gpu) is None


# ---- CUDA graphs, the capture faked ------------------------------------------------
@pytest.fixture
def fake_graphs(monkeypatch):
    """Every backend 'captures' graphs: the capture runs the kept program
    (which frees nothing and returns its intermediates too) and records that
    it wrapped it.  Also counts how often programs are generated."""
    seen = {"captured": 0, "generated": 0}

    def capture(run):
        seen["captured"] += 1

        def call(leaves):
            outs, made = run(leaves)
            return outs
        call.source, call.kernels, call.launches = run.source, run.kernels, 1
        return call

    generate = executor.generate

    def counting(*args, **kwargs):
        seen["generated"] += 1
        return generate(*args, **kwargs)
    monkeypatch.setattr(gcompile, "graph_capture_for", lambda be: capture)
    monkeypatch.setattr(executor, "generate", counting)
    return seen


def step(w, g):
    return w - 0.5 * gnp.tanh(g) * g


def test_a_graph_wraps_the_one_compiled_program(fake_graphs):
    w, g = np.linspace(-1, 1, 12).reshape(3, 4), np.linspace(2, 3, 12).reshape(3, 4)
    f = gp.jit(step, cuda_graph=True)
    for _ in range(3):
        np.testing.assert_allclose(host(f(dev(w), dev(g))), w - 0.5 * np.tanh(g) * g)
    assert fake_graphs == {"captured": 1, "generated": 1} and f.traces == 1
    assert f.lower(dev(w), dev(g)).launches == 1


def test_a_graph_honours_fusion_off(fake_graphs, monkeypatch, backend_name):
    w, g = dev(np.ones((3, 4))), dev(np.ones((3, 4)))
    fused = gp.jit(step, cuda_graph=True).lower(w, g)
    if gcompile.fuser_for(gp.backend.current()) is not None:
        assert fused.kernels >= 1
    monkeypatch.setenv("GPUPROP_FUSION", "0")
    plain = gp.jit(step, cuda_graph=True).lower(w, g)
    assert plain.kernels == 0 and "gpuprop_" not in plain.source


def test_a_graph_honours_donation(fake_graphs, monkeypatch):
    monkeypatch.setenv("GPUPROP_FUSION", "0")       # NumPy calls, whose out= shows
    w = np.linspace(-1, 1, 12).reshape(3, 4)
    f = gp.jit(lambda w: gnp.tanh(w) * 2.0, cuda_graph=True, donate_argnums=0)
    np.testing.assert_allclose(host(f(dev(w.copy()))), np.tanh(w) * 2.0)
    assert "out=a0" in f.lower(dev(w.copy())).source
    kept = gp.jit(lambda w: gnp.tanh(w) * 2.0, cuda_graph=True)
    assert "out=a0" not in kept.lower(dev(w)).source


def test_cuda_graph_changes_nothing_on_a_cpu_backend():
    w, g = dev(np.ones((3, 4))), dev(np.ones((3, 4)))
    with_graph = gp.jit(step, cuda_graph=True).lower(w, g)
    assert with_graph.source == gp.jit(step).lower(w, g).source


# ---- shortcuts equal the plain path ------------------------------------------------
DIRECT = [p for p in vars(ew).values() if isinstance(p, gp.core.Primitive) and p.backend_fn]


@pytest.mark.parametrize("prim", DIRECT + [matmul_p], ids=lambda p: p.name)
def test_calling_the_backend_function_directly_equals_the_impl(prim):
    """impl_for skips the impl's frame for backend functions: same values."""
    xp = gp.backend.current().xp
    rng = np.random.default_rng(1)
    arity, dtype = (2, np.float64) if prim is matmul_p else _arity(prim)
    scale = 100 if dtype == np.uint32 else 1
    xs = [dev(rng.uniform(0.2, 0.9, (3, 3)) * scale, dtype) for _ in range(arity)]
    if prim is ew.where_p:
        xs[0] = dev(rng.uniform(size=(3, 3)) > 0.5)
    with np.errstate(all="ignore"):
        direct = prim.impl_for(xp)(*xs)
        plain = functools.partial(prim.impl, xp)(*xs)
    np.testing.assert_array_equal(host(direct), host(plain))


def _arity(prim):
    """(number of arguments, a dtype it takes): float64, else uint32 (bits)."""
    for dtype in (np.float64, np.uint32):
        for k in (1, 2, 3):
            try:
                prim.abstract_eval(*[gp.ShapedArray((3, 3), dtype)] * k)
                return k, dtype
            except (TypeError, ValueError):
                continue
    raise AssertionError(prim)


@pytest.mark.parametrize("prim", [_base.sum_p, reductions.prod_p, reductions.max_p,
                                  reductions.min_p], ids=lambda p: p.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_reduction_as_ufunc_reduce_equals_the_backend_function(prim, dtype, monkeypatch):
    """On NumPy the generated code calls np.add.reduce & co, not np.sum's wrapper."""
    monkeypatch.setenv("GPUPROP_FUSION", "0")
    x = np.random.default_rng(2).uniform(0.5, 1.5, (4, 5, 6)).astype(dtype)
    fn = getattr(gnp, prim.name)
    for axis in (None, 1, (0, 2)):
        jf = gp.jit(lambda x: fn(x, axis=axis, keepdims=True))
        got, eager = host(jf(dev(x))), host(fn(dev(x), axis=axis, keepdims=True))
        np.testing.assert_array_equal(got, eager)
        if gp.get_backend() == "numpy":
            assert f"xp.{prim.reduce_ufunc}.reduce(" in jf.lower(dev(x)).source
