"""Each optimizer against its update rule written out in NumPy over a few steps."""
import numpy as np
import pytest

import gpuprop as gp
from gpuprop import optim
from support import assert_same_trees, dev, host

SHAPES = {"w": (3, 2), "b": (2,)}
RNG = np.random.default_rng(42)
P0 = {k: RNG.standard_normal(s) for k, s in SHAPES.items()}
GRADS = [{k: RNG.standard_normal(s) for k, s in SHAPES.items()} for _ in range(4)]
TOL = dict(rtol=1e-12, atol=1e-14)      # float64 steps against the rule by hand


def run(opt, dtype=np.float64, jit=False):
    """Four updates with the fixed gradients; the parameters after each, on the host."""
    params = {k: dev(v, dtype) for k, v in P0.items()}
    state = opt.init(params)

    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    step = gp.jit(step) if jit else step
    out = []
    for g in GRADS:
        params, state = step(params, state, {k: dev(v, dtype) for k, v in g.items()})
        out.append(host(params))
    return out


def reference(update_leaf, state0):
    """The same four steps by hand: update_leaf(p, g, state, t) -> (p, state)."""
    params = {k: v.copy() for k, v in P0.items()}
    states = {k: state0(v) for k, v in P0.items()}
    out = []
    for t, g in enumerate(GRADS, start=1):
        for k in params:
            params[k], states[k] = update_leaf(params[k], g[k], states[k], t)
        out.append({k: v.copy() for k, v in params.items()})
    return out


def test_sgd():
    want = reference(lambda p, g, s, t: (p - 0.1 * g, s), lambda p: None)
    assert_same_trees(run(optim.sgd(0.1)), want, **TOL)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov):
    def rule(p, g, buf, t):
        buf = 0.9 * buf + g
        step = g + 0.9 * buf if nesterov else buf
        return p - 0.05 * step, buf
    want = reference(rule, np.zeros_like)
    assert_same_trees(run(optim.sgd(0.05, momentum=0.9, nesterov=nesterov)), want, **TOL)


def adam_rule(lr, b1, b2, eps, wd=0.0):
    def rule(p, g, s, t):
        m, v = s
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        return p - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * p), (m, v)
    return rule


def test_adam():
    want = reference(adam_rule(1e-2, 0.9, 0.999, 1e-8), lambda p: (0 * p, 0 * p))
    assert_same_trees(run(optim.adam(1e-2)), want, **TOL)


def test_adam_custom_betas_jitted():
    want = reference(adam_rule(3e-2, 0.8, 0.99, 1e-6), lambda p: (0 * p, 0 * p))
    assert_same_trees(run(optim.adam(3e-2, b1=0.8, b2=0.99, eps=1e-6), jit=True), want, **TOL)


def test_adamw():
    want = reference(adam_rule(1e-2, 0.9, 0.999, 1e-8, wd=0.1), lambda p: (0 * p, 0 * p))
    assert_same_trees(run(optim.adamw(1e-2, weight_decay=0.1)), want, **TOL)


def test_rmsprop():
    def rule(p, g, v, t):
        v = 0.9 * v + 0.1 * g * g
        return p - 0.01 * g / (np.sqrt(v) + 1e-8), v
    assert_same_trees(run(optim.rmsprop(0.01)), reference(rule, np.zeros_like), **TOL)


def test_rmsprop_centered_momentum():
    def rule(p, g, s, t):
        v, mg, buf = s
        v = 0.9 * v + 0.1 * g * g
        mg = 0.9 * mg + 0.1 * g
        buf = 0.5 * buf + g / (np.sqrt(v - mg * mg) + 1e-8)
        return p - 0.01 * buf, (v, mg, buf)
    want = reference(rule, lambda p: (0 * p, 0 * p, 0 * p))
    assert_same_trees(run(optim.rmsprop(0.01, centered=True, momentum=0.5)), want, rtol=1e-10, atol=1e-14)


def test_clip_by_global_norm():
    def rule(p, g, s, t):
        norm = np.sqrt(sum(np.sum(GRADS[t - 1][k] ** 2) for k in SHAPES))
        return p - 0.1 * g * min(1.0, 1.5 / norm), s
    opt = optim.chain(optim.clip_by_global_norm(1.5), optim.sgd(0.1))
    assert_same_trees(run(opt), reference(rule, lambda p: None), **TOL)
    # under the threshold nothing changes
    loose = optim.chain(optim.clip_by_global_norm(1e6), optim.sgd(0.1))
    assert_same_trees(run(loose), run(optim.sgd(0.1)), **TOL)


def test_float32_stays_float32():
    got = run(optim.adam(1e-2, b1=0.8), dtype=np.float32, jit=True)
    want = reference(adam_rule(1e-2, 0.8, 0.999, 1e-8), lambda p: (0 * p, 0 * p))
    assert all(v.dtype == np.float32 for step in got for v in step.values())
    assert_same_trees(got, want, rtol=2e-5, atol=1e-14, same_dtype=False)


def test_state_is_a_pytree_of_arrays_with_a_step_count():
    opt = optim.adam(1e-3)
    state = opt.init({"w": dev(np.zeros((2, 2), np.float32))})
    leaves = gp.tree_leaves(state)
    assert all(hasattr(x, "shape") for x in leaves)
    count = state[0].count
    assert host(count).dtype == np.int32 and host(count) == 0
    _, state = opt.update({"w": dev(np.ones((2, 2), np.float32))}, state)
    assert host(state[0].count) == 1


# ---- schedules --------------------------------------------------------------
def values(schedule, counts):
    return np.array([float(host(schedule(dev(np.int32(c))))) for c in counts])


def test_schedules_by_hand():
    c = np.arange(0, 25)
    np.testing.assert_allclose(values(optim.constant_schedule(0.3), c), 0.3, rtol=1e-7)
    np.testing.assert_allclose(values(optim.step_schedule(1.0, 10, 0.5), c),
                               0.5 ** (c // 10), rtol=1e-6)
    np.testing.assert_allclose(values(optim.cosine_decay_schedule(2.0, 20, alpha=0.1), c),
                               2.0 * (0.9 * 0.5 * (1 + np.cos(np.pi * np.minimum(c, 20) / 20))
                                      + 0.1), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(values(optim.linear_schedule(1.0, 0.0, 10), c),
                               1.0 - np.minimum(c, 10) / 10, atol=1e-7)
    np.testing.assert_allclose(values(optim.linear_warmup(0.5, 5), c),
                               0.5 * np.minimum(c, 5) / 5, rtol=1e-6)
    wc = optim.warmup_cosine_decay_schedule(0.0, 1.0, 5, 25, end_value=0.1)
    want = np.where(c < 5, c / 5, 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (c - 5) / 20)))
    np.testing.assert_allclose(values(wc, c), want, rtol=1e-6, atol=1e-7)


def test_schedule_as_learning_rate():
    lrs = [0.1, 0.1, 0.01, 0.01]            # step_schedule(0.1, 2, 0.1) at counts 0..3

    def rule(p, g, s, t):
        return p - np.float32(lrs[t - 1]) * g, s
    got = run(optim.sgd(optim.step_schedule(0.1, 2, 0.1)), jit=True)
    assert_same_trees(got, reference(rule, lambda p: None), rtol=1e-7, atol=1e-14)


# ---- errors -----------------------------------------------------------------
def test_errors_name_the_problem():
    with pytest.raises(TypeError, match="chain: argument 0.*adam\\(1e-3\\)"):
        optim.chain(optim.adam)
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        optim.sgd(0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning_rate must be a non-negative number"):
        optim.adam(-1.0)
    with pytest.raises(ValueError, match="b1 must be a number in \\[0, 1\\)"):
        optim.adam(1e-3, b1=1.0)
    with pytest.raises(ValueError, match="max_norm must be a positive number"):
        optim.clip_by_global_norm(0)
    with pytest.raises(ValueError, match="decay_steps must be a positive integer"):
        optim.cosine_decay_schedule(0.1, 0)
    with pytest.raises(ValueError, match="add_decayed_weights: update needs params"):
        opt = optim.adamw(1e-3)
        p = {"w": dev(np.ones(2, np.float32))}
        opt.update(p, opt.init(p))
