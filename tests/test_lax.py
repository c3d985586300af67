"""gpuprop.lax against the Python loop or branch each construct replaces:
values (eager, jit), reverse and forward derivatives (check_grads, order 2),
vmap (batched operands, batched predicates and indices), one equation in the
staged program whatever the trip count, and the errors."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop import lax
from gpuprop.testing import check_grads
from support import dev, host

X = np.array([0.3, -1.2, 2.0])
W = np.array([[0.5, -0.3, 0.1], [0.2, 0.4, -0.6], [-0.1, 0.3, 0.2]])


def close(a, b, rtol=1e-12):
    for x, y in zip(gp.tree_leaves(a), gp.tree_leaves(b)):
        np.testing.assert_allclose(host(x), host(y), rtol=rtol, atol=1e-13)


def both(f, *args):
    """f eagerly (plain Python control flow) and jitted (the primitives)."""
    return f(*args), gp.jit(f)(*args)


# ---- scan ---------------------------------------------------------------------------------
def rnn(w, xs, h0):
    def step(h, x):
        h = gnp.tanh(h @ w + x)
        return h, gnp.sum(h * h)
    return lax.scan(step, h0, xs)


def rnn_loop(w, xs, h0):
    h, ys = h0, []
    for t in range(xs.shape[0]):
        h = gnp.tanh(h @ w + xs[t])
        ys.append(gnp.sum(h * h))
    return h, gnp.stack(ys)


def rnn_data(n=5):
    rng = np.random.default_rng(0)
    return dev(W), dev(rng.standard_normal((n, 3))), dev(rng.standard_normal(3) * 0.1)


def test_scan_values_eager_and_jitted():
    args = rnn_data()
    for got in both(rnn, *args):
        close(got, rnn_loop(*args))


def test_scan_derivatives_both_modes_second_order():
    w, xs, h0 = rnn_data(4)
    loss = lambda w, xs, h0: (lambda r: gnp.sum(r[0]) + gnp.sum(r[1] ** 2))(rnn(w, xs, h0))  # noqa
    want = lambda w, xs, h0: (lambda r: gnp.sum(r[0]) + gnp.sum(r[1] ** 2))(rnn_loop(w, xs, h0))  # noqa
    close(gp.grad(loss, (0, 1, 2))(w, xs, h0), gp.grad(want, (0, 1, 2))(w, xs, h0))
    close(gp.jit(gp.grad(loss, (0, 1, 2)))(w, xs, h0), gp.grad(want, (0, 1, 2))(w, xs, h0))
    check_grads(loss, (host(w), host(xs), host(h0)), order=2)


def test_scan_reverse_pytrees_integer_carry_and_no_xs():
    def f(c, x):
        k, s = c
        return (k + 1, s * 0.5 + x["a"] * k), {"twice": x["a"] * 2.0, "k": k}
    xs = {"a": dev(np.arange(4.0))}
    init = (dev(np.int32(0)), dev(np.float64(1.0)))
    for rev in (False, True):
        eager = lax.scan(f, init, xs, reverse=rev)
        staged = gp.jit(lambda i, x: lax.scan(f, i, x, reverse=rev))(init, xs)
        close(staged, eager)
    g = gp.grad(lambda a: lax.scan(f, init, {"a": a})[0][1])(xs["a"])
    check_grads(lambda a: lax.scan(f, init, {"a": a})[0][1], (host(xs["a"]),), order=2)
    assert host(g).shape == (4,)
    counted = gp.jit(lambda: lax.scan(lambda c, _: (c + 1.0, c), 0.0, None, length=3))()
    close(counted, (3.0, np.array([0.0, 1.0, 2.0])))


def test_scan_is_one_equation_whatever_the_length():
    sizes = []
    for n in (3, 50):
        w, xs, h0 = rnn_data(n)
        loss = lambda w, xs, h0: gnp.sum(rnn(w, xs, h0)[1])   # noqa: E731
        prog = gp.jit(gp.grad(loss)).lower(w, xs, h0).program
        sizes.append(len(prog.eqns))
    assert sizes[0] == sizes[1] < 20, sizes


def test_scan_under_vmap():
    w, xs, h0 = rnn_data()
    batch = dev(np.stack([host(xs), 2 * host(xs)]))
    got = gp.vmap(lambda x: rnn(w, x, h0))(batch)
    want = [rnn_loop(w, batch[i], h0) for i in range(2)]
    close(got[0], gnp.stack([want[0][0], want[1][0]]))
    close(got[1], gnp.stack([want[0][1], want[1][1]]))
    per = gp.vmap(gp.grad(lambda w, x: gnp.sum(rnn(w, x, h0)[1])), (None, 0))(w, batch)
    loop = gnp.stack([gp.grad(lambda w: gnp.sum(rnn_loop(w, batch[i], h0)[1]))(w)
                      for i in range(2)])
    close(per, loop)


def test_scan_captures_values_of_enclosing_transforms():
    # the closed-over scale is a grad tracer: it becomes an operand of the scan
    def f(scale):
        return lax.scan(lambda c, x: (c * scale + x, None), 0.0, dev(np.arange(3.0)))[0]
    # c = ((0 s + 0) s + 1) s + 2 = s + 2: derivative 1
    close(gp.grad(f)(dev(np.float64(2.0))), 1.0)
    close(gp.grad(gp.grad(lambda s: f(s) * s))(dev(np.float64(3.0))), 2.0)


# ---- cond and switch --------------------------------------------------------------------
def branchy(x, p):
    return lax.cond(p > 0, lambda y: gnp.sin(y) * 2.0, lambda y: gnp.exp(y), x)


@pytest.mark.parametrize("p", [1.0, -1.0])
def test_cond_values_and_derivatives(p):
    x = dev(X)
    want = np.sin(X) * 2 if p > 0 else np.exp(X)
    for got in both(branchy, x, p):
        close(got, want)
    check_grads(lambda x: branchy(x, p), (X,), order=2)
    close(gp.jit(gp.grad(lambda x, p: gnp.sum(branchy(x, p))))(x, p),
          gp.grad(lambda x: gnp.sum(gnp.sin(x) * 2.0 if p > 0 else gnp.exp(x)))(x))


@pytest.mark.parametrize("i", [-1, 0, 1, 2, 7])
def test_switch_clamps_its_index_and_differentiates_captured_values(i):
    def f(x, w, i):
        return lax.switch(i, [lambda y: y * w, lambda y: y ** 2, lambda y: gnp.tanh(y) + w], x)
    w = dev(np.float64(1.5))
    want = [X * 1.5, X ** 2, np.tanh(X) + 1.5][min(max(i, 0), 2)]
    for got in both(f, dev(X), w, i):
        close(got, want)
    check_grads(lambda x, w: f(x, w, i), (X, 1.5), order=2)


def test_cond_with_a_batched_predicate_selects_per_example():
    got = gp.vmap(lambda x: lax.cond(x > 0, lambda y: y * 2.0, lambda y: -y, x))(dev(X))
    close(got, np.where(X > 0, 2 * X, -X))
    idx = dev(np.array([0, 1, 2]))
    got = gp.vmap(lambda x, i: lax.switch(i, [lambda y: y, lambda y: y * 10.0,
                                               lambda y: -y], x))(dev(X), idx)
    close(got, np.array([X[0], 10 * X[1], -X[2]]))
    # an unbatched predicate keeps one branch for the whole batch
    close(gp.vmap(lambda x: lax.cond(True, lambda y: y + 1.0, lambda y: y, x))(dev(X)), X + 1)


def test_branches_must_agree():
    with pytest.raises(TypeError, match=r"lax.cond: false_fun gives f64\[\] .* but true_fun "
                                        r"gives f64\[3\]"):
        gp.jit(lambda x: lax.cond(x[0] > 0, lambda y: y, lambda y: gnp.sum(y), x))(dev(X))
    with pytest.raises(TypeError, match=r"lax.scan: the initial carry gives f32\[\] .* but "
                                        r"the carry f returns gives f64\[\]"):
        gp.jit(lambda x: lax.scan(lambda c, y: (c + y, None), np.float32(0), x))(dev(X))


# ---- while_loop and fori_loop ---------------------------------------------------------
def grow(x):
    return lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.1 + gnp.sin(c[1])),
                          (0, x))[1]


def grow_loop(x):
    for _ in range(5):
        x = x * 1.1 + gnp.sin(x)
    return x


def test_while_loop_values_forward_mode_and_no_reverse_mode():
    for got in both(grow, dev(X)):
        close(got, grow_loop(dev(X)))
    jit_grow = gp.jit(grow)
    close(gp.jvp(jit_grow, (dev(X),), (dev(np.ones(3)),))[1],
          gp.jvp(grow_loop, (dev(X),), (dev(np.ones(3)),))[1])
    check_grads(jit_grow, (X,), order=2, modes=("fwd",))
    with pytest.raises(TypeError, match="not reverse-mode differentiable.*fori_loop.*scan"):
        gp.grad(lambda x: gnp.sum(jit_grow(x)))(dev(X))


def test_while_loop_under_vmap_runs_each_example_its_own_trips():
    f = lambda n, x: lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 2.0),  # noqa
                                    (0, x))[1]
    close(gp.vmap(f)(dev(np.array([1, 2, 3])), dev(X)), X * np.array([2.0, 4.0, 8.0]))
    with pytest.raises(TypeError, match="boolean scalar"):
        gp.jit(lambda x: lax.while_loop(lambda c: c, lambda c: c, x))(dev(X))


def test_fori_loop_static_bounds_differentiate_in_reverse_mode():
    f = lambda x: lax.fori_loop(1, 5, lambda i, v: v * 1.5 + i * gnp.sin(v), x)  # noqa: E731

    def loop(x):
        for i in range(1, 5):
            x = x * 1.5 + i * gnp.sin(x)
        return x
    for got in both(f, dev(X)):
        close(got, loop(dev(X)))
    close(gp.grad(lambda x: gnp.sum(gp.jit(f)(x)))(dev(X)), gp.grad(lambda x: gnp.sum(loop(x)))(dev(X)))
    check_grads(gp.jit(f), (X,), order=2)
    # traced bounds: a while_loop
    g = gp.jit(lambda x, n: lax.fori_loop(0, n, lambda i, v: v + i, x))
    close(g(dev(X), dev(np.int32(4))), X + 6)
