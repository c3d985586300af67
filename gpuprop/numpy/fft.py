"""gnp.fft: NumPy's discrete Fourier transforms, differentiable and batchable.

Three primitives carry every transform: `fftn` (complex to complex, forward
or inverse, over `axes`), `rfftn` (real to the half spectrum, the last of
`axes` halved) and `irfftn` (half spectrum to real, given the length of the
last axis).  A transform's `n`/`s` (zero padding or cropping) is a shape
operation before the primitive; `norm` is a parameter of it.  On CuPy they
run as cupy.fft's (the backend namespace's `fft`).

Derivatives follow JAX: a VJP is the transpose of the JVP under the pairing
re(sum(g * t)).  The DFT matrix is symmetric, so fftn transposes to itself;
rfftn to the real part of a forward fftn of the zero-padded cotangent; irfftn
to the conjugate of an rfftn of the cotangent, with the weights 1, 2, ..., 2
(, 1) of the half spectrum (each bin but the first and the Nyquist one stands
for two).
"""
import numpy as np

from .. import backend
from ..core import Primitive, ShapedArray, bind
from ._base import moveaxis0
from ._rules import dtype_of, ndim_of, shape_of
from . import elementwise as ew, shape as sh

NORMS = ("backward", "ortho", "forward")
# the norm whose scale on a forward transform is `norm`'s on an inverse one
_SWAP = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


def _complex_dtype(dt):
    return np.result_type(dt, np.complex64)


def _real_dtype(dt):
    return np.zeros(0, _complex_dtype(dt)).real.dtype


def _batch_axes(prim, vals, dims, axes, **params):
    """The batch axis first; the transformed axes move one place on."""
    x = moveaxis0(vals[0], dims[0])
    return bind(prim, (x,), dict(params, axes=tuple(a + 1 for a in axes))), 0


def _fftn_impl(xp, x, axes, inverse, norm):
    return (xp.fft.ifftn if inverse else xp.fft.fftn)(x, axes=axes, norm=norm)


fftn_p = Primitive(
    "fftn", _fftn_impl, lambda x, axes, inverse, norm: ShapedArray(x.shape, x.dtype),
    vjp=(lambda g, out, x, axes, inverse, norm: _fftn(g, axes, inverse, norm),),
    linear=True, batch=_batch_axes)


def _rfftn_aval(x, axes, norm):
    shape = list(x.shape)
    shape[axes[-1]] = shape[axes[-1]] // 2 + 1
    return ShapedArray(shape, _complex_dtype(x.dtype))


def _rfftn_vjp(g, out, x, axes, norm):
    """rfftn is the full forward transform of x cut to the half spectrum:
    its transpose pads g back to full length, transforms it (the DFT matrix is
    symmetric) and keeps the real part (x is real)."""
    last = axes[-1]
    width = [(0, 0)] * ndim_of(g)
    width[last] = (0, shape_of(x)[last] - shape_of(g)[last])
    return ew.real(_fftn(sh.pad(g, width), axes, False, norm))


rfftn_p = Primitive(
    "rfftn", lambda xp, x, axes, norm: xp.fft.rfftn(x, axes=axes, norm=norm), _rfftn_aval,
    vjp=(_rfftn_vjp,), linear=True, batch=_batch_axes)


def _irfftn_aval(x, axes, n, norm):
    shape = list(x.shape)
    shape[axes[-1]] = n
    return ShapedArray(shape, _real_dtype(x.dtype))


def _irfftn_vjp(g, out, x, axes, n, norm):
    """JAX's transpose of irfft: conj(weights * rfftn(g)), the forward
    transform scaled as this inverse one is."""
    last, m = axes[-1], n // 2 + 1
    weights = np.full(m, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    weights = backend.current().from_host(
        weights.astype(dtype_of(g)).reshape((m,) + (1,) * (ndim_of(g) - 1 - last)))
    return ew.conj(ew.multiply(bind(rfftn_p, (g,), {"axes": axes, "norm": _SWAP[norm]}),
                               weights))


irfftn_p = Primitive(
    "irfftn", lambda xp, x, axes, n, norm: xp.fft.irfftn(
        x, s=[x.shape[a] for a in axes[:-1]] + [n], axes=axes, norm=norm),
    _irfftn_aval, vjp=(_irfftn_vjp,), linear=True, batch=_batch_axes)


def _fftn(x, axes, inverse, norm):
    return bind(fftn_p, (x,), {"axes": axes, "inverse": inverse, "norm": norm})


# ---- arguments as NumPy takes them --------------------------------------------
def _norm(name, norm):
    norm = "backward" if norm is None else norm
    if norm not in NORMS:
        raise ValueError(f"gnp.fft.{name}: norm must be one of {NORMS} or None, got {norm!r}")
    return norm


def _axes(name, x, s, axes):
    """(sizes, axes) as NumPy's: the axes given, else the last len(s) ones,
    else all; sizes from s, else the input's (None entries too)."""
    nd = ndim_of(x)
    if axes is None:
        axes = range(nd) if s is None else range(nd - len(s), nd)
    axes = [int(a) for a in axes]
    for a in axes:
        if not -nd <= a < nd:
            raise ValueError(f"gnp.fft.{name}: axis {a} is out of bounds for an array of "
                             f"shape {shape_of(x)}")
    axes = tuple(a % nd for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"gnp.fft.{name}: repeated axis in axes {axes}; transform along "
                         f"an axis twice with two calls")
    if s is not None and len(s) != len(axes):
        raise ValueError(f"gnp.fft.{name}: s {tuple(s)} and axes {axes} have different "
                         f"lengths; give one size per transformed axis")
    sizes = [shape_of(x)[a] if s is None or s[i] is None else int(s[i])
             for i, a in enumerate(axes)]
    for a, k in zip(axes, sizes):
        if k < 1:
            raise ValueError(f"gnp.fft.{name}: invalid number of data points ({k}) for axis "
                             f"{a}; it must be at least 1")
    return sizes, axes


def _resize(x, axis, k):
    """x cropped or zero-padded to length k along `axis`."""
    have = shape_of(x)[axis]
    if k < have:
        return sh.getitem(x, sh.along(axis, slice(0, k)))
    if k > have:
        width = [(0, 0)] * ndim_of(x)
        width[axis] = (0, k - have)
        return sh.pad(x, width)
    return x


def _as_complex(x):
    dt = _complex_dtype(dtype_of(x))
    return x if dtype_of(x) == dt else ew.astype(x, dt)


def _as_real(name, x):
    dt = np.dtype(dtype_of(x))
    if dt.kind == "c":
        raise TypeError(f"gnp.fft.{name}: the input is complex ({dt}) and {name} transforms "
                        f"real data; pass gnp.real(x), or use gnp.fft.fftn for complex data")
    return x if dt.kind == "f" else ew.astype(x, np.float64)


def _c2c(name, x, s, axes, norm, inverse):
    x = _as_complex(x)
    sizes, axes = _axes(name, x, s, axes)
    for a, k in zip(axes, sizes):
        x = _resize(x, a, k)
    return _fftn(x, axes, inverse, _norm(name, norm)) if axes else x


def _r2c(name, x, s, axes, norm):
    x = _as_real(name, x)
    sizes, axes = _axes(name, x, s, axes)
    if not axes:
        raise ValueError(f"gnp.fft.{name}: no axis to transform")
    for a, k in zip(axes, sizes):
        x = _resize(x, a, k)
    return bind(rfftn_p, (x,), {"axes": axes, "norm": _norm(name, norm)})


def _c2r(name, x, s, axes, norm):
    x = _as_complex(x)
    sizes, axes = _axes(name, x, s, axes)
    if not axes:
        raise ValueError(f"gnp.fft.{name}: no axis to transform")
    if s is None or s[-1] is None:      # the full length of a half spectrum
        sizes[-1] = 2 * (shape_of(x)[axes[-1]] - 1)
        if sizes[-1] < 1:
            raise ValueError(f"gnp.fft.{name}: invalid number of data points (0) for axis "
                             f"{axes[-1]}; give the output length (n or s)")
    for a, k in zip(axes[:-1], sizes[:-1]):
        x = _resize(x, a, k)
    x = _resize(x, axes[-1], sizes[-1] // 2 + 1)
    return bind(irfftn_p, (x,), {"axes": axes, "n": sizes[-1], "norm": _norm(name, norm)})


def _one(n):
    return None if n is None else [n]


# ---- NumPy's names ------------------------------------------------------------
def fft(a, n=None, axis=-1, norm=None):
    """The 1-D discrete Fourier transform along `axis` (n: crop or zero-pad first)."""
    return _c2c("fft", a, _one(n), [axis], norm, False)


def ifft(a, n=None, axis=-1, norm=None):
    return _c2c("ifft", a, _one(n), [axis], norm, True)


def fftn(a, s=None, axes=None, norm=None):
    return _c2c("fftn", a, s, axes, norm, False)


def ifftn(a, s=None, axes=None, norm=None):
    return _c2c("ifftn", a, s, axes, norm, True)


def fft2(a, s=None, axes=(-2, -1), norm=None):
    return _c2c("fft2", a, s, axes, norm, False)


def ifft2(a, s=None, axes=(-2, -1), norm=None):
    return _c2c("ifft2", a, s, axes, norm, True)


def rfft(a, n=None, axis=-1, norm=None):
    """The transform of real data: the n//2 + 1 frequencies 0 ... n//2."""
    return _r2c("rfft", a, _one(n), [axis], norm)


def irfft(a, n=None, axis=-1, norm=None):
    """The real signal of length n (default 2 (m - 1)) with half spectrum a."""
    return _c2r("irfft", a, _one(n), [axis], norm)


def rfftn(a, s=None, axes=None, norm=None):
    return _r2c("rfftn", a, s, axes, norm)


def irfftn(a, s=None, axes=None, norm=None):
    return _c2r("irfftn", a, s, axes, norm)


def rfft2(a, s=None, axes=(-2, -1), norm=None):
    return _r2c("rfft2", a, s, axes, norm)


def irfft2(a, s=None, axes=(-2, -1), norm=None):
    return _c2r("irfft2", a, s, axes, norm)


def hfft(a, n=None, axis=-1, norm=None):
    """The real spectrum of a signal with Hermitian symmetry, given by its
    first half a: irfft(conj(a)) scaled as a forward transform."""
    return _c2r("hfft", ew.conj(_as_complex(a)), _one(n), [axis], _SWAP[_norm("hfft", norm)])


def ihfft(a, n=None, axis=-1, norm=None):
    """The inverse of hfft: conj(rfft(a)) scaled as an inverse transform."""
    return ew.conj(_r2c("ihfft", a, _one(n), [axis], _SWAP[_norm("ihfft", norm)]))


def _shift(x, axes, sign):
    nd = ndim_of(x)
    axes = range(nd) if axes is None else [axes] if isinstance(axes, int) else axes
    axes = [int(a) % nd if nd else int(a) for a in axes]
    if not axes:
        return x
    return sh.roll(x, [sign * (shape_of(x)[a] // 2) for a in axes], axes)


def fftshift(x, axes=None):
    """The zero frequency moved to the centre (a roll by n // 2 along `axes`)."""
    return _shift(x, axes, 1)


def ifftshift(x, axes=None):
    """fftshift undone (a roll by -(n // 2))."""
    return _shift(x, axes, -1)


def fftfreq(n, d=1.0):
    """The sample frequencies of an n-point transform with spacing d: a constant."""
    return backend.current().xp.fft.fftfreq(int(n), d)


def rfftfreq(n, d=1.0):
    """The n // 2 + 1 non-negative sample frequencies of rfft."""
    return backend.current().xp.fft.rfftfreq(int(n), d)
