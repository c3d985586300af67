"""Optimizers in the style of optax: pure `init`/`update` pairs over pytrees.

    opt = adam(1e-3)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)

An optimizer is a `GradientTransformation`; `chain` composes them, each
turning the updates of the one before into its own.  States are pytrees of
arrays (step counts are int32 arrays), so a jitted training step can carry
them.  Updates are what gets *added* to the parameters (the learning rate's
minus sign is in them).  A learning rate is a number or a schedule, a
function from the step count (an int32 array, 0 for the first update) to
a float32 array: constant, step, cosine, linear, warmup, join.
"""
from typing import Callable, NamedTuple

import numpy as np

from . import numpy as gnp
from .tree import tree_leaves, tree_map


class GradientTransformation(NamedTuple):
    """init(params) -> state; update(updates, state, params=None) -> (updates, state)."""
    init: Callable
    update: Callable


class EmptyState(NamedTuple):
    pass


class ScaleByScheduleState(NamedTuple):
    count: object


class TraceState(NamedTuple):
    trace: object


class ScaleByAdamState(NamedTuple):
    count: object
    mu: object
    nu: object


class ScaleByRmsState(NamedTuple):
    nu: object
    mg: object          # running mean of the gradient (centered); else None


def _count():
    return gnp.zeros((), np.int32)


def _zeros_like_tree(params):
    return tree_map(gnp.zeros_like, params)


def _check(name, arg, value, ok, must):
    if not ok:
        raise ValueError(f"{name}: {arg} must be {must}, got {value!r}")


def _check_rate(name, arg, value):
    if callable(value):
        return
    _check(name, arg, value, isinstance(value, (int, float, np.floating, np.integer))
           and np.isfinite(value) and value >= 0,
           "a non-negative number or a schedule (a function of the step count)")


def _check_unit(name, arg, value):
    _check(name, arg, value, isinstance(value, (int, float)) and 0 <= value < 1,
           "a number in [0, 1)")


# ---- building blocks --------------------------------------------------------
def scale(step_size):
    """updates * step_size."""
    return GradientTransformation(
        lambda params: EmptyState(),
        lambda updates, state, params=None: (
            tree_map(lambda u: gnp.multiply(u, step_size), updates), state))


def scale_by_learning_rate(learning_rate):
    """updates * -learning_rate; a schedule is evaluated at the step count."""
    _check_rate("scale_by_learning_rate", "learning_rate", learning_rate)
    if not callable(learning_rate):
        return scale(-float(learning_rate))

    def update(updates, state, params=None):
        lr = gnp.negative(learning_rate(state.count))
        updates = tree_map(lambda u: gnp.multiply(u, gnp.astype(lr, u.dtype)), updates)
        return updates, ScaleByScheduleState(gnp.add(state.count, 1))

    return GradientTransformation(lambda params: ScaleByScheduleState(_count()), update)


def trace(decay, nesterov=False):
    """Momentum: t = g + decay t; the update is t, or g + decay t (Nesterov)."""
    _check_unit("trace", "decay", decay)

    def update(updates, state, params=None):
        t = tree_map(lambda g, t: gnp.add(g, gnp.multiply(decay, t)), updates, state.trace)
        out = tree_map(lambda g, t: gnp.add(g, gnp.multiply(decay, t)), updates, t) \
            if nesterov else t
        return out, TraceState(t)

    return GradientTransformation(lambda params: TraceState(_zeros_like_tree(params)), update)


def _moment(decay, power):
    """m -> decay m + (1 - decay) g**power, leafwise."""
    def f(g, m):
        gp_ = g if power == 1 else gnp.multiply(g, g)
        return gnp.add(gnp.multiply(decay, m), gnp.multiply(1 - decay, gp_))
    return f


def scale_by_adam(b1=0.9, b2=0.999, eps=1e-8):
    """Adam's direction: m_hat / (sqrt(v_hat) + eps) with bias-corrected moments."""
    _check_unit("scale_by_adam", "b1", b1)
    _check_unit("scale_by_adam", "b2", b2)

    def update(updates, state, params=None):
        count = gnp.add(state.count, 1)
        mu = tree_map(_moment(b1, 1), updates, state.mu)
        nu = tree_map(_moment(b2, 2), updates, state.nu)

        def direction(m, v):
            t = gnp.astype(count, m.dtype)       # bias corrections in the leaf's dtype
            m_hat = gnp.divide(m, gnp.subtract(1, gnp.power(b1, t)))
            v_hat = gnp.divide(v, gnp.subtract(1, gnp.power(b2, t)))
            return gnp.divide(m_hat, gnp.add(gnp.sqrt(v_hat), eps))

        return tree_map(direction, mu, nu), ScaleByAdamState(count, mu, nu)

    return GradientTransformation(
        lambda params: ScaleByAdamState(_count(), _zeros_like_tree(params),
                                        _zeros_like_tree(params)), update)


def scale_by_rms(decay=0.9, eps=1e-8, centered=False):
    """RMSprop's direction: g / (sqrt(v) + eps) with v = decay v + (1 - decay) g^2
    (v - mean(g)^2 when centered), v starting at 0 (as PyTorch)."""
    _check_unit("scale_by_rms", "decay", decay)

    def update(updates, state, params=None):
        nu = tree_map(_moment(decay, 2), updates, state.nu)
        if centered:
            mg = tree_map(_moment(decay, 1), updates, state.mg)
            var = tree_map(lambda v, m: gnp.subtract(v, gnp.multiply(m, m)), nu, mg)
        else:
            mg, var = None, nu
        out = tree_map(lambda g, v: gnp.divide(g, gnp.add(gnp.sqrt(v), eps)), updates, var)
        return out, ScaleByRmsState(nu, mg)

    return GradientTransformation(
        lambda params: ScaleByRmsState(_zeros_like_tree(params),
                                       _zeros_like_tree(params) if centered else None),
        update)


def add_decayed_weights(weight_decay):
    """updates + weight_decay * params (decoupled weight decay, as AdamW)."""
    _check_rate("add_decayed_weights", "weight_decay", weight_decay)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("add_decayed_weights: update needs params: call "
                             "opt.update(grads, state, params)")
        return tree_map(lambda u, p: gnp.add(u, gnp.multiply(weight_decay, p)),
                        updates, params), state

    return GradientTransformation(lambda params: EmptyState(), update)


def sum_of_squares(tree):
    """The sum of the squares of every element of every leaf of `tree`."""
    leaves = tree_leaves(tree)
    if not leaves:
        raise ValueError("sum_of_squares: the pytree has no arrays")
    total = gnp.sum(gnp.multiply(leaves[0], leaves[0]))
    for x in leaves[1:]:
        total = gnp.add(total, gnp.sum(gnp.multiply(x, x)))
    return total


def global_norm(tree):
    """sqrt of the sum of squares of every leaf."""
    return gnp.sqrt(sum_of_squares(tree))


def clip_by_global_norm(max_norm):
    """Scale the updates by max_norm / global_norm when their global norm
    exceeds max_norm (all leaves together, so the direction is kept)."""
    _check("clip_by_global_norm", "max_norm", max_norm,
           isinstance(max_norm, (int, float)) and max_norm > 0, "a positive number")

    def update(updates, state, params=None):
        norm = global_norm(updates)
        factor = gnp.divide(max_norm, gnp.maximum(norm, max_norm))  # 1 when within
        return tree_map(lambda u: gnp.multiply(u, gnp.astype(factor, u.dtype)), updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


def chain(*transforms):
    """Apply `transforms` in order; the state is the tuple of their states."""
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"chain: argument {i} is a {type(t).__name__}, not a "
                            f"GradientTransformation (did you pass the class or a "
                            f"function instead of calling it, e.g. adam(1e-3)?)")

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None):
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(f"chain: the state does not come from this optimizer's init "
                             f"(expected a tuple of {len(transforms)} states)")
        new_state = []
        for t, s in zip(transforms, state):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def apply_updates(params, updates):
    """params + updates, leafwise, in the parameters' dtypes."""
    def add(p, u):
        if u.dtype != p.dtype:
            u = gnp.astype(u, p.dtype)
        return gnp.add(p, u)
    return tree_map(add, params, updates)


# ---- optimizers -------------------------------------------------------------
def sgd(learning_rate, momentum=None, nesterov=False):
    """Gradient descent: p <- p - lr g; with momentum, t = g + momentum t and
    p <- p - lr t (Nesterov: p <- p - lr (g + momentum t)), as PyTorch."""
    if nesterov and not momentum:
        raise ValueError("sgd: nesterov=True needs a momentum, e.g. sgd(0.1, momentum=0.9, "
                         "nesterov=True)")
    parts = [trace(momentum, nesterov)] if momentum else []
    return chain(*parts, scale_by_learning_rate(learning_rate))


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    """Adam with decoupled weight decay: p <- p - lr (adam + weight_decay p)."""
    return chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay),
                 scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate, decay=0.9, eps=1e-8, centered=False, momentum=None,
            nesterov=False):
    parts = [scale_by_rms(decay, eps, centered)]
    if momentum:
        parts.append(trace(momentum, nesterov))
    return chain(*parts, scale_by_learning_rate(learning_rate))


OPTIMIZERS = {"sgd": sgd, "adam": adam, "adamw": adamw, "rmsprop": rmsprop}


# ---- learning-rate schedules ------------------------------------------------
def _f32(count):
    return gnp.astype(count, np.float32)


def _check_steps(name, arg, value):
    _check(name, arg, value, isinstance(value, (int, np.integer)) and value > 0,
           "a positive integer (a number of steps)")


def constant_schedule(value):
    _check_rate("constant_schedule", "value", value)
    return lambda count: gnp.full((), value, np.float32)


def step_schedule(init_value, step_size, factor=0.1):
    """init_value * factor ** (count // step_size): multiplied by `factor`
    every `step_size` steps (PyTorch's StepLR)."""
    _check_rate("step_schedule", "init_value", init_value)
    _check_steps("step_schedule", "step_size", step_size)

    def schedule(count):
        # counts are non-negative, so truncation toward zero is the floor
        k = gnp.astype(gnp.astype(gnp.divide(_f32(count), float(step_size)), np.int32),
                       np.float32)
        return gnp.multiply(float(init_value), gnp.power(np.float32(factor), k))
    return schedule


def linear_schedule(init_value, end_value, transition_steps):
    """From init_value to end_value linearly over transition_steps, then constant."""
    _check_steps("linear_schedule", "transition_steps", transition_steps)

    def schedule(count):
        frac = gnp.divide(gnp.minimum(_f32(count), float(transition_steps)),
                          float(transition_steps))
        return gnp.add(float(init_value), gnp.multiply(end_value - init_value, frac))
    return schedule


def cosine_decay_schedule(init_value, decay_steps, alpha=0.0):
    """init_value * ((1 - alpha) * 0.5 (1 + cos(pi min(count, T) / T)) + alpha)."""
    _check_rate("cosine_decay_schedule", "init_value", init_value)
    _check_steps("cosine_decay_schedule", "decay_steps", decay_steps)

    def schedule(count):
        frac = gnp.divide(gnp.minimum(_f32(count), float(decay_steps)), float(decay_steps))
        cosine = gnp.multiply(0.5, gnp.add(1.0, gnp.cos(gnp.multiply(np.pi, frac))))
        return gnp.multiply(float(init_value), gnp.add(gnp.multiply(1 - alpha, cosine), alpha))
    return schedule


def join_schedules(schedules, boundaries):
    """schedules[i] from boundaries[i-1] on, counting from 0 again there."""
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(f"join_schedules: {len(schedules)} schedules need "
                         f"{len(schedules) - 1} boundaries, got {len(boundaries)}")

    def schedule(count):
        out = schedules[0](count)
        for s, b in zip(schedules[1:], boundaries):
            out = gnp.where(gnp.less(count, b), out, s(gnp.subtract(count, b)))
        return out
    return schedule


def linear_warmup(schedule, warmup_steps):
    """`schedule` (or a number) multiplied by min(count, warmup_steps) /
    warmup_steps: from 0 up to the schedule over the first warmup_steps."""
    _check_rate("linear_warmup", "schedule", schedule)
    _check_steps("linear_warmup", "warmup_steps", warmup_steps)
    base = schedule if callable(schedule) else constant_schedule(schedule)
    ramp = linear_schedule(0.0, 1.0, warmup_steps)
    return lambda count: gnp.multiply(base(count), ramp(count))


def warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps,
                                 end_value=0.0):
    """Linear from init_value to peak_value over warmup_steps, then a cosine
    decay to end_value; decay_steps counts the warmup (optax's convention)."""
    _check_steps("warmup_cosine_decay_schedule", "warmup_steps", warmup_steps)
    if decay_steps <= warmup_steps:
        raise ValueError(f"warmup_cosine_decay_schedule: decay_steps ({decay_steps}) must "
                         f"exceed warmup_steps ({warmup_steps}); it includes the warmup")
    alpha = end_value / peak_value if peak_value else 0.0
    return join_schedules([linear_schedule(init_value, peak_value, warmup_steps),
                           cosine_decay_schedule(peak_value, decay_steps - warmup_steps,
                                                 alpha)], [warmup_steps])
