"""Forward mode: jvp, linearize, jacfwd, hessian (forward over reverse),
custom_jvp, float0 tangents, keyword arguments, nesting with reverse mode and
jit, the errors, and check_grads' own power to fail.

Every value is compared with an analytic formula or with reverse mode, whose
derivatives the rest of the suite checks against finite differences.
(Each primitive's JVP is checked by the family tests: their check_grads runs
both modes, and at order 2 forward over forward, forward over reverse and
reverse over forward.)"""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import dev, host

X = np.array([-0.9, -0.2, 0.3, 0.7, 1.4])
V = np.array([0.5, -1.0, 2.0, 0.25, -0.75])


def f(x):
    return gnp.sin(x) * gnp.exp(x)


def df(x):      # d/dx sin(x) e^x
    return (np.cos(x) + np.sin(x)) * np.exp(x)


def test_jvp_values_and_tangent():
    out, t = gp.jvp(f, (dev(X),), (dev(V),))
    np.testing.assert_allclose(host(out), np.sin(X) * np.exp(X), rtol=1e-14)
    np.testing.assert_allclose(host(t), df(X) * V, rtol=1e-13)


def test_jvp_of_pytrees_and_several_arguments():
    def loss(p, x):
        return gnp.sum(gnp.tanh(x @ p["w"] + p["b"]) ** 2)
    rng = np.random.default_rng(0)
    p = {"w": dev(rng.standard_normal((3, 2))), "b": dev(rng.standard_normal(2))}
    tp = {"w": dev(rng.standard_normal((3, 2))), "b": dev(rng.standard_normal(2))}
    x, tx = dev(rng.standard_normal((4, 3))), dev(rng.standard_normal((4, 3)))
    _, t = gp.jvp(loss, (p, x), (tp, tx))
    gp_, gx = gp.grad(loss, (0, 1))(p, x)
    want = sum(np.sum(host(a) * host(b)) for a, b in
               zip(gp.tree_leaves((gp_, gx)), gp.tree_leaves((tp, tx))))
    np.testing.assert_allclose(host(t), want, rtol=1e-12)


def test_outputs_without_dependence_get_zero_tangents():
    out, t = gp.jvp(lambda x: (x * 2.0, gnp.ones(3), 7), (dev(X),), (dev(V),))
    np.testing.assert_allclose(host(t[0]), 2 * V)
    np.testing.assert_array_equal(host(t[1]), np.zeros(3))
    assert t[2].dtype == gp.float0 and t[2].shape == ()


def test_integer_inputs_take_float0_tangents():
    n = np.int64(3)
    out, t = gp.jvp(lambda x, n: x * n, (dev(X), n), (dev(V), np.zeros((), gp.float0)))
    np.testing.assert_allclose(host(t), 3 * V)
    with pytest.raises(TypeError, match=r"jvp\(<lambda>\): primals\[1\] has dtype int64 .* "
                                        r"tangent has dtype float64 .*gpuprop.float0"):
        gp.jvp(lambda x, n: x * n, (dev(X), n), (dev(V), 0.0))


@pytest.mark.parametrize("tangent,error,match", [
    (np.ones(4), ValueError, r"jvp\(f\): primals\[0\] has shape \(5,\) and dtype float64, "
                             r"its tangent has shape \(4,\) and dtype float64"),
    (np.ones(5, np.float32), TypeError, r"primals\[0\] has dtype float64 .* its tangent has "
                                        r"dtype float32 .* pass a tangent of dtype float64"),
])
def test_tangent_mismatches_name_the_argument_shapes_and_dtypes(tangent, error, match):
    with pytest.raises(error, match=match):
        gp.jvp(f, (dev(X),), (dev(tangent),))


def test_structure_and_arity_mismatches():
    with pytest.raises(ValueError, match=r"primals\[0\] has structure"):
        gp.jvp(lambda p: p["a"], ({"a": dev(X)},), ({"b": dev(X)},))
    with pytest.raises(ValueError, match="1 primal.* but 2 tangent"):
        gp.jvp(f, (dev(X),), (dev(V), dev(V)))
    with pytest.raises(TypeError, match="must be tuples"):
        gp.jvp(f, dev(X), dev(V))


def test_has_aux_and_keyword_arguments_pass_through():
    def g(x, scale=1.0):
        return gnp.sum(f(x)) * scale, {"peak": gnp.max(x)}
    out, t, aux = gp.jvp(g, (dev(X),), (dev(V),), has_aux=True, scale=2.0)
    np.testing.assert_allclose(host(t), 2 * np.sum(df(X) * V), rtol=1e-13)
    assert host(aux["peak"]) == X.max()
    # grad, value_and_grad and vjp take keyword arguments too, undifferentiated
    h = lambda x, scale: gnp.sum(f(x)) * scale    # noqa: E731
    np.testing.assert_allclose(host(gp.grad(h)(dev(X), scale=3.0)), 3 * df(X), rtol=1e-13)
    (v, g_) = gp.value_and_grad(h)(dev(X), scale=3.0)
    np.testing.assert_allclose(host(g_), 3 * df(X), rtol=1e-13)
    _, back = gp.vjp(h, dev(X), scale=3.0)
    np.testing.assert_allclose(host(back(1.0)[0]), 3 * df(X), rtol=1e-13)


# ---- nesting ----------------------------------------------------------------------
def test_no_perturbation_confusion_in_forward_mode():
    # d/dx [x * d/dy (x + y)] = 1: the inner tangent must not leak into the outer
    inner = lambda x: gp.jvp(lambda y: x + y, (dev(np.float64(1.0)),),   # noqa: E731
                             (dev(np.float64(1.0)),))[1]
    _, t = gp.jvp(lambda x: x * inner(x), (dev(np.float64(2.0)),), (dev(np.float64(1.0)),))
    assert host(t) == 1.0
    # nested jvp: d2/dx2 of x^3 at 2 is 12
    d1 = lambda x: gp.jvp(lambda y: y ** 3, (x,), (gnp.ones_like(x),))[1]    # noqa: E731
    assert host(gp.jvp(d1, (dev(np.float64(2.0)),), (dev(np.float64(1.0)),))[1]) == 12.0


def test_forward_over_reverse_and_reverse_over_forward():
    loss = lambda x: gnp.sum(f(x) ** 2)                 # noqa: E731
    hess = host(gp.jacrev(gp.grad(loss))(dev(X)))       # reverse over reverse
    _, hv = gp.jvp(gp.grad(loss), (dev(X),), (dev(V),))
    np.testing.assert_allclose(host(hv), hess @ V, rtol=1e-12)
    rof = gp.grad(lambda x: gp.jvp(loss, (x,), (dev(V),))[1])(dev(X))
    np.testing.assert_allclose(host(rof), hess @ V, rtol=1e-12)


def test_jacfwd_equals_jacrev_on_pytrees_and_argnums():
    def g(a, b):
        return {"s": gnp.sin(a) * b[0], "m": a[:2] * b}
    a, b = dev(X), dev(np.array([0.3, -1.2]))
    fwd, rev = gp.jacfwd(g, (0, 1))(a, b), gp.jacrev(g, (0, 1))(a, b)
    assert gp.tree_structure(fwd) == gp.tree_structure(rev)
    for x, y in zip(gp.tree_leaves(fwd), gp.tree_leaves(rev)):
        assert x.shape == y.shape
        np.testing.assert_allclose(host(x), host(y), rtol=1e-13, atol=1e-15)
    assert gp.jacobian is gp.jacrev
    jac, aux = gp.jacfwd(lambda x: (f(x), x.sum()), has_aux=True)(dev(X))
    np.testing.assert_allclose(host(jac), np.diag(df(X)), rtol=1e-13)
    assert host(aux) == X.sum()


def test_hessian_is_forward_over_reverse():
    loss = lambda x: gnp.sum(gnp.sin(x) * x ** 3)       # noqa: E731
    want = np.diag(-np.sin(X) * X ** 3 + 6 * np.cos(X) * X ** 2 + 6 * np.sin(X) * X)
    np.testing.assert_allclose(host(gp.hessian(loss)(dev(X))), want, rtol=1e-12, atol=1e-14)



def test_custom_vjp_under_forward_mode():
    sq = gp.custom_vjp(lambda x: x * x)
    sq.defvjp(lambda x: (x * x, x), lambda x, g: (2.5 * x * g,))   # a rule of its own
    # forward over reverse differentiates the backward rule: 2.5 on the diagonal
    np.testing.assert_allclose(host(gp.hessian(lambda x: gnp.sum(sq(x)))(dev(X))),
                               2.5 * np.eye(5))
    # forward mode on the function itself has no rule to use: an error, as in JAX
    with pytest.raises(TypeError, match="custom_vjp function, .* forward mode"):
        gp.jvp(sq, (dev(X),), (dev(V),))


# ---- linearize ----------------------------------------------------------------------
def test_linearize_runs_f_once_and_replays_the_tangent_map():
    calls = []

    def g(w, x):
        calls.append(1)
        return gnp.tanh(x @ w) * 2.0
    rng = np.random.default_rng(1)
    w, x = dev(rng.standard_normal((3, 2))), dev(rng.standard_normal((4, 3)))
    out, g_jvp = gp.linearize(g, w, x)
    assert len(calls) == 1
    tangents = [(dev(r.standard_normal((3, 2))), dev(r.standard_normal((4, 3))))
                for r in map(np.random.default_rng, (2, 3, 4))]
    got = [g_jvp(tw, tx) for tw, tx in tangents]
    assert len(calls) == 1          # g_jvp never runs g
    np.testing.assert_allclose(host(out), host(g(w, x)), rtol=1e-14)
    for (tw, tx), t in zip(tangents, got):
        np.testing.assert_allclose(host(t), host(gp.jvp(g, (w, x), (tw, tx))[1]), rtol=1e-13)
    with pytest.raises(ValueError, match=r"linearize\(g\): primal leaf 0 has shape \(3, 2\)"):
        g_jvp(dev(np.ones((2, 2))), tx)


# ---- custom_jvp --------------------------------------------------------------------
@gp.custom_jvp
def softclip(x, lim):
    return lim * gnp.tanh(x / lim)


@softclip.defjvp
def _softclip_jvp(primals, tangents):
    x, lim = primals
    dx, dlim = tangents
    y = softclip(x, lim)
    s = 1 - gnp.tanh(x / lim) ** 2
    return y, s * dx + (y / lim - s * x / lim) * dlim


def test_custom_jvp_rule_is_used_in_both_modes():
    x, lim = dev(X), dev(np.full(5, 1.5))
    _, t = gp.jvp(softclip, (x, lim), (dev(V), dev(np.zeros(5))))
    np.testing.assert_allclose(host(t), (1 - np.tanh(X / 1.5) ** 2) * V, rtol=1e-13)
    check_grads(softclip, (X, np.full(5, 1.5)), order=2)


def test_custom_jvp_rule_replaces_the_function_derivative():
    @gp.custom_jvp
    def g(x):
        return gnp.sin(x)

    @g.defjvp
    def _(primals, tangents):       # deliberately not sin's derivative
        return g(*primals), 3.0 * tangents[0]
    assert host(gp.jvp(g, (dev(X),), (dev(V),))[1]).tolist() == (3 * V).tolist()
    assert host(gp.grad(lambda x: gnp.sum(g(x)))(dev(X))).tolist() == [3.0] * 5
    with pytest.raises(TypeError, match="defjvp first"):
        gp.custom_jvp(gnp.sin)(dev(X))


# ---- jit ------------------------------------------------------------------------------
def test_jit_of_jvp_is_one_program_and_jvp_of_jit_inlines():
    jf = gp.jit(lambda x, v: gp.jvp(f, (x,), (v,)))
    out, t = jf(dev(X), dev(V))
    np.testing.assert_allclose(host(t), df(X) * V, rtol=1e-13)
    prims = {e.prim.name for e in jf.lower(dev(X), dev(V)).program.eqns}
    assert {"sin", "cos", "exp"} <= prims
    _, t2 = gp.jvp(gp.jit(f), (dev(X),), (dev(V),))
    np.testing.assert_allclose(host(t2), df(X) * V, rtol=1e-13)


# ---- check_grads can fail -----------------------------------------------------------------
def _cube_with(bwd):
    c = gp.custom_vjp(lambda x: x ** 3)
    c.defvjp(lambda x: (x ** 3, x), bwd)
    return c


def test_check_grads_catches_a_backward_rule_wrong_in_its_cotangent():
    # right values, but differentiated as if the cotangent were a constant: a
    # second-order check that moves only x (as check_grads once did) misses it
    bad = _cube_with(lambda x, g: (3 * x * x * gnp.stop_gradient(g),))
    check_grads(bad, (X,), order=1, modes=("rev",))
    with pytest.raises(AssertionError, match="order 1"):
        check_grads(bad, (X,), order=2, modes=("rev",))
    check_grads(_cube_with(lambda x, g: (3 * x * x * g,)), (X,), order=2, modes=("rev",))


def test_check_grads_catches_a_wrong_forward_rule():
    @gp.custom_jvp
    def g(x):
        return x ** 3

    @g.defjvp
    def _(primals, tangents):
        return g(*primals), 3.1 * primals[0] ** 2 * tangents[0]
    with pytest.raises(AssertionError, match="forward mode"):
        check_grads(g, (X,), order=1, modes=("fwd",))
    with pytest.raises(ValueError, match="modes"):
        check_grads(f, (X,), modes=("sideways",))
