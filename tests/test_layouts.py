"""Layouts and argument kinds: transposed, strided, reversed, Fortran-ordered
and broadcast (zero-stride, read-only) inputs give the values and gradients
of their contiguous copies, eager and under jit, in float32 and float64
(gradients keep the input's dtype and shape, inputs are never written);
0-d arrays, NumPy scalars and Python scalars work as arguments of grad and
jit.
"""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import dev, host

DTYPES = [np.float32, np.float64]
RNG = np.random.default_rng(0)
A = RNG.standard_normal((6, 4))
W = RNG.standard_normal((4, 3))


def _strided(a):
    """Every other row of a twice-as-tall array: a view with a row gap."""
    return dev(np.repeat(a, 2, axis=0))[::2]


# host data -> an array of the active backend holding the same values in
# another layout (built on the device, so the strict backend gets views too)
LAYOUTS = {
    "contiguous": lambda a: dev(a),
    "transposed": lambda a: dev(np.ascontiguousarray(a.T)).T,
    "strided": _strided,
    "reversed": lambda a: dev(np.ascontiguousarray(a[::-1, ::-1]))[::-1, ::-1],
    "fortran": lambda a: dev(np.asfortranarray(a)),
}


@pytest.fixture(params=["eager", "jit"])
def transform(request):
    return (lambda f: f) if request.param == "eager" else gp.jit


def model(x, w):
    """Elementwise ops, a matmul, reductions along each axis and indexing."""
    h = gnp.tanh(x @ w) * gnp.exp(-x[:, :1] * x[:, :1])
    return (gnp.sum(h * h) + gnp.sum(gnp.max(x, axis=0)) + gnp.mean(gnp.logsumexp(x, axis=1))
            + gnp.sum(x[1:4, ::2] * 0.5))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_gives_the_values_and_gradients_of_a_contiguous_copy(transform, dtype, layout):
    a, w = A.astype(dtype), W.astype(dtype)
    x, wl = LAYOUTS[layout](a), LAYOUTS[layout](w)
    if layout != "contiguous" and hasattr(x, "flags"):
        assert not x.flags.c_contiguous
    want_v, want_g = gp.value_and_grad(model, (0, 1))(dev(a), dev(w))
    v, g = transform(gp.value_and_grad(model, (0, 1)))(x, wl)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(host(v), host(want_v), rtol=rtol)
    for got, want in zip(g, want_g):
        got, want = host(got), host(want)
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(host(x), a)       # inputs are not written
    np.testing.assert_array_equal(host(wl), w)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_broadcast_read_only_input(transform, dtype, backend_name):
    """A zero-stride view (np.broadcast_to: read-only) as an input."""
    if backend_name != "numpy":
        pytest.skip("np.broadcast_to makes NumPy arrays")
    row = A[0].astype(dtype)
    x = np.broadcast_to(row, (5, 4))
    assert not x.flags.writeable and x.strides[0] == 0
    f = lambda x: gnp.sum(gnp.sin(x) * x + x * 2.0)
    v, g = transform(gp.value_and_grad(f))(x)
    want_v, want_g = gp.value_and_grad(f)(np.ascontiguousarray(x))
    np.testing.assert_allclose(host(v), host(want_v), rtol=1e-6)
    assert host(g).dtype == dtype and host(g).shape == (5, 4)
    np.testing.assert_allclose(host(g), host(want_g), rtol=1e-6)


def test_donated_transposed_input():
    """A donated view may be written through; the result is still right."""
    f = gp.jit(lambda x: gnp.tanh(x) * 2.0 + 1.0, donate_argnums=0)
    x = LAYOUTS["transposed"](A)
    np.testing.assert_allclose(host(f(x)), np.tanh(A) * 2.0 + 1.0, rtol=1e-12)


def test_gradients_keep_each_inputs_dtype_under_mixed_precision(transform):
    """float32 * float64 computes in float64; each gradient comes back in its
    own input's dtype, also through astype."""
    f = lambda x, y: gnp.sum(x * y) + gnp.sum(gnp.astype(x, np.float64) ** 2)
    a, b = A[:3].astype(np.float32), A[3:]
    gx, gy = transform(gp.grad(f, (0, 1)))(LAYOUTS["transposed"](a), LAYOUTS["strided"](b))
    gx, gy = host(gx), host(gy)
    assert (gx.dtype, gy.dtype) == (np.float32, np.float64)
    np.testing.assert_allclose(gx, b + 2 * a, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gy, a, rtol=1e-12)


# ---- 0-d arrays and scalars ----------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_zero_dimensional_arrays(transform, dtype):
    f = lambda x, y: gnp.sin(x) * y + x * x
    x, y = dev(0.5, dtype), dev(-2.0, dtype)
    assert x.shape == ()
    gx, gy = transform(gp.grad(f, (0, 1)))(x, y)
    for got, want in [(gx, np.cos(0.5) * -2.0 + 1.0), (gy, np.sin(0.5))]:
        got = np.asarray(host(got))
        assert got.shape == () and got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)
    v = np.asarray(host(transform(f)(x, y)))
    assert v.shape == () and v.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_scalar_arguments(transform, dtype):
    """A NumPy scalar is differentiated in its own dtype, a Python float as
    float64; a Python scalar beside an array does not change its dtype."""
    f = lambda x, c: gnp.sin(x) * c
    g = np.asarray(host(transform(gp.grad(f))(dtype(0.5), 3.0)))
    assert g.shape == () and g.dtype == dtype
    np.testing.assert_allclose(g, 3 * np.cos(0.5), rtol=1e-6)
    g = np.asarray(host(transform(gp.grad(f))(0.5, 3)))
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, 3 * np.cos(0.5), rtol=1e-12)
    x = dev([0.5, 1.0], dtype)
    g = host(transform(gp.grad(lambda x, c: gnp.sum(f(x, c))))(x, 2.0))
    assert g.dtype == dtype


def test_jit_python_scalars_are_static_and_0d_arrays_are_not():
    f = gp.jit(lambda x, c: x * c)
    for c in (2.0, 3.0, 2.0):
        np.testing.assert_allclose(host(f(dev([1.0, 2.0]), c)), [c, 2 * c])
    assert f.traces == 2            # one per distinct Python value
    for c in (2.0, 3.0, 4.0):
        np.testing.assert_allclose(host(f(dev([1.0, 2.0]), dev(c))), [c, 2 * c])
    assert f.traces == 3            # one more, for the 0-d array signature
