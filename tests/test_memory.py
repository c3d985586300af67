"""Memory: repeated grad calls do not grow memory, the tape lets go of what
it saved as soon as the backward pass is past it (custom_vjp residuals
included), and a jitted training step, with its planned buffer reuse, peaks
no higher than the same step run eagerly.

tracemalloc sees NumPy's allocations only on the numpy backend; the tape test
runs on every backend.
"""
import gc
import tracemalloc

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.nn import MLP, softmax_cross_entropy
from support import dev, host, weak_ref

pytestmark = pytest.mark.usefixtures("executor")     # native and NumPy executors


@pytest.fixture
def numpy_only(backend_name):
    if backend_name != "numpy":
        pytest.skip("tracemalloc sees NumPy's allocations only on the numpy backend")


def classifier(sizes, batch, seed=0):
    model = MLP(sizes, activation="tanh", seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = dev(rng.standard_normal((batch, sizes[0])), np.float32)
    labels = dev(rng.integers(0, sizes[-1], batch))
    return model, model.init(), x, labels


def loss_fn(model):
    return lambda params, x, labels: softmax_cross_entropy(model.apply(params, x), labels)


def traced_now():
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_a_thousand_grad_calls_do_not_grow_memory(numpy_only, mode):
    model, params, x, labels = classifier([8, 16, 16, 4], batch=8)
    g = gp.grad(loss_fn(model))
    g = gp.jit(g) if mode == "jit" else g
    g(params, x, labels)                    # compile, fill the caches
    tracemalloc.start()
    try:
        for _ in range(100):
            out = g(params, x, labels)
        after_100 = traced_now()
        for _ in range(900):
            out = g(params, x, labels)
        after_1000 = traced_now()
    finally:
        tracemalloc.stop()
    assert np.isfinite(host(out[0]["W"])).all()
    # NumPy's cache of small shape buffers fills while traced (at most ~30 KiB);
    # a leak of 56 bytes per call, a fraction of one tape node, exceeds the bound
    assert after_1000 - after_100 < 48 * 1024, (after_100, after_1000)


def test_the_tape_releases_saved_values_and_residuals_as_it_goes():
    """A custom_vjp residual and an intermediate saved for a VJP are dropped
    once the backward pass has used them, before it finishes, not only
    when grad returns."""
    refs = {}
    alive_at_first = {}

    @gp.custom_vjp
    def cube(x):
        return x * x * x

    def cube_fwd(x):
        slope = gnp.multiply(3.0, x * x)       # lives only as a residual
        refs["residual"] = weak_ref(slope)
        return x * x * x, (slope,)

    cube.defvjp(cube_fwd, lambda res, g: (g * res[0],))

    @gp.custom_vjp
    def first(x):
        return x * 1.0

    def first_bwd(_, g):        # the last rule to run: everything else is done
        alive_at_first.update((k, r() is not None) for k, r in refs.items())
        return (g,)

    first.defvjp(lambda x: (x * 1.0, None), first_bwd)

    @gp.custom_vjp
    def keep(x):                # its output is an intermediate saved by sin's VJP
        return x * 1.0

    def keep_fwd(x):
        out = x * 1.0
        refs["intermediate"] = weak_ref(out)
        return out, None

    keep.defvjp(keep_fwd, lambda _, g: (g,))

    def f(x):
        return gnp.sum(gnp.sin(keep(cube(first(x)))))

    x = np.array([0.3, -0.7, 1.1])
    g = gp.grad(f)(dev(x))
    np.testing.assert_allclose(host(g), np.cos(x ** 3) * 3 * x ** 2, rtol=1e-12)
    assert alive_at_first == {"residual": False, "intermediate": False}, \
        "saved values outlived the part of the backward pass that needed them"
    assert all(r() is None for r in refs.values())


def test_jitted_training_step_peaks_no_higher_than_eager(numpy_only):
    model, params, x, labels = classifier([256, 512, 512, 512, 10], batch=256, seed=3)
    loss = loss_fn(model)

    def step(params, x, labels):
        value, grads = gp.value_and_grad(loss)(params, x, labels)
        return gp.tree_map(lambda p, d: p - 0.1 * d, params, grads), value

    jstep = gp.jit(step)
    jstep(params, x, labels)                # compile outside the measurement

    def peak(fn):
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            out = fn(params, x, labels)
            return tracemalloc.get_traced_memory()[1] - base, out
        finally:
            tracemalloc.stop()

    eager_peak, (pe, ve) = peak(step)
    jit_peak, (pj, vj) = peak(jstep)
    np.testing.assert_allclose(host(vj), host(ve), rtol=1e-5)
    for a, b in zip(gp.tree_leaves(pj), gp.tree_leaves(pe)):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-4, atol=1e-6)
    assert jit_peak <= eager_peak, (jit_peak, eager_peak)
