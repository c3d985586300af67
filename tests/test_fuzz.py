"""Property-based fuzzing: hypothesis builds small random programs (DAGs of
elementwise ops, broadcasting binary ops and reductions over random
broadcast-compatible shapes, float64), runs each with gnp on the device and
with NumPy on the host, compares the values, and checks the derivatives with
check_grads to second order (which checks the first order on the way).

Ops whose domain is limited are guarded (log(x*x+1), sqrt(x*x+1), ...), so
every program is smooth and finite wherever its inputs are.

GPUPROP_FUZZ_EXAMPLES sets the number of programs per backend (default 30).
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from conftest import dev
from test_primitives import REF, assert_same

UNARY = {
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
BINARY = {
    "add": lambda m, x, y: m.add(x, y),
    "subtract": lambda m, x, y: m.subtract(x, y),
    "multiply": lambda m, x, y: m.multiply(x, y),
    "divide": lambda m, x, y: m.divide(x, y * y + 1.0),
    "power": lambda m, x, y: m.power(x * x + 1.0, m.tanh(y)),
    # tanh(t) = t - t**3/3 + ...: the two branches meet smoothly (C2) at x == y
    "where": lambda m, x, y: m.where(m.greater(x, y), m.tanh(x - y), x - y),
}
REDUCE = {
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


@st.composite
def programs(draw):
    """(input shapes, ops, outputs, seed).  Every shape broadcasts to one base
    shape, so any two nodes can meet in a binary op; reductions keep that
    (keepdims, or dropping leading axes only)."""
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
            ops.append((kind, draw(st.sampled_from(sorted(UNARY))), i))
        elif kind == "binary":
            j = draw(st.integers(0, len(nodes) - 1))
            ops.append((kind, draw(st.sampled_from(sorted(BINARY))), i, j))
            s = np.broadcast_shapes(s, nodes[j])
        else:
            axes = draw(st.lists(st.integers(0, len(s) - 1), unique=True, max_size=len(s))) \
                if s else []
            axis = None if not axes else tuple(sorted(axes))
            leading = axis is None or axis == tuple(range(len(axis)))
            keepdims = draw(st.booleans()) if leading else True
            neg = draw(st.booleans()) and axis is not None
            axis = tuple(a - len(s) for a in axis) if neg else axis
            ops.append((kind, draw(st.sampled_from(sorted(REDUCE))), i, axis, keepdims))
            s = _reduced(s, range(len(s)) if axis is None else [a % len(s) for a in axis],
                         keepdims)
        nodes.append(s)
    outs = sorted({len(nodes) - 1, draw(st.integers(0, len(nodes) - 1))})
    return shapes, ops, outs, draw(st.integers(0, 2 ** 32 - 1))


def run(m, ops, outs, *xs):
    """The program on namespace m (gnp or the NumPy reference)."""
    nodes = list(xs)
    for kind, name, i, *rest in ops:
        if kind == "unary":
            nodes.append(UNARY[name](m, nodes[i]))
        elif kind == "binary":
            nodes.append(BINARY[name](m, nodes[i], nodes[rest[0]]))
        else:
            nodes.append(REDUCE[name](m, nodes[i], *rest))
    return tuple(nodes[k] for k in outs)


@settings(max_examples=int(os.environ.get("GPUPROP_FUZZ_EXAMPLES", "30")), deadline=None,
          derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(programs())
def test_random_program(program):
    shapes, ops, outs, seed = program
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(-1.2, 1.2, s) for s in shapes]
    got = run(gnp, ops, outs, *map(dev, xs))
    for g, w in zip(got, run(REF, ops, outs, *xs)):
        assert_same(g, w, rtol=1e-6, atol=1e-10)
    check_grads(lambda *a: run(gnp, ops, outs, *a), xs, order=2, rtol=1e-4, atol=1e-6)
