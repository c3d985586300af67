"""Threads: grad, hessian and jit called from four threads at once give the
single-threaded results; trace state (the stack of transform levels) is per
thread, so a transform open in one thread changes nothing in another; and a
jit cache shared by threads traces each signature exactly once, even when
the first calls of a signature race (`jitted.traces`).

The backend is per thread too: each worker enters the test's backend.
"""
import os
import threading
import time

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import dev, host

N = 4


def run_threads(work, n=N):
    """work(i) in n threads started together; re-raises the first error."""
    backend = gp.get_backend()
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def target(i):
        try:
            with gp.use_backend(backend):
                barrier.wait()
                results[i] = work(i)
        except BaseException as e:      # reported by the main thread
            errors.append(e)
            barrier.abort()
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def f(w, x):
    return gnp.sum(gnp.tanh(x @ w) ** 2) + gnp.sum(gnp.exp(-w * w))


def test_grad_hessian_and_jit_from_four_threads_at_once():
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((3, 2)) for _ in range(N)]
    xs = [rng.standard_normal((5, 3)) for _ in range(N)]
    grad_f = gp.grad(f, argnums=(0, 1))
    jit_grad = gp.jit(grad_f)
    jit_f = gp.jit(f)

    def hess(w, x):     # nested levels: reverse over reverse
        return gp.hessian(lambda v: f(gnp.reshape(v, (3, 2)), x))(gnp.ravel(w))
    expected = [(host(grad_f(dev(w), dev(x))), host(f(dev(w), dev(x))),
                 host(hess(dev(w), dev(x)))) for w, x in zip(ws, xs)]

    def work(i):
        w, x = dev(ws[i]), dev(xs[i])
        want_g, want_f, want_h = expected[i]
        for _ in range(10):
            for got in (grad_f(w, x), jit_grad(w, x)):
                for a, b in zip(host(got), want_g):
                    np.testing.assert_allclose(a, b, rtol=1e-12)
            np.testing.assert_allclose(host(jit_f(w, x)), want_f, rtol=1e-12)
            np.testing.assert_allclose(host(hess(w, x)), want_h, rtol=1e-12)
        return True

    assert run_threads(work) == [True] * N
    assert jit_grad.traces == 1 and jit_f.traces == 1


@pytest.mark.parametrize("inside", ["grad", "jit"])
def test_a_transform_open_in_one_thread_changes_nothing_in_another(inside):
    """While one thread is stopped inside grad (or inside jit's tracing),
    another thread's jit compiles and runs its program (it does not think
    it is nested in the other thread's transform) and its grad is right."""
    entered, resume = threading.Event(), threading.Event()
    backend = gp.get_backend()
    out = {}

    def blocked(x):
        entered.set()
        assert resume.wait(30)
        return gnp.sum(gnp.sin(x))

    def other():
        try:
            with gp.use_backend(backend):
                t = gp.grad(blocked) if inside == "grad" else gp.jit(blocked)
                out["value"] = host(t(dev([0.0, 1.0])))
        except BaseException as e:
            out["error"] = e
            entered.set()
    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert entered.wait(30)
        h = gp.jit(lambda x: gnp.cos(x) * 2.0)
        np.testing.assert_allclose(host(h(dev([0.0, 1.0]))), 2 * np.cos([0.0, 1.0]))
        assert h.traces == 1, "jit saw the other thread's open transform and inlined"
        g = gp.grad(lambda x: gnp.sum(x * x * x))(dev([1.0, 2.0]))
        np.testing.assert_allclose(host(g), [3.0, 12.0])
    finally:
        resume.set()
        thread.join(30)
    assert "error" not in out, out.get("error")
    want = np.cos([0.0, 1.0]) if inside == "grad" else np.sin(1.0)
    np.testing.assert_allclose(out["value"], want)


def slow_to_trace(x):
    time.sleep(0.05)        # runs while tracing only: a wide window for a race
    return gnp.tanh(x) * 2.0


def test_racing_first_calls_trace_once_per_signature():
    """Four threads call a new jitted function at once, two signatures
    between them: each signature is traced once, and all results agree."""
    jf = gp.jit(slow_to_trace)
    data = [np.linspace(-1, 1, 3), np.linspace(-1, 1, 4)]

    def work(i):
        x = data[i % 2]
        results = [host(jf(dev(x))) for _ in range(5)]
        for r in results:
            np.testing.assert_allclose(r, np.tanh(x) * 2.0, rtol=1e-12)
    run_threads(work)
    assert jf.traces == 2


def test_shared_cache_stays_consistent_under_mixed_signatures():
    """Threads cycle through dtypes, shapes and static values in different
    orders: one trace per signature in all, every result right."""
    jf = gp.jit(lambda x, k: gnp.sum(x ** k, axis=0), static_argnums=1)
    signatures = [(dt, n, k) for dt in (np.float32, np.float64) for n in (2, 3) for k in (1, 2)]

    def work(i):
        for dt, n, k in signatures[i:] + signatures[:i]:
            x = np.arange(1.0, 1.0 + 2 * n).reshape(2, n).astype(dt)
            got = host(jf(dev(x), k))
            assert got.dtype == dt
            np.testing.assert_allclose(got, np.sum(x ** k, axis=0))
        return True

    run_threads(work)
    assert jf.traces == len(signatures)



@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # log(-1) on purpose
def test_debug_nans_in_one_thread_leaves_the_others_alone():
    """gp.debug_nans() is per thread, as the trace state: while a thread is
    inside it, another thread's NaN raises nothing, and overlapping blocks
    in two threads, left in either order, leave debugging off."""
    if os.environ.get("GPUPROP_DEBUG_NANS", "0") not in ("", "0"):
        pytest.skip("debugging is on for every thread")
    backend = gp.get_backend()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    errors = []

    def a():
        try:
            with gp.use_backend(backend), gp.debug_nans():
                a_in.set()
                assert b_in.wait(30)
                with pytest.raises(gp.NaNError):
                    gnp.log(dev([-1.0]))
        except BaseException as e:
            errors.append(e)
        finally:
            a_out.set()

    def b():
        try:
            with gp.use_backend(backend):
                assert a_in.wait(30)
                with gp.debug_nans():
                    b_in.set()
                    assert a_out.wait(30)     # a leaves first, b last
        except BaseException as e:
            errors.append(e)
        finally:
            b_in.set()
    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    try:
        assert b_in.wait(30)
        assert np.isnan(host(gnp.log(dev([-1.0])))), "another thread's debug_nans applied here"
    finally:
        a_out.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert np.isnan(host(gnp.log(dev([-1.0])))), "debugging was left on"
