"""gp.checkpoint (remat): the same values and derivatives as the function,
first and second order, in every transform; the backward pass recomputes
(staged: the recomputation survives CSE); and a finished transform's memory
is freed without waiting for the garbage collector."""
import gc
import tracemalloc

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import dev, host


def layer(w, x):
    return gnp.tanh(x @ w)


def net(ws, x, wrap):
    for w in ws:
        x = wrap(layer)(w, x)
    return gnp.sum(x ** 2)


def data():
    rng = np.random.default_rng(0)
    return [dev(rng.standard_normal((4, 4)) * 0.5) for _ in range(3)], dev(rng.standard_normal((2, 4)))


def plain(f):
    return f


def test_values_and_gradients_equal_the_function():
    ws, x = data()
    assert gp.remat is gp.checkpoint
    np.testing.assert_array_equal(host(net(ws, x, gp.checkpoint)), host(net(ws, x, plain)))
    for a, b in zip(gp.grad(net)(ws, x, gp.checkpoint), gp.grad(net)(ws, x, plain)):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-14)
    h1 = gp.hessian(lambda x: net(ws, x, gp.checkpoint))(x)
    h2 = gp.hessian(lambda x: net(ws, x, plain))(x)
    np.testing.assert_allclose(host(h1), host(h2), rtol=1e-12, atol=1e-14)


def test_check_grads_second_order_both_modes():
    ws, x = data()
    check_grads(lambda w, x: net([w] + ws[1:], x, gp.checkpoint), (host(ws[0]), host(x)), order=2)


def test_under_vmap_jvp_and_with_static_arguments():
    ws, x = data()
    per = gp.vmap(gp.grad(lambda x: net(ws, x, gp.checkpoint)))(x[:, None])
    want = gp.vmap(gp.grad(lambda x: net(ws, x, plain)))(x[:, None])
    np.testing.assert_allclose(host(per), host(want), rtol=1e-13)
    scaled = gp.checkpoint(lambda x, k: x * k, static_argnums=1)
    assert host(gp.grad(lambda x: gnp.sum(scaled(x, 3.0)))(x)).tolist() == [[3.0] * 4] * 2
    with pytest.raises(TypeError, match=r"checkpoint\(<lambda>\): the function must return one array"):
        gp.grad(lambda x: gp.checkpoint(lambda y: (y, y))(x)[0].sum())(x)


def test_staged_backward_pass_recomputes():
    ws, x = data()
    count = lambda wrap: sum(e.prim.name == "tanh" for e in          # noqa: E731
                             gp.jit(gp.grad(net), static_argnums=2).lower(ws, x, wrap).program.eqns)
    assert count(plain) == 3 and count(gp.checkpoint) == 6      # CSE kept the recomputation
    jg = gp.jit(gp.grad(net), static_argnums=2)(ws, x, gp.checkpoint)
    for a, b in zip(jg, gp.grad(net)(ws, x, plain)):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-13)


def test_a_dropped_vjp_frees_its_saved_values_at_once(backend_name):
    if backend_name != "numpy":
        pytest.skip("tracemalloc sees NumPy's allocations")
    x = np.ones((256, 256))
    gc.disable()
    try:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        _, back = gp.vjp(lambda x: gnp.sum(gnp.tanh(gnp.exp(x))), x)
        held = tracemalloc.get_traced_memory()[0] - before
        del back
        after = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    finally:
        gc.enable()
    assert held > 2 * x.nbytes and after < x.nbytes / 4, (held, after)
