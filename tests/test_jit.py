"""jit and make_ir: the staged IR and its passes, composition with the other
transforms, the compilation cache and its retrace log, errors of tracing,
buffer reuse (inputs untouched unless donated, outputs never aliased, peak
memory) and calls from several threads.

Every jitted result is compared with the same function run eagerly, with
NumPy on the host, or with finite differences (gpuprop.testing.check_grads).
"""
import collections
import logging
import threading
import tracemalloc

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.core import TracerControlFlowError
from gpuprop.jit import make_ir
from gpuprop.compile.executor import make_steps, plan_memory
from gpuprop.testing import check_grads
from support import assert_same_trees, dev, host

pytestmark = pytest.mark.usefixtures("executor")     # native and NumPy executors

Pair = collections.namedtuple("Pair", ["w", "b"])


def tree_host(tree):
    return [host(x) for x in gp.tree_leaves(tree)]


def assert_trees_close(actual, expected, rtol=1e-6, atol=1e-6):
    assert_same_trees(actual, expected, rtol=rtol, atol=atol)


# ---- a small MLP, its loss and training steps -------------------------------
def init_mlp(sizes, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [Pair(dev(rng.standard_normal((m, n)) / np.sqrt(m), dtype), dev(np.zeros(n), dtype))
            for m, n in zip(sizes[:-1], sizes[1:])]


def mlp_loss(params, x, y):
    h = x
    for p in params[:-1]:
        h = gnp.tanh(h @ p.w + p.b)
    out = h @ params[-1].w + params[-1].b
    return gnp.mean((out - y) ** 2)


def mlp_loss_np(params, x, y):
    """The same loss by NumPy on the host."""
    h = x
    for w, b in params[:-1]:
        h = np.tanh(h @ w + b)
    w, b = params[-1]
    return np.mean((h @ w + b - y) ** 2)


def host_params(params):
    return [tuple(tree_host(p)) for p in params]


def sgd_step(params, x, y, lr=0.1):
    loss, g = gp.value_and_grad(mlp_loss)(params, x, y)
    return gp.tree_map(lambda p, d: p - lr * d, params, g), loss


def momentum_step(state, x, y, lr=0.05, mu=0.9):
    params, vel = state["params"], state["vel"]
    loss, g = gp.value_and_grad(mlp_loss)(params, x, y)
    vel = gp.tree_map(lambda v, d: mu * v + d, vel, g)
    params = gp.tree_map(lambda p, v: p - lr * v, params, vel)
    return {"params": params, "vel": vel}, loss


def batch(n, d_in, d_out, seed=1, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return dev(rng.standard_normal((n, d_in)), dtype), dev(rng.standard_normal((n, d_out)), dtype)


# ---- make_ir: the printed IR and the passes ---------------------------------
def test_make_ir_shows_forward_and_backward_with_types():
    params = init_mlp([3, 4, 2])
    x, y = batch(5, 3, 2)
    prog = make_ir(gp.value_and_grad(mlp_loss))(params, x, y)
    text = str(prog)
    names = [e.prim.name for e in prog.eqns]
    # forward: two matmuls and a tanh; backward: a tanh' (1 - t*t), and the
    # cotangent matmuls with transposed weights/activations
    assert names.count("tanh") == 1
    assert names.count("matmul") == 2 + 3      # W1, W2 forward; dh, dW2, dW1 backward
    assert names.count("transpose") >= 2
    assert "f32[5,4] = matmul" in text and "f32[5,4] = tanh" in text
    assert "f32[4,2] = matmul" in text and "f32[3,4] = matmul" in text   # dW2, dW1
    assert "transpose[axes=(1, 0)]" in text
    assert text.startswith("{ lambda") and "f32[3,4]" in text.splitlines()[0]
    # five outputs: the loss and four gradients, typed like the params
    assert len(prog.outvars) == 5
    assert [str(v.aval) for v in prog.outvars] == [
        "f32[]", "f32[3,4]", "f32[4]", "f32[4,2]", "f32[2]"]


def test_make_ir_dead_code_is_removed():
    def f(x):
        unused = gnp.sin(x) * 3.0        # noqa: F841: never reaches the output
        return gnp.exp(x)
    prog = make_ir(f)(dev(np.ones(3)))
    assert [e.prim.name for e in prog.eqns] == ["exp"]
    assert "sin" not in str(prog)


def test_make_ir_common_subexpressions_are_computed_once():
    def f(x, y):
        return gnp.tanh(x * y) + gnp.tanh(x * y)
    prog = make_ir(f)(dev(np.ones(3)), dev(np.ones(3)))
    names = [e.prim.name for e in prog.eqns]
    assert names.count("multiply") == 1 and names.count("tanh") == 1
    x, y = np.array([0.1, 0.5, -2.0]), np.array([1.0, 3.0, 0.25])
    np.testing.assert_allclose(host(gp.jit(f)(dev(x), dev(y))), 2 * np.tanh(x * y))


def test_cse_and_cache_tell_signed_zeros_apart():
    x = np.array([-0.0, 1.0])
    f = gp.jit(lambda x: (x + 0.0, x + -0.0))
    for got, want in zip(f(dev(x)), (x + 0.0, x + -0.0)):
        np.testing.assert_array_equal(np.signbit(host(got)), np.signbit(want))
    g = gp.jit(lambda x, s: x + s)
    for s in (0.0, -0.0):
        np.testing.assert_array_equal(np.signbit(host(g(dev(x), s))), np.signbit(x + s))
    assert g.traces == 2
    for _ in range(2):      # nan is one value for the cache: no retrace
        assert np.isnan(host(g(dev(x), float("nan")))).all()
    assert g.traces == 3


def test_make_ir_folds_constants():
    def f(x):
        return x + gnp.exp(gnp.ones(3))
    prog = make_ir(f)(dev(np.zeros(3)))
    assert [e.prim.name for e in prog.eqns] == ["add"]
    assert "exp" not in str(prog)
    assert len(prog.consts) == 1
    x = np.array([1.0, -1.0, 0.5])
    np.testing.assert_allclose(host(gp.jit(f)(dev(x))), x + np.e)


def test_make_ir_static_argnums_unrolls_the_loop():
    def f(x, ops):
        for op in ops.split(","):
            x = getattr(gnp, op)(x)
        return x
    for static in (1, -1):
        prog = make_ir(f, static_argnums=static)(dev(np.ones(2)), "sin,cos,sin")
        assert [e.prim.name for e in prog.eqns] == ["sin", "cos", "sin"]
        assert len(prog.invars) == 1


# ---- composition with the other transforms ----------------------------------
def f_scalar(x):
    return gnp.sum(gnp.tanh(x) * gnp.sin(x) ** 2 + gnp.exp(-x * x))


X64 = np.array([-0.7, 0.2, 0.9, 1.3])


@pytest.mark.parametrize("make", [
    lambda f: gp.jit(gp.grad(f)),
    lambda f: gp.grad(gp.jit(f)),
    lambda f: gp.jit(gp.grad(gp.jit(f))),
    lambda f: gp.jit(gp.jit(gp.grad(f))),
], ids=["jit(grad)", "grad(jit)", "jit(grad(jit))", "jit(jit(grad))"])
def test_gradient_compositions_match_eager(make):
    x = dev(X64)
    expected = gp.grad(f_scalar)(x)
    assert_trees_close(make(f_scalar)(x), expected, rtol=1e-12, atol=1e-12)
    assert_trees_close(make(f_scalar)(x), expected, rtol=1e-12, atol=1e-12)   # cached


def test_jit_value_and_grad_matches_host_loss_and_eager_grad():
    params = init_mlp([3, 5, 2], dtype=np.float64)
    x, y = batch(6, 3, 2, dtype=np.float64)
    loss, g = gp.jit(gp.value_and_grad(mlp_loss))(params, x, y)
    np.testing.assert_allclose(host(loss), mlp_loss_np(host_params(params), host(x), host(y)),
                               rtol=1e-12)
    assert_trees_close(g, gp.grad(mlp_loss)(params, x, y), rtol=1e-12, atol=1e-12)


def test_grad_grad_of_jit_matches_analytic():
    f = gp.jit(lambda x: gnp.sin(x) * x)
    d2 = gp.grad(gp.grad(f))
    for x in [0.3, -1.2, 2.0]:
        np.testing.assert_allclose(host(d2(dev(np.float64(x)))),
                                   2 * np.cos(x) - x * np.sin(x), rtol=1e-12)


def test_jit_of_hessian_matches_eager_and_analytic():
    def f(x):
        return gnp.sum(gnp.tanh(x) ** 3) + gnp.sum(x) ** 2
    x = dev(X64)
    h = gp.jit(gp.hessian(f))(x)
    assert_trees_close(h, gp.hessian(f)(x), rtol=1e-12, atol=1e-12)
    t = np.tanh(X64)
    diag = 6 * t * (1 - t ** 2) ** 2 - 6 * t ** 3 * (1 - t ** 2)
    np.testing.assert_allclose(host(h), np.diag(diag) + 2.0, rtol=1e-10, atol=1e-12)


def test_jit_of_jit_matches_eager():
    inner = gp.jit(lambda x, y: gnp.tanh(x @ y))
    outer = gp.jit(lambda x, y: inner(x, y) * 2 + inner(y, x).T)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    np.testing.assert_allclose(host(outer(dev(a), dev(b))),
                               np.tanh(a @ b) * 2 + np.tanh(b @ a).T, rtol=1e-12)
    assert outer.traces == 1 and inner.traces == 0       # inlined while tracing


@pytest.mark.parametrize("order", [1, 2])
def test_check_grads_through_jit(order):
    # check_grads takes host data and moves it to the device in float64
    params = [Pair(*p) for p in host_params(init_mlp([3, 4, 2], dtype=np.float64))]
    x, y = (host(a) for a in batch(5, 3, 2, dtype=np.float64))
    check_grads(gp.jit(mlp_loss), (params, x, y), order=order)
    check_grads(gp.jit(f_scalar), (X64,), order=order)
    check_grads(gp.jit(gp.grad(f_scalar)), (X64,), order=order)


def test_has_aux_through_jit():
    def f(x):
        y = gnp.tanh(x)
        return gnp.sum(y ** 2), {"act": y, "n": gnp.sum(x > 0)}
    x = dev(X64)
    (v, aux), g = gp.jit(gp.value_and_grad(f, has_aux=True))(x)
    (ve, auxe), ge = gp.value_and_grad(f, has_aux=True)(x)
    assert_trees_close((v, aux, g), (ve, auxe, ge), rtol=1e-12, atol=1e-12)
    assert host(aux["n"]) == 3
    g2, aux2 = gp.grad(gp.jit(f), has_aux=True)(x)
    assert_trees_close((g2, aux2), (ge, auxe), rtol=1e-12, atol=1e-12)


def test_pytree_inputs_and_outputs():
    def f(tree, scale):
        d, lst, tup, nt = tree["d"], tree["l"], tree["t"], tree["nt"]
        return {"sum": d["a"] + lst[0] * tup[1],
                "pair": Pair(w=gnp.exp(nt.w) * scale, b=lst[1] - tup[0]),
                "list": [nt.b, gnp.sum(d["a"])]}
    rng = np.random.default_rng(4)
    arr = [rng.standard_normal(3) for _ in range(7)]
    tree = {"d": {"a": dev(arr[0])}, "l": [dev(arr[1]), dev(arr[2])],
            "t": (dev(arr[3]), dev(arr[4])), "nt": Pair(dev(arr[5]), dev(arr[6]))}
    out = gp.jit(f)(tree, 0.5)
    assert isinstance(out["pair"], Pair) and isinstance(out["list"], list)
    assert_trees_close(out, f(tree, 0.5), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(out["sum"]), arr[0] + arr[1] * arr[4])
    np.testing.assert_allclose(host(out["pair"].w), np.exp(arr[5]) * 0.5)


def test_keyword_arguments_in_any_order():
    f = gp.jit(lambda x, *, b, a: x + a - 2 * b)
    x, a, b = np.zeros(3), np.arange(3.0), np.full(3, 10.0)
    # traced first with the keywords out of sorted order, then called in order
    for kwargs in ({"b": dev(b), "a": dev(a)}, {"a": dev(a), "b": dev(b)}):
        np.testing.assert_allclose(host(f(dev(x), **kwargs)), a - 2 * b)
    assert f.traces == 1


# ---- a whole training step is one program -----------------------------------
@pytest.mark.parametrize("which", ["sgd", "momentum"])
def test_jitted_training_step_matches_eager_and_traces_once(which):
    params = init_mlp([8, 16, 16, 3], seed=5)
    x, y = batch(32, 8, 3, seed=6)
    if which == "sgd":
        step, state = sgd_step, params
    else:
        step = momentum_step
        state = {"params": params, "vel": gp.tree_map(gnp.zeros_like, params)}
    jstep = gp.jit(step)
    s_eager, s_jit, losses = state, state, []
    for _ in range(6):
        s_eager, le = step(s_eager, x, y)
        s_jit, lj = jstep(s_jit, x, y)
        np.testing.assert_allclose(host(lj), host(le), rtol=1e-5)
        assert_trees_close(s_jit, s_eager, rtol=1e-4, atol=1e-5)
        losses.append(float(host(lj)))
    assert jstep.traces == 1
    assert losses[-1] < losses[0]       # it trains
    np.testing.assert_allclose(losses[0], mlp_loss_np(host_params(params), host(x), host(y)),
                               rtol=1e-5)


def test_training_step_leaves_inputs_unchanged():
    params = init_mlp([8, 16, 3], seed=7)
    x, y = batch(16, 8, 3, seed=8)
    before = tree_host((params, x, y))
    jstep = gp.jit(sgd_step)
    for _ in range(2):
        jstep(params, x, y)
    for a, b in zip(tree_host((params, x, y)), before):
        np.testing.assert_array_equal(a, b)


def test_donated_training_step_computes_the_right_values():
    params = init_mlp([8, 16, 16, 3], seed=9)
    x, y = batch(32, 8, 3, seed=10)
    jstep = gp.jit(sgd_step, donate_argnums=0)
    p_eager = params
    p_jit = gp.tree_map(lambda a: dev(host(a)), params)    # a copy to donate
    before_x = host(x)
    for _ in range(4):
        p_eager, le = sgd_step(p_eager, x, y)
        p_jit, lj = jstep(p_jit, x, y)
        np.testing.assert_allclose(host(lj), host(le), rtol=1e-5)
        assert_trees_close(p_jit, p_eager, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(host(x), before_x)        # not donated
    assert jstep.traces == 1


def test_donation_lets_the_program_write_into_the_input(monkeypatch):
    monkeypatch.setenv("GPUPROP_FUSION", "0")      # NumPy calls, not a fused kernel
    f = gp.jit(lambda x: gnp.tanh(x) * 2.0, donate_argnums=0)
    x = np.linspace(-1, 1, 8)
    out = f(dev(x.copy()))
    np.testing.assert_allclose(host(out), np.tanh(x) * 2.0)
    assert "out=a0" in f.lower(dev(x.copy())).source


# ---- the cache and the retrace log ------------------------------------------
def retrace_lines(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "gpuprop.jit" and "retracing" in r.getMessage()]


def test_same_signature_does_not_retrace(caplog):
    f = gp.jit(lambda x, y: x * y + 1.0)
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.DEBUG, logger="gpuprop.jit"):
        for _ in range(5):
            a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
            np.testing.assert_allclose(host(f(dev(a), dev(b))), a * b + 1.0)
    assert f.traces == 1 and retrace_lines(caplog) == []


F32 = np.float32


@pytest.mark.parametrize("first,second,needle,expected", [
    ((np.ones(3, F32),), (np.ones(4, F32),), "f32[3] -> f32[4]", 4.0),
    ((np.ones(3, F32),), (np.ones(3, np.float64),), "f32[3] -> f64[3]", 3.0),
    ((np.ones(3, F32), 2.0), (np.ones(3, F32), 5.0), "Python float 2.0 -> Python float 5.0", 15.0),
    (([np.ones(3, F32)],), ((np.ones(3, F32), np.ones(2, F32)),), "argument structure", 3.0),
], ids=["shape", "dtype", "python-scalar", "structure"])
def test_new_signature_retraces_and_logs_what_changed(caplog, first, second, needle, expected):
    def f(x, s=1.0):
        return gnp.sum(gp.tree_leaves(x)[0]) * s
    jf = gp.jit(f)

    def move(args):
        return tuple(a if isinstance(a, float) else gp.tree_map(dev, a) for a in args)
    with caplog.at_level(logging.DEBUG, logger="gpuprop.jit"):
        r1 = jf(*move(first))
        jf(*move(first))
        r2 = jf(*move(second))
    assert jf.traces == 2
    np.testing.assert_allclose(host(r1), 3.0 * (first + (1.0,))[1])
    np.testing.assert_allclose(host(r2), expected)
    lines = retrace_lines(caplog)
    assert len(lines) == 1 and needle in lines[0], lines


def test_static_argnums_and_argnames_control_a_python_loop(caplog):
    def power_loop(x, n, *, mode="sin"):
        for _ in range(n):
            x = gnp.sin(x) if mode == "sin" else gnp.cos(x)
        return x
    a = np.array([0.3, 1.1])
    f = gp.jit(power_loop, static_argnums=1, static_argnames="mode")
    with caplog.at_level(logging.DEBUG, logger="gpuprop.jit"):
        np.testing.assert_allclose(host(f(dev(a), 3)), np.sin(np.sin(np.sin(a))))
        np.testing.assert_allclose(host(f(dev(a), 3)), np.sin(np.sin(np.sin(a))))
        assert f.traces == 1
        np.testing.assert_allclose(host(f(dev(a), 2)), np.sin(np.sin(a)))
        np.testing.assert_allclose(host(f(dev(a), 2, mode="cos")), np.cos(np.cos(a)))
        # the static argument passed by name, and a static name passed by position
        np.testing.assert_allclose(host(f(dev(a), n=1, mode="cos")), np.cos(a))
    assert f.traces == 4
    assert [e.prim.name for e in f.lower(dev(a), 2, mode="cos").program.eqns] == ["cos"] * 2
    lines = retrace_lines(caplog)
    assert len(lines) == 3 and all("static" in m for m in lines), lines
    g = gp.jit(lambda x, mode: gnp.tanh(x) if mode == "tanh" else -x, static_argnames="mode")
    np.testing.assert_allclose(host(g(dev(a), "tanh")), np.tanh(a))
    np.testing.assert_allclose(host(g(dev(a), "neg")), -a)


def test_unhashable_static_argument_is_a_type_error():
    f = gp.jit(lambda x, shape: gnp.reshape(x, shape), static_argnums=1)
    np.testing.assert_allclose(host(f(dev(np.arange(6.0)), (2, 3))), np.arange(6.0).reshape(2, 3))
    with pytest.raises(TypeError, match="static argument 1 must be hashable.*list"):
        f(dev(np.arange(6.0)), [2, 3])
    g = gp.jit(lambda x, opts: x * opts["k"], static_argnames="opts")
    with pytest.raises(TypeError, match="hashable.*dict"):
        g(dev(np.ones(2)), opts={"k": 2})


@pytest.mark.parametrize("body", [
    lambda x: x if x > 0 else -x,
    lambda x: x * float(x),
    lambda x: x * int(gnp.sum(x)),
], ids=["if", "float", "int"])
def test_control_flow_on_a_traced_value_is_an_error(body):
    def weight_fn(weight):
        return body(weight)
    f = gp.jit(weight_fn)
    with pytest.raises(TracerControlFlowError) as info:
        f(dev(np.float64(0.5)))
    assert isinstance(info.value, TypeError)
    msg = str(info.value)
    assert "weight" in msg and "static_argnums" in msg
    # marked static it works (a Python float is static by value anyway)
    assert host(gp.jit(weight_fn)(0.5)) == pytest.approx(body(0.5))


# ---- buffers: reuse is planned, inputs are safe, outputs never alias ----------
def test_plan_memory_reuses_buffers_in_the_generated_code(monkeypatch):
    monkeypatch.setenv("GPUPROP_FUSION", "0")      # NumPy calls, not a fused kernel
    params = init_mlp([6, 10, 4])
    x, y = batch(8, 6, 4)
    jstep = gp.jit(sgd_step)
    jstep(params, x, y)
    compiled = jstep.lower(params, x, y)
    outs, dels = plan_memory(compiled.program, make_steps(compiled.program, None)[0])
    assert sum(b is not None for step in outs for b in step) >= 3
    src = compiled.source
    assert src.count("out=") >= 3 and "del " in src
    # no input is written (none donated): every out= names an intermediate
    assert "out=a" not in src


def test_outputs_of_consecutive_calls_do_not_alias():
    f = gp.jit(lambda x: (gnp.tanh(x) * 2.0, x + 1.0, gnp.exp(gnp.zeros(3))))
    a, b = np.array([0.1, 0.2, 0.3]), np.array([-1.0, 0.0, 2.0])
    r1 = f(dev(a))
    kept = tree_host(r1)
    r2 = f(dev(b))
    for k, e in zip(tree_host(r1), kept):
        np.testing.assert_array_equal(k, e)
    np.testing.assert_allclose(host(r2[0]), np.tanh(b) * 2.0)
    np.testing.assert_allclose(host(r2[1]), b + 1.0)
    # even a constant output is a fresh array on each call
    r1[2][0] = 5.0
    np.testing.assert_array_equal(host(f(dev(a))[2]), np.ones(3))


@pytest.mark.parametrize("fusion,count", [("0", 40), ("1", 6)], ids=["unfused", "fused"])
def test_random_programs_match_eager_and_keep_inputs(monkeypatch, backend_name, fusion, count):
    """Chains of ufuncs, views, reductions and matmuls: the planned buffer
    reuse (with and without donation), and the fused elementwise groups of
    the numpy backend, must never change a result."""
    if fusion == "1" and backend_name != "numpy":
        pytest.skip("CPU fusion runs on the numpy backend only")
    monkeypatch.setenv("GPUPROP_FUSION", fusion)
    rng = np.random.default_rng(11 + count)
    ops = [lambda x, y: x + y, lambda x, y: x * y - x, lambda x, y: gnp.tanh(x),
           lambda x, y: x.T, lambda x, y: x @ y,
           lambda x, y: gnp.sum(x, axis=0, keepdims=True) + y,
           lambda x, y: gnp.reshape(x, (-1,)).reshape((4, 4)),
           lambda x, y: gnp.sum(x[1:]) + y, lambda x, y: gnp.exp(-x * x)]
    for _ in range(count):
        n = int(rng.integers(3, 12))
        plan = [(int(rng.integers(len(ops))), int(rng.integers(i + 2)), int(rng.integers(i + 2)))
                for i in range(n)]
        nout = int(rng.integers(1, 4))

        def f(a, b, plan=plan, nout=nout):
            vals = [a, b]
            for k, i, j in plan:
                vals.append(ops[k](vals[i], vals[j]))
            return vals[-nout:]
        a, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
        with gp.use_backend("numpy"):
            expected = [np.asarray(e) for e in f(a, b)]      # eager, on the host
        for donate in [(), (0, 1)]:
            da, db = dev(a), dev(b)
            got = gp.jit(f, donate_argnums=donate)(da, db)
            for g, e in zip(got, expected):
                np.testing.assert_allclose(host(g), e, rtol=1e-12, atol=1e-12)
            if not donate:
                np.testing.assert_array_equal(host(da), a)
                np.testing.assert_array_equal(host(db), b)


def test_jitted_step_peak_memory_is_not_above_eager(backend_name):
    if backend_name != "numpy":
        pytest.skip("tracemalloc sees NumPy's allocations only on the numpy backend")
    params = init_mlp([256, 512, 512, 10], seed=12)
    x, y = batch(256, 256, 10, seed=13)
    jstep = gp.jit(sgd_step)
    jstep(params, x, y)                 # compile outside the measurement

    def peak(step):
        tracemalloc.start()
        try:
            out = step(params, x, y)
            return tracemalloc.get_traced_memory()[1], out
        finally:
            tracemalloc.stop()
    eager_peak, (pe, le) = peak(sgd_step)
    jit_peak, (pj, lj) = peak(jstep)
    np.testing.assert_allclose(lj, le, rtol=1e-5)
    assert_trees_close(pj, pe, rtol=1e-4, atol=1e-5)
    assert jit_peak <= eager_peak, (jit_peak, eager_peak)


# ---- threads ----------------------------------------------------------------
def test_calls_from_four_threads_at_once():
    f = gp.jit(lambda w, x: gnp.sum(gnp.tanh(x @ w) ** 2, axis=1))
    rng = np.random.default_rng(14)
    w = rng.standard_normal((5, 3))
    xs = [rng.standard_normal((7, 5)) for _ in range(4)]
    barrier = threading.Barrier(4)
    results, errors = [None] * 4, []

    def work(i, backend_name):
        try:
            with gp.use_backend(backend_name):      # the backend is per thread
                barrier.wait()
                for _ in range(20):
                    r = host(f(dev(w), dev(xs[i])))
                    np.testing.assert_allclose(r, np.sum(np.tanh(xs[i] @ w) ** 2, axis=1),
                                               rtol=1e-12)
                results[i] = r
        except BaseException as e:      # reported by the main thread
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i, gp.get_backend())) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(r is not None for r in results)
    assert f.traces == 1


def test_a_donated_buffer_passed_twice_is_refused():
    f = gp.jit(lambda a, b: a * 2.0 + b, donate_argnums=(0,))
    x = dev(np.ones(3))
    np.testing.assert_array_equal(host(f(dev(np.ones(3)), x)), [3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="donated"):
        f(x, x)


def test_a_read_only_donated_buffer_is_refused(backend_name):
    if backend_name != "numpy":
        pytest.skip("read-only views are a NumPy notion")
    f = gp.jit(lambda a: a * 2.0, donate_argnums=0)
    with pytest.raises(ValueError, match="read-only"):
        f(np.broadcast_to(np.ones(1), (3,)))


def test_simplify_removes_double_transposes_and_products_with_ones():
    x = dev(np.arange(6.0).reshape(2, 3))
    prog = gp.make_ir(lambda x: gnp.transpose(gnp.transpose(x) * gnp.ones((3, 2), np.float64))
                      + gnp.reshape(gnp.reshape(x, (3, 2)), (2, 3)))(x)
    names = [e.prim.name for e in prog.eqns]
    assert names == ["add"], str(prog)          # x + x: every view and product folded away
    np.testing.assert_array_equal(host(gp.jit(lambda x: gnp.transpose(gnp.transpose(x)) * 1.0)(x)),
                                  np.arange(6.0).reshape(2, 3))


def test_simplify_keeps_what_is_not_exact():
    x = dev(np.array([-0.0, 1.0]))
    prog = gp.make_ir(lambda x: x + 0.0)(x)
    assert [e.prim.name for e in prog.eqns] == ["add"]      # -0.0 + 0.0 is +0.0
    assert np.signbit(host(gp.jit(lambda x: x + 0.0)(x))[0]) == np.signbit(-0.0 + 0.0)
    twos = gp.make_ir(lambda x: x * gnp.full((2,), 2.0, np.float64))(x)
    assert [e.prim.name for e in twos.eqns] == ["multiply"]
