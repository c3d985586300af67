"""gnp.fft against NumPy's values and dtypes (odd and even sizes, every norm,
n/s cropping and padding, axes), round trips, check_grads (order 2) on every
transform, vmap, jit, and the frequency helpers."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import assert_same, dev, host

NORMS = [None, "backward", "ortho", "forward"]
rng = np.random.default_rng(0)
REAL = {n: rng.standard_normal((3, n)) for n in (5, 6)}
CPLX = {n: rng.standard_normal((3, n)) + 1j * rng.standard_normal((3, n)) for n in (5, 6)}

# (name, input kind, keyword arguments): 1-D and n-D, n/s shorter and longer, axes
CASES = [
    ("fft", "c", {}), ("ifft", "c", {}), ("fft", "r", {}), ("fft", "c", {"n": 8}),
    ("ifft", "c", {"n": 3, "axis": 0}), ("rfft", "r", {}), ("rfft", "r", {"n": 7}),
    ("irfft", "c", {}), ("irfft", "c", {"n": 9}), ("irfft", "c", {"n": 4}),
    ("hfft", "c", {}), ("hfft", "c", {"n": 7}), ("ihfft", "r", {}), ("ihfft", "r", {"n": 4}),
    ("fft2", "c", {}), ("ifft2", "c", {"s": (2, 7)}), ("rfft2", "r", {}),
    ("irfft2", "c", {}), ("irfft2", "c", {"s": (4, 5)}), ("fftn", "c", {"axes": (1, 0)}),
    ("ifftn", "c", {}), ("rfftn", "r", {"axes": (1, 0)}), ("rfftn", "r", {"s": (4, 3), "axes": (0, 1)}),
    ("irfftn", "c", {"axes": (1, 0)}), ("irfftn", "c", {"s": (2, 5), "axes": (0, 1)}),
    ("fftn", "r", {"axes": (0,)}),
]


def _arg(kind, n):
    return (REAL if kind == "r" else CPLX)[n]


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n", [5, 6])
@pytest.mark.parametrize("name,kind,kw", CASES, ids=[f"{c[0]}{c[2]}" for c in CASES])
def test_values_and_derivatives(name, kind, kw, n, norm):
    x = _arg(kind, n)
    want = getattr(np.fft, name)(x, norm=norm, **kw)
    got = getattr(gnp.fft, name)(dev(x), norm=norm, **kw)
    assert_same(got, want, rtol=1e-12, atol=1e-12)
    check_grads(lambda a: getattr(gnp.fft, name)(a, norm=norm, **kw), (dev(x),), order=2)


@pytest.mark.parametrize("n", [1, 2, 5, 6])
@pytest.mark.parametrize("norm", NORMS)
def test_round_trips(n, norm):
    x = rng.standard_normal((2, n))
    z = x + 1j * x[::-1]
    assert_same(gnp.fft.ifft(gnp.fft.fft(dev(z), norm=norm), norm=norm), z, rtol=1e-12,
                atol=1e-12)
    assert_same(gnp.fft.irfft(gnp.fft.rfft(dev(x), norm=norm), n=n, norm=norm), x,
                rtol=1e-12, atol=1e-12)
    assert_same(gnp.fft.hfft(gnp.fft.ihfft(dev(x), norm=norm), n=n, norm=norm), x,
                rtol=1e-12, atol=1e-12)
    assert_same(gnp.fft.irfftn(gnp.fft.rfftn(dev(x), norm=norm), s=x.shape, norm=norm), x,
                rtol=1e-12, atol=1e-12)


def test_single_precision_stays_single():
    x = dev(REAL[6], np.float32)
    assert gnp.fft.fft(x).dtype == np.complex64
    assert gnp.fft.rfft(x).dtype == np.complex64
    assert gnp.fft.irfft(gnp.fft.rfft(x)).dtype == np.float32
    assert gp.grad(lambda x: gnp.sum(gnp.abs(gnp.fft.rfft(x))))(x).dtype == np.float32
    assert_same(gnp.fft.fft(dev(np.arange(4))), np.fft.fft(np.arange(4)))


@pytest.mark.parametrize("fn", [
    lambda m, x: m.fft.fftshift(x), lambda m, x: m.fft.ifftshift(x),
    lambda m, x: m.fft.fftshift(x, axes=1), lambda m, x: m.fft.ifftshift(x, axes=(0,)),
], ids=["fftshift", "ifftshift", "fftshift-axis", "ifftshift-axes"])
def test_shifts(fn):
    x = np.arange(15.0).reshape(3, 5)
    assert_same(fn(gnp, dev(x)), fn(np, x))
    check_grads(lambda a: fn(gnp, a), (dev(x),), order=1)


def test_frequencies():
    for n in (5, 6):
        assert_same(gnp.fft.fftfreq(n, 0.1), np.fft.fftfreq(n, 0.1))
        assert_same(gnp.fft.rfftfreq(n), np.fft.rfftfreq(n))


@pytest.mark.parametrize("name,kind,kw", [("fft", "c", {}), ("rfft", "r", {}),
                                          ("irfft", "c", {"n": 7}), ("fft2", "c", {}),
                                          ("irfftn", "c", {"axes": (1, 0)})])
def test_vmap_and_jit(name, kind, kw):
    x = np.stack([_arg(kind, 6), 2 * _arg(kind, 6)])
    f = lambda a: getattr(gnp.fft, name)(a, norm="ortho", **kw)
    want = np.stack([getattr(np.fft, name)(a, norm="ortho", **kw) for a in x], axis=-1)
    assert_same(gp.vmap(f, out_axes=-1)(dev(x)), want, rtol=1e-12, atol=1e-12)
    assert_same(gp.vmap(f, in_axes=2, out_axes=-1)(dev(np.moveaxis(x, 0, 2))), want,
                rtol=1e-12, atol=1e-12)
    assert_same(gp.jit(f)(dev(x[0])), want[..., 0], rtol=1e-12, atol=1e-12)
    loss = lambda a: gnp.sum(gnp.abs(f(a)) ** 2)
    assert_same(gp.jit(gp.grad(loss))(dev(x[0])), host(gp.grad(loss)(dev(x[0]))), rtol=1e-12)


def test_parseval_gradient():
    """sum |fft(x)|^2 = n sum |x|^2: the gradient is 2n x for real x, and
    2 conj(z) (JAX's convention) for complex z with norm="ortho"."""
    x = REAL[5][0]
    g = gp.grad(lambda x: gnp.sum(gnp.abs(gnp.fft.fft(x)) ** 2))(dev(x))
    assert_same(g, 10 * x, rtol=1e-12)
    z = CPLX[5][0]
    g = gp.grad(lambda z: gnp.sum(gnp.abs(gnp.fft.fft(z, norm="ortho")) ** 2))(dev(z))
    assert_same(g, 2 * np.conj(z), rtol=1e-12)


def test_errors_name_the_function_and_the_fix():
    with pytest.raises(ValueError, match=r"gnp.fft.fft: norm must be one of"):
        gnp.fft.fft(dev(CPLX[5]), norm="unitary")
    with pytest.raises(TypeError, match=r"gnp.fft.rfft: the input is complex.*gnp.real"):
        gnp.fft.rfft(dev(CPLX[5]))
    with pytest.raises(ValueError, match=r"gnp.fft.fftn: s \(4,\) and axes \(0, 1\)"):
        gnp.fft.fftn(dev(CPLX[5]), s=(4,), axes=(0, 1))
    with pytest.raises(ValueError, match=r"gnp.fft.fft: axis 2 is out of bounds"):
        gnp.fft.fft(dev(CPLX[5]), axis=2)
    with pytest.raises(ValueError, match=r"gnp.fft.ifft: invalid number of data points \(0\)"):
        gnp.fft.ifft(dev(CPLX[5]), n=0)
    with pytest.raises(ValueError, match=r"gnp.fft.fft2: repeated axis"):
        gnp.fft.fft2(dev(CPLX[5]), axes=(1, 1))
