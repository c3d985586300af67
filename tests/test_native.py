"""The native CPU executor (compile/native.py): whole programs compiled as
C++ functions.  Its results equal the NumPy executor's bit for bit: fused
loops of exactly rounded operations, transcendental functions through
NumPy's own loops, matrix products through the BLAS NumPy calls (as NumPy
calls it), reductions in NumPy's order.  What has no C++ form runs on NumPy
between native segments; with no compiler the NumPy executor runs."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop import compile as gcompile
from gpuprop.compile import cpu


@pytest.fixture(autouse=True)
def numpy_and_compiler(backend_name):
    if backend_name != "numpy":
        pytest.skip("the native executor runs NumPy arrays only")
    if cpu.compiler() is None:
        pytest.skip("no C++ compiler or Python headers")


def both(monkeypatch, f, args, **jit_kw):
    """(native result, NumPy executor's result, the native Compiled) of fresh
    jits of f; inputs are copied for each (a donated one may be overwritten)."""
    results = []
    for native in ("1", "0"):
        monkeypatch.setenv("GPUPROP_NATIVE", native)
        jf = gp.jit(f, **jit_kw)
        copies = gp.tree_map(np.copy, args)
        results.append((jf(*copies), jf.lower(*gp.tree_map(np.copy, args))))
    monkeypatch.delenv("GPUPROP_NATIVE")
    (out, compiled), (want, _) = results
    return out, want, compiled


def assert_bitwise(got, want):
    for g, w in zip(gp.tree_leaves(got), gp.tree_leaves(want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype
        assert np.array_equal(g, w, equal_nan=True), (g, w)
        assert np.array_equal(np.signbit(g), np.signbit(w))


def mlp_step(params, x, y):
    def loss(params):
        h = x
        for w, b in params[:-1]:
            h = gnp.tanh(h @ w + b)
        w, b = params[-1]
        return -gnp.sum(y * gnp.log_softmax(h @ w + b)) / x.shape[0]
    value, grads = gp.value_and_grad(loss)(params)
    return value, [(w - 0.05 * gw, b - 0.05 * gb) for (w, b), (gw, gb) in zip(params, grads)]


def mlp_args(dt, sizes=(64, 32, 32, 10), batch=32):
    rng = np.random.default_rng(0)
    params = [(rng.standard_normal((m, n)).astype(dt) * 0.2, rng.standard_normal(n).astype(dt))
              for m, n in zip(sizes[:-1], sizes[1:])]
    x = rng.standard_normal((batch, sizes[0])).astype(dt)
    y = np.eye(sizes[-1], dtype=dt)[rng.integers(0, sizes[-1], batch)]
    return params, x, y


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_a_training_step_is_one_native_function_equal_bit_for_bit(monkeypatch, dt):
    out, want, compiled = both(monkeypatch, mlp_step, mlp_args(dt), donate_argnums=0)
    assert_bitwise(out, want)
    assert compiled.launches == 1 and "static PyObject* run(" in compiled.source
    assert "gemm_" in compiled.source and "find_loop(numpy, \"tanh\"" in compiled.source


def test_donated_parameters_are_overwritten_as_the_numpy_executor_plans(monkeypatch):
    """Both executors follow executor.plan_memory: the same outputs are
    written into the donated parameters' buffers."""
    in_place = []
    for native in ("1", "0"):
        monkeypatch.setenv("GPUPROP_NATIVE", native)
        params, x, y = mlp_args(np.float32)
        old = gp.tree_leaves(params)
        _, new = gp.jit(mlp_step, donate_argnums=0)(params, x, y)
        # a result written into a donated buffer comes back as a new view of it
        in_place.append([np.shares_memory(a, b) for a, b in zip(gp.tree_leaves(new), old)])
    assert in_place[0] == in_place[1] and any(in_place[0])


UNARY = {"exp": (-3, 3), "log": (0.1, 5), "log1p": (-0.5, 5), "expm1": (-3, 3), "sin": (-9, 9),
         "cos": (-9, 9), "tanh": (-5, 5), "tan": (-1.5, 1.5), "arcsin": (-1, 1),
         "arccos": (-1, 1), "arctan": (-9, 9), "sinh": (-5, 5), "cosh": (-5, 5),
         "arcsinh": (-9, 9), "arccosh": (1, 9), "arctanh": (-0.99, 0.99), "log2": (0.1, 9),
         "log10": (0.1, 9), "exp2": (-9, 9)}


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 33, 1000])
def test_transcendental_functions_are_numpy_loops_bit_for_bit(monkeypatch, dt, n):
    rng = np.random.default_rng(n)
    xs = {name: rng.uniform(lo, hi, n).astype(dt) for name, (lo, hi) in UNARY.items()}

    def f(xs, y):
        outs = {name: getattr(gnp, name)(x * 1.0) for name, x in xs.items()}
        outs["power"] = gnp.power(xs["exp"] * 1.0 + 4.0, y)     # a single-element exponent
        outs["square"] = (xs["tanh"] * 1.0) ** 2
        outs["arctan2"] = gnp.arctan2(xs["sin"] * 1.0, xs["cos"])
        outs["hypot"] = gnp.hypot(xs["sin"] * 1.0, xs["cos"])
        return outs
    out, want, compiled = both(monkeypatch, f, (xs, np.array([0.75], dt)))
    assert_bitwise(out, want)
    assert compiled.launches == 1
    for name in list(UNARY) + ["power", "arctan2", "hypot"]:
        assert f'find_loop(numpy, "{name}"' in compiled.source


def signed(shape, rng, dt):
    """Values with ties, signed zeros, infinities and a NaN or two."""
    x = rng.choice(np.array([0.0, -0.0, 1.5, -1.5, 2.0, np.inf, -np.inf], dt), shape)
    x[rng.random(shape) < 0.5] = rng.standard_normal(shape)[rng.random(shape) < 0.5][:1]
    if x.size > 50:
        x.flat[7] = np.nan
    return x.astype(dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [((1000,), None), ((3, 5, 130), (1, 2)), ((3, 5, 130), 2),
                                        ((40, 37), 0), ((6, 7, 9), (0, 1)), ((2, 300), None),
                                        ((9,), 0)])
def test_reductions_follow_numpy_order_bit_for_bit(monkeypatch, dt, shape, axis):
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 100).astype(dt)
    s = signed(shape, rng, dt)

    def f(x, s):
        return (gnp.sum(x * 1.0, axis=axis), gnp.sum(x * 1.0, axis=axis, keepdims=True),
                gnp.max(s * 1.0, axis=axis), gnp.min(s * 1.0, axis=axis),
                gnp.prod(x * 0.01, axis=axis))
    out, want, compiled = both(monkeypatch, f, (x, s))
    assert_bitwise(out, want)
    assert compiled.launches == 1


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_matrix_products_through_blas_as_numpy_calls_it(monkeypatch, dt):
    rng = np.random.default_rng(3)
    x, w, g = (rng.standard_normal(s).astype(dt) for s in [(33, 17), (17, 9), (33, 9)])

    def f(x, w, g):
        return x @ w, x.T @ g, g @ w.T, gnp.tanh(x).T @ (g * 2.0)
    out, want, compiled = both(monkeypatch, f, (x, w, g))
    assert_bitwise(out, want)
    assert compiled.source.count("gemm_") >= 4 + 2 and compiled.launches == 1


def test_what_numpy_computes_otherwise_stays_numpy(monkeypatch):
    """x @ x.T is NumPy's syrk and a matrix times a vector its gemv: left to NumPy."""
    rng = np.random.default_rng(4)
    x, v = rng.standard_normal((20, 20)), rng.standard_normal(20)
    out, want, compiled = both(monkeypatch, lambda x, v: (gnp.tanh(x @ x.T) * 2.0, x @ v),
                               (x, v))
    assert_bitwise(out, want)
    assert "xp.matmul(" in compiled.source


def test_an_operation_without_a_cpp_form_splits_the_program(monkeypatch):
    x = np.random.default_rng(5).standard_normal((6, 5)).astype(np.float32)

    def f(x):
        y = gnp.tanh(x * 2.0) + 1.0
        return gnp.exp(gnp.cumsum(y, axis=0) * 0.5) - 1.0      # cumsum has no C++ form
    out, want, compiled = both(monkeypatch, f, (x,))
    assert_bitwise(out, want)
    src = compiled.source
    assert compiled.kernels == 2 and compiled.launches == 3
    calls = [line for line in src[:src.index("\n\n")].splitlines()[2:] if "del " not in line]
    assert "seg0(" in calls[0] and "(xp, " in calls[1] and "seg1(" in calls[2], calls


def test_split_programs_return_views_constants_literals_and_inputs_as_numpy_does(monkeypatch):
    rng = np.random.default_rng(6)
    c = rng.standard_normal((4, 6)).astype(np.float32)

    def f(w, x):
        y = gnp.tanh(w * 2.0 + c)
        z = y[:, ::2] * 3.0                 # a view NumPy makes, between two segments
        return (w - 0.1 * y, gnp.reshape(z, (-1,)), gnp.sum(z, axis=0), c, 2.0, x,
                gnp.reshape(y, (6, 4)), gnp.argmax(w, axis=1), gnp.transpose(w) * 1.0)
    args = (rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal(3))
    out, want, compiled = both(monkeypatch, f, args, donate_argnums=0)
    assert_bitwise(out, want)
    assert compiled.kernels > 1         # native segments around NumPy's getitem, argmax


def test_without_a_compiler_the_numpy_executor_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "/bin/false")
    monkeypatch.setenv("GPUPROP_CACHE_DIR", str(tmp_path))
    x = np.linspace(-1, 1, 12, dtype=np.float32)
    jf = gp.jit(lambda x: gnp.tanh(x * 1.25) + 0.5)
    np.testing.assert_array_equal(jf(x), np.tanh(x * np.float32(1.25)) + np.float32(0.5))
    assert "PyObject" not in jf.lower(x).source


def test_fusion_off_or_the_strict_backend_never_compile_natively(monkeypatch):
    assert gcompile.native_for(gp.backend.current())
    with gp.use_backend("strict"):
        assert not gcompile.native_for(gp.backend.current())
    monkeypatch.setenv("GPUPROP_FUSION", "0")
    assert not gcompile.native_for(gp.backend.current())
    monkeypatch.setenv("GPUPROP_FUSION", "1")
    monkeypatch.setenv("GPUPROP_NATIVE", "0")
    assert not gcompile.native_for(gp.backend.current())


def test_a_call_with_arrays_seen_before_goes_straight_to_the_native_code(monkeypatch):
    """The fast path of Jitted.__call__ (about 1.7 µs above the native code on
    the 2-core test machine, by timeit): no signature, no pytree flattening."""
    x, y = np.ones(4, np.float32), np.ones(4, np.float32)
    jf = gp.jit(lambda x, y: x * y + 1.0)
    jf(x, y)

    def refuse(*args):
        raise AssertionError("the slow path ran")
    monkeypatch.setattr(jf, "_signature", refuse)
    np.testing.assert_array_equal(jf(x + 1.0, y), (x + 1.0) * y + 1.0)
    with pytest.raises(AssertionError, match="slow path"):
        jf(x[:2], y[:2])         # another shape: the signature is computed
