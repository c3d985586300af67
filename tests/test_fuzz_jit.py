"""Property-based fuzzing of jit: hypothesis builds random programs (the
DAGs of tests/support.py (fuzz_programs): elementwise ops, broadcasting binary ops and
reductions over random broadcast-compatible shapes), in float32 or float64,
and compares the jitted program with the eager one: its values, its
gradients (jit(grad) against grad) and its directional derivatives (jit(jvp)
against jvp, and jvp against the gradient), dtype for dtype.

The jitted side also threads every intermediate through a round trip of
view primitives (transpose, reversal by slicing, reshape, broadcast-and-pick)
that leaves values unchanged, so the compiled program reads strided views of
its buffers and the planned buffer reuse and the fused kernels must cope.

Every pass of every program staged here is checked by ir.check (before and
after it runs), and the compiled program agrees with the reference
interpreter (ir.eval_program) on the optimised IR.

In float64, the compiled value and gradient are also checked against finite
differences (gpuprop.testing.check_grads, first order of the pair: the first
and second derivatives of the loss, with the finite differences taken by the
jitted program).

GPUPROP_FUZZ_EXAMPLES sets the number of programs per backend (default 25).
"""
import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.compile import passes
from gpuprop.ir import check, eval_program
from gpuprop.testing import check_grads
from support import REF, dev, host, fuzz_programs as programs, run_fuzz_program as run

pytestmark = pytest.mark.usefixtures("executor")     # native and NumPy executors


def _flip(x):
    """x reversed along its last axis twice: two strided views."""
    return x[..., ::-1][..., ::-1] * 1.0


def _transposed(x):
    """Computed on the transpose, transposed back."""
    return gnp.transpose(gnp.transpose(x) * 1.0)


def _flat(x):
    return gnp.reshape(gnp.ravel(x) * 1.0, x.shape)


def _picked(x):
    """Broadcast along a new axis (a zero-stride view), then one slice of it."""
    return gnp.broadcast_to(x, (2,) + x.shape)[1] * 1.0


VIEWS = {"none": lambda x: x, "flip": _flip, "transpose": _transposed, "flat": _flat,
         "picked": _picked}


class Viewing:
    """gnp, with every result passed through the next view round trip of a
    fixed cycle (exact: x * 1.0 and views do not change any value)."""

    def __init__(self, views):
        self._views = itertools.cycle(views)

    def __getattr__(self, name):
        f = getattr(gnp, name)

        def viewed(*args, **kwargs):
            out = f(*args, **kwargs)
            view = next(self._views)
            return VIEWS[view](out) if out.ndim or view in ("none", "picked") else out
        return viewed


@pytest.fixture(autouse=True)
def checked_passes(monkeypatch):
    """ir.check before and after every optimisation pass."""
    def checked(p):
        return lambda prog: check(p(check(prog)))
    monkeypatch.setattr(passes, "PASSES", tuple(checked(p) for p in passes.PASSES))


@st.composite
def jit_programs(draw):
    shapes, ops, outs, seed = draw(programs())
    views = draw(st.lists(st.sampled_from(sorted(VIEWS)), min_size=1, max_size=5))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return shapes, ops, outs, seed, views, dtype


def assert_close(got, want, dtype, what):
    got, want = np.asarray(host(got)), np.asarray(host(want))
    assert got.shape == want.shape and got.dtype == want.dtype == dtype, (what, got, want)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, want, err_msg=what, **tol)


@settings(max_examples=int(os.environ.get("GPUPROP_FUZZ_EXAMPLES", "25")), deadline=None,
          derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(jit_programs())
def test_jit_matches_eager_values_and_gradients(program):
    shapes, ops, outs, seed, views, dtype = program
    rng = np.random.default_rng(seed)
    xs = [dev(rng.uniform(-1.2, 1.2, s), dtype) for s in shapes]
    out_shapes = [np.shape(o) for o in run(REF, ops, outs, *[np.zeros(s) for s in shapes])]
    weights = [dev(rng.standard_normal(s), dtype) for s in out_shapes]
    argnums = tuple(range(len(xs)))

    def loss(m, *a):
        return sum(gnp.sum(o * w) for o, w in zip(run(m, ops, outs, *a), weights))

    def both(m):
        """The outputs, and the loss with its gradient, on namespace m."""
        return lambda *a: (run(m, ops, outs, *a),
                           gp.value_and_grad(lambda *b: loss(m, *b), argnums)(*a))

    jitted = gp.jit(lambda *a: both(Viewing(views))(*a))
    (got_outs, (got_v, got_g)) = jitted(*xs)
    (want_outs, (want_v, want_g)) = both(gnp)(*xs)
    for k, (g, w) in enumerate(zip(got_outs, want_outs)):
        assert_close(g, w, dtype, f"output {k}")
    assert_close(got_v, want_v, dtype, "loss")
    for k, (g, w) in enumerate(zip(got_g, want_g)):
        assert_close(g, w, dtype, f"gradient {k}")
    assert jitted.traces == 1
    # forward mode, compiled: jit(jvp) against eager jvp, and against the
    # gradient by the transpose identity <grad, t> = J t
    tangents = tuple(dev(rng.standard_normal(s), dtype) for s in shapes)
    jvp_loss = lambda *a: gp.jvp(lambda *b: loss(gnp, *b), a, tangents)   # noqa: E731
    (got_l, got_t), (want_l, want_t) = gp.jit(jvp_loss)(*xs), jvp_loss(*xs)
    assert_close(got_l, want_l, dtype, "jit(jvp) value")
    assert_close(got_t, want_t, dtype, "jit(jvp) tangent")
    by_grad = sum(gnp.sum(g * t) for g, t in zip(want_g, tangents))
    assert_close(want_t, by_grad, dtype, "jvp against <grad, t>")
    reference = eval_program(jitted.lower(*xs).program, *xs)
    for k, (g, w) in enumerate(zip(gp.tree_leaves((got_outs, got_v, got_g)), reference)):
        assert_close(g, w, dtype, f"leaf {k} against ir.eval_program")
    if dtype == np.float64:     # the compiled program evaluates the finite differences
        check_grads(lambda *a: jitted(*a)[1], xs, order=1, rtol=1e-4, atol=1e-6)
