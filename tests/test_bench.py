"""bench/: the smoke run prints a table with a ratio; gpu_check.sh parses; the
hand-written forward-mode baselines agree with finite differences; the
hand-written per-example gradients agree with a loop over the examples, and
gpuprop's per-example variants with them."""
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from bench import data, handwritten as hw, libs
from bench.cases import cases
from bench.child import compare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def quick_chain_run():
    """One run for the whole session (the backend fixture repeats each test)."""
    out = tempfile.mkdtemp(prefix="bench-test-")
    try:
        env = dict(os.environ, PYTHONPATH=ROOT)
        env.pop("GPUPROP_BACKEND", None)
        proc = subprocess.run(
            [sys.executable, "-m", "bench", "--quick", "--no-peers", "--only", "chain",
             "--out", out, "--no-readme", "--timeout", "60"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
        return proc.returncode, proc.stdout, proc.stderr, sorted(os.listdir(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_quick_chain_prints_ratios():
    rc, stdout, stderr, files = quick_chain_run()
    assert rc in (0, 1), stderr[-2000:]           # 1: a gpuprop variant failed its check
    assert "hand-written numpy" in stdout, stdout
    rows = [l for l in stdout.splitlines() if l.startswith("chain 100 ops")]
    assert rows, stdout
    assert re.search(r"\b1\.00x\b", stdout), stdout                 # the baseline's row
    assert re.search(r"gpuprop-eager\s.*\d+\.\d\dx", stdout), stdout  # a ratio for gpuprop
    assert any(f.endswith(".json") for f in files) and any(f.endswith(".md") for f in files)


def test_gpu_check_script_parses():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    script = os.path.join(ROOT, "bench", "gpu_check.sh")
    proc = subprocess.run([bash, "-n", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def float64_case(sizes=(7, 5, 4, 3), batch=6):
    params = [tuple(a.astype(np.float64) for a in layer) for layer in data.init_mlp(sizes)]
    x, y = (a.astype(np.float64) for a in data.batch(sizes, batch))
    v = [tuple(a.astype(np.float64) for a in layer) for layer in data.direction(params)]
    return params, x, y, v


def along(params, v, eps):
    return [tuple(a + eps * t for a, t in zip(la, lv)) for la, lv in zip(params, v)]


def test_handwritten_jvp_and_hvp_match_central_differences():
    """The baselines the bench checks every library against, in float64: the
    tangent of the loss and the HVP against central differences along v of
    the loss and of the hand-written gradient."""
    params, x, y, v = float64_case()
    eps = 1e-5
    (lp, gplus), (lm, gminus) = (hw.loss_and_grads(np, along(params, v, s * eps), x, y)
                           for s in (1, -1))
    loss, tangent = hw.jvp(np, params, x, y, v)
    assert loss == pytest.approx(hw.loss_and_grads(np, params, x, y)[0], rel=1e-12)
    assert tangent == pytest.approx((lp - lm) / (2 * eps), rel=1e-7)
    for got, plus, minus in zip(hw.hvp(np, params, x, y, v), gplus, gminus):
        for g, p, m in zip(got, plus, minus):
            np.testing.assert_allclose(g, (p - m) / (2 * eps), rtol=1e-6, atol=1e-9)


def test_handwritten_per_example_grads_match_a_loop():
    """The per-example baseline, in float64: example b's gradients are those
    of the batch of that one example alone (whose mean loss is its loss)."""
    params, x, y, _ = float64_case()
    got = hw.per_example_grads(np, params, x, y)
    for b in range(len(x)):
        _, want = hw.loss_and_grads(np, params, x[b:b + 1], y[b:b + 1])
        for (gW, gb), (wW, wb) in zip(got, want):
            np.testing.assert_allclose(gW[b], wW, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(gb[b], wb, rtol=1e-12, atol=1e-15)


def test_perex_cases_run_the_loop_only_at_the_larger_size():
    for quick, keys in ((True, ["perex/small"]), (False, ["perex/small", "perex/medium"])):
        chosen = cases(["perex"], quick)
        assert [c.key for c in chosen] == keys
        assert [c.runs("gpuprop-loop") for c in chosen] == [False] * (len(keys) - 1) + [True]
        assert all(c.runs("jax-jit") and not c.runs("torch") for c in chosen)
    assert not any(c.runs("gpuprop-loop") for c in cases(["grad", "memory"], False))


def test_gpuprop_perex_variants_match_the_baseline():
    """vmap of grad, eager and jitted, and the Python loop, on a small MLP:
    what the bench checks before timing them."""
    params, x, y, _ = float64_case()
    params = [tuple(a.astype(np.float32) for a in layer) for layer in params]
    x, y = x.astype(np.float32), y.astype(np.float32)
    want = hw.per_example_grads(np, params, x, y)
    impls, _ = libs.gpuprop_impls("cpu")
    for name in ("gpuprop-eager", "gpuprop-jit", "gpuprop-loop"):
        impl = impls[name]
        assert compare(name, impl.host(impl.perex(params, x, y)()), want) < 1e-5
