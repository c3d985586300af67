"""Random numbers from functional keys, as jax.random.

    key = gpuprop.random.key(0)               # uint32 array of shape (2,)
    k1, k2 = gpuprop.random.split(key)
    x = gpuprop.random.normal(k1, (3, 4))     # float32
    keys = gpuprop.random.split(key, 8)       # (8, 2): vmap over them

A key is a plain uint32 array of shape (2,) (JAX's raw key, `PRNGKey`).
Nothing is stateful: the same key always gives the same numbers, and new
keys come from `split` and `fold_in`.  The generator is counter-based:
Threefry-2x32 with 20 rounds, as JAX's default, written with
gpuprop.numpy's uint32 operations (wrapping add, xor, shifts), so it runs on
every backend and stages under jit (fused into kernels there), with the same
bits everywhere.  It follows JAX's default "partitionable" scheme: element i
of a draw of shape S is the hash of the 64-bit counter i (its high word is
0), bits = y0 ^ y1; `split(key, n)[i]` and `fold_in(key, i)` are the pair
(y0, y1) of counter i.  Hence the bits, `uniform`, `bernoulli`, `randint`,
`permutation`, `split` and `fold_in` equal JAX's (0.4.36+, x64 off) bit for
bit (`uniform` with bounds other than [0, 1) rounds u * (max - min) + min
once, as XLA's fused multiply-add).  `normal` and `truncated_normal` go
through Giles' single-precision inverse error function, as XLA's, in its
more accurate form (see _erfinv): they differ from JAX's by up to 2e-5
(JAX's own error there, near |x| = 4), `truncated_normal` also by its erf
of the bounds (a Chebyshev fit, error < 1.2e-7).
"""
import math

import numpy as np

from . import numpy as gnp
from .core import Tracer, short_dtype

KEY_DTYPE = np.dtype(np.uint32)
F64 = np.dtype(np.float64)
_MASK = 0xFFFFFFFF
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA        # Threefry's key-schedule constant
_SQRT2 = math.sqrt(2.0)


# ---- keys ----------------------------------------------------------------------
def key(seed):
    """A key from an integer seed: [seed >> 32, seed & 0xFFFFFFFF] for a
    64-bit seed; a seed that fits in int32 is taken as JAX does by default
    (32-bit mode: high word 0, so key(-1) is [0, 0xFFFFFFFF])."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"gpuprop.random.key: seed must be an integer, got "
                        f"{_describe(seed)}; to draw inside jit, pass a key made "
                        f"outside as an argument, or fold a traced integer into one "
                        f"with gpuprop.random.fold_in(key, i)")
    seed = int(seed)
    if not -2 ** 63 <= seed < 2 ** 64:
        raise ValueError(f"gpuprop.random.key: seed {seed} does not fit in 64 bits")
    high = 0 if -2 ** 31 <= seed < 2 ** 31 else (seed >> 32) & _MASK
    return gnp.asarray(np.array([high, seed & _MASK], KEY_DTYPE))


PRNGKey = key


def _describe(x):
    if isinstance(x, Tracer) or (hasattr(x, "shape") and hasattr(x, "dtype")):
        return f"an array {short_dtype(x.dtype)}[{','.join(map(str, x.shape))}]"
    return f"{type(x).__name__} {x!r}"


def _check_key(name, k):
    """k, if it is one key (a uint32 array of shape (2,)); else a TypeError
    naming the function and what it got."""
    shape, dtype = getattr(k, "shape", None), getattr(k, "dtype", None)
    if shape == (2,) and dtype == KEY_DTYPE:
        return k
    if shape is not None and len(shape) > 1 and shape[-1] == 2 and dtype == KEY_DTYPE:
        hint = (f"that is a batch of {shape[:-1]} keys: draw with each one, e.g. "
                f"gpuprop.vmap(lambda k: gpuprop.random.{name}(k, ...))(keys)")
    elif isinstance(k, (int, np.integer)):
        hint = f"make a key of that seed with gpuprop.random.key({k})"
    else:
        hint = "make one with gpuprop.random.key(seed), new ones with split or fold_in"
    raise TypeError(f"gpuprop.random.{name}: key must be a key array (uint32 of shape "
                    f"(2,)), got {_describe(k)}; {hint}")


def _check_shape(name, shape):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"gpuprop.random.{name}: shape must be a tuple of integers, "
                        f"got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"gpuprop.random.{name}: shape {shape} has a negative dimension")
    if math.prod(shape) >= 2 ** 32:
        raise ValueError(f"gpuprop.random.{name}: shape {shape} has "
                         f"{math.prod(shape)} elements; at most 2**32 - 1 per draw "
                         f"(draw in parts with split keys)")
    return shape


# ---- Threefry-2x32 -------------------------------------------------------------
def _rotate_left(x, r):
    return gnp.bitwise_or(gnp.left_shift(x, r), gnp.right_shift(x, 32 - r))


def threefry2x32(k1, k2, x0, x1):
    """Threefry-2x32 (20 rounds) of the counters (x0, x1) under the key
    (k1, k2): uint32 arrays (or Python ints) that broadcast together."""
    ks = (k1, k2, gnp.bitwise_xor(gnp.bitwise_xor(k1, k2), _PARITY))
    x0, x1 = gnp.add(x0, ks[0]), gnp.add(x1, ks[1])
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = gnp.add(x0, x1)
            x1 = gnp.bitwise_xor(_rotate_left(x1, r), x0)
        x0 = gnp.add(x0, ks[(i + 1) % 3])
        x1 = gnp.add(gnp.add(x1, ks[(i + 2) % 3]), i + 1)
    return x0, x1


def _hash_counters(k, shape):
    """(y0, y1) of shape `shape`: the hash of counters 0, 1, ... (row-major)."""
    counts = gnp.reshape(gnp.arange(math.prod(shape), dtype=KEY_DTYPE), shape)
    return threefry2x32(k[0], k[1], 0, counts)


def bits(key, shape=()):
    """Uniform random uint32 bits of `shape` (jax.random.bits)."""
    shape = _check_shape("bits", shape)
    y0, y1 = _hash_counters(_check_key("bits", key), shape)
    return gnp.bitwise_xor(y0, y1)


def split(key, num=2):
    """`num` new keys (an int or a shape): an array of shape (*num, 2)."""
    shape = _check_shape("split", num)
    y0, y1 = _hash_counters(_check_key("split", key), shape)
    return gnp.stack([y0, y1], axis=-1)


def fold_in(key, data):
    """A new key from `key` and an integer (Python, or a 0-d integer array,
    traced or not), taken modulo 2**32."""
    k = _check_key("fold_in", key)
    if isinstance(data, (int, np.integer)) and not isinstance(data, (bool, np.bool_)):
        data = int(data) & _MASK
    elif getattr(data, "shape", None) == () and np.dtype(data.dtype).kind in "iu":
        data = gnp.astype(data, KEY_DTYPE)
    else:
        raise TypeError(f"gpuprop.random.fold_in: data must be one integer (a Python "
                        f"int or a 0-d integer array), got {_describe(data)}; for many, "
                        f"vmap over them or use split(key, n)")
    return gnp.stack(threefry2x32(k[0], k[1], 0, data))


# ---- distributions -------------------------------------------------------------
def _float_dtype(name, dtype, allowed=(np.float32, np.float64)):
    dtype = np.dtype(dtype)
    if dtype not in [np.dtype(t) for t in allowed]:
        raise TypeError(f"gpuprop.random.{name}: dtype must be one of "
                        f"{', '.join(np.dtype(t).name for t in allowed)}, got {dtype.name}")
    return dtype


def _bounds(name, shape, *bounds):
    """Check that array bounds broadcast to `shape` (the result's shape)."""
    shapes = [gnp.shape(b) for b in bounds]
    try:
        ok = np.broadcast_shapes(shape, *shapes) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"gpuprop.random.{name}: bounds of shapes "
                         f"{', '.join(map(str, shapes))} do not broadcast to the shape "
                         f"{shape} of the draw; pass shape=... that they broadcast to")


def _as_dtype(x, dtype):
    """x in `dtype`: a Python number as the Python float of that value (a
    weak literal, so arithmetic stays in dtype), an array cast."""
    if isinstance(x, (int, float, np.number)):
        return float(dtype.type(x))
    return gnp.astype(x, dtype)


def _unit_floats(key, shape, dtype):
    """Floats in [0, 1): random mantissa bits under the exponent of 1.0,
    minus 1 (JAX's construction)."""
    if dtype == np.float32:
        b, nbits, uint = bits(key, shape), 32, np.uint32
    else:       # 64 bits: y0 the high word, y1 the low one
        y0, y1 = _hash_counters(key, shape)
        b = gnp.bitwise_or(gnp.left_shift(gnp.astype(y0, np.uint64), 32),
                           gnp.astype(y1, np.uint64))
        nbits, uint = 64, np.uint64
    one = int(np.array(1.0, dtype).view(uint))
    mantissa = gnp.right_shift(b, nbits - np.finfo(dtype).nmant)
    return gnp.subtract(gnp.bitcast(gnp.bitwise_or(mantissa, one), dtype), 1.0)


def uniform(key, shape=(), dtype=np.float32, minval=0.0, maxval=1.0):
    """Uniform floats in [minval, maxval) (float32 or float64)."""
    key = _check_key("uniform", key)
    shape, dtype = _check_shape("uniform", shape), _float_dtype("uniform", dtype)
    _bounds("uniform", shape, minval, maxval)
    lo, hi = _as_dtype(minval, dtype), _as_dtype(maxval, dtype)
    if isinstance(lo, float) and isinstance(hi, float):
        span = float(dtype.type(hi) - dtype.type(lo))
    else:
        span = gnp.subtract(hi, lo)
    u = _unit_floats(key, shape, dtype)
    if dtype == np.float32:
        # u * span + lo rounded once, as JAX's compiled fused multiply-add:
        # the float64 product is exact, the sum rounds twice only in ties
        scaled = gnp.add(gnp.multiply(gnp.astype(u, np.float64), _as_dtype(span, F64)),
                         _as_dtype(lo, F64))
        return gnp.maximum(lo, gnp.astype(scaled, dtype))
    return gnp.maximum(lo, gnp.add(gnp.multiply(u, span), lo))


# Giles' single-precision erfinv: w = -log((1 - x)(1 + x)); a polynomial in
# w - 2.5 below 5, in sqrt(w) - 3 above; coefficients from the highest degree.
# XLA takes w = -log1p(-x*x), whose rounding of x*x costs up to 6e-6 relative
# error near |x| = 1 (this form: 3e-7), and NumPy's float32 log is
# vectorised where its log1p is not (5x faster)
_ERFINV_SMALL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                 0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_LARGE = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                 0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _erfinv(x):
    """The inverse error function on (-1, 1) in float32 (+-inf at +-1)."""
    w = gnp.negative(gnp.log(gnp.multiply(gnp.subtract(1.0, x), gnp.add(1.0, x))))
    p = gnp.where(gnp.less(w, 5.0), _horner(_ERFINV_SMALL, gnp.subtract(w, 2.5)),
                  _horner(_ERFINV_LARGE, gnp.subtract(gnp.sqrt(w), 3.0)))
    return gnp.where(gnp.equal(gnp.abs(x), 1.0), gnp.multiply(x, np.inf), gnp.multiply(p, x))


def _horner(coefficients, t):
    """The polynomial of `coefficients` (highest degree first) at t, in t's
    dtype (the coefficients are weak Python floats)."""
    p = coefficients[0]
    for c in coefficients[1:]:
        p = gnp.add(c, gnp.multiply(p, t))
    return p


# erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), for z >= 0 (Numerical
# Recipes' Chebyshev fit, relative error < 1.2e-7); coefficients from degree 0
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
         -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def _erf(x, dtype):
    """erf of the bounds of truncated_normal, computed in float64, in dtype."""
    x = gnp.astype(x, np.float64)
    z = gnp.abs(x)
    t = gnp.divide(1.0, gnp.add(1.0, gnp.multiply(0.5, z)))
    p = _horner(_ERFC[::-1], t)
    erfc = gnp.multiply(t, gnp.exp(gnp.subtract(p, gnp.multiply(z, z))))
    return gnp.astype(gnp.multiply(gnp.sign(x), gnp.subtract(1.0, erfc)), dtype)


def normal(key, shape=(), dtype=np.float32):
    """Standard normal floats (float32): sqrt(2) erfinv(u), u uniform on
    (-1, 1), as JAX."""
    key = _check_key("normal", key)
    shape, dtype = _check_shape("normal", shape), _float_dtype("normal", dtype, (np.float32,))
    lo = float(np.nextafter(np.float32(-1.0), np.float32(0.0)))
    return gnp.multiply(_SQRT2, _erfinv(uniform(key, shape, dtype, lo, 1.0)))


def truncated_normal(key, lower, upper, shape=None, dtype=np.float32):
    """Standard normal floats (float32) conditioned on lower < x < upper
    (the bounds broadcast to `shape`, or give it when shape is None)."""
    key = _check_key("truncated_normal", key)
    dtype = _float_dtype("truncated_normal", dtype, (np.float32,))
    shape = (np.broadcast_shapes(gnp.shape(lower), gnp.shape(upper)) if shape is None
             else _check_shape("truncated_normal", shape))
    _bounds("truncated_normal", shape, lower, upper)
    lower, upper = gnp.asarray(lower, dtype), gnp.asarray(upper, dtype)
    a, b = _erf(gnp.divide(lower, _SQRT2), dtype), _erf(gnp.divide(upper, _SQRT2), dtype)
    out = gnp.multiply(_SQRT2, _erfinv(uniform(key, shape, dtype, a, b)))
    # the open interval: rounding must not reach a bound
    return gnp.clip(out, gnp.nextafter(gnp.stop_gradient(lower), np.inf),
                    gnp.nextafter(gnp.stop_gradient(upper), -np.inf))


def bernoulli(key, p=0.5, shape=None):
    """Booleans, True with probability p (a float or float array; the
    shape of p when shape is None)."""
    key = _check_key("bernoulli", key)
    if isinstance(p, float):
        dtype = np.dtype(np.float32)
    elif hasattr(p, "dtype") and np.dtype(p.dtype).kind == "f":
        dtype = np.dtype(p.dtype)
    else:
        raise TypeError(f"gpuprop.random.bernoulli: the probability p must be a float or "
                        f"a float array, got {_describe(p)}")
    shape = gnp.shape(p) if shape is None else _check_shape("bernoulli", shape)
    _bounds("bernoulli", shape, p)
    return gnp.less(uniform(key, shape, dtype), p)


def _safe_rem(x, span):
    """x % span for uint32, x where span is 0 (XLA's remainder by zero)."""
    zero = gnp.equal(span, 0)
    return gnp.where(zero, x, gnp.remainder(x, gnp.where(zero, 1, span)))


def _int_bound(x, lo, hi, dtype):
    """An integer bound clipped to [lo, hi] (not wrapped), in dtype."""
    if isinstance(x, (int, np.integer)):
        return dtype.type(min(max(int(x), lo), hi))
    return gnp.astype(gnp.clip(x, lo, hi), dtype)


def randint(key, shape, minval, maxval, dtype=np.int32):
    """Integers in [minval, maxval) (minval where maxval <= minval), of an
    integer dtype of at most 32 bits; JAX's modulus method over 64 random
    bits, whose bias is below (maxval - minval) / 2**32."""
    key = _check_key("randint", key)
    shape, dtype = _check_shape("randint", shape), np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize > 4:
        raise TypeError(f"gpuprop.random.randint: dtype must be an integer type of at "
                        f"most 32 bits (int8 ... int32, uint8 ... uint32), got {dtype.name}")
    for name, v in (("minval", minval), ("maxval", maxval)):
        if isinstance(v, (bool, np.bool_)) or not (
                isinstance(v, (int, np.integer))
                or (hasattr(v, "dtype") and np.dtype(v.dtype).kind in "iu")):
            raise TypeError(f"gpuprop.random.randint: {name} must be an integer or an "
                            f"integer array, got {_describe(v)}")
    _bounds("randint", shape, minval, maxval)
    # narrow types are drawn as int32 (less bias), with bounds in their range
    sampling = dtype if dtype.itemsize == 4 else np.dtype(np.int32)
    if sampling != dtype:
        t = np.iinfo(dtype)
        minval = _int_bound(minval, int(t.min), int(t.max), sampling)
        maxval = _int_bound(maxval, int(t.min), int(t.max) + 1, sampling)
    info = np.iinfo(sampling)
    out_of_range = gnp.greater(maxval, int(info.max))
    lo = _int_bound(minval, int(info.min), int(info.max), sampling)
    hi = _int_bound(maxval, int(info.min), int(info.max), sampling)
    k1, k2 = split(key)
    higher, lower = bits(k1, shape), bits(k2, shape)
    span = gnp.astype(gnp.subtract(hi, lo), np.uint32)
    span = gnp.where(gnp.less_equal(hi, lo), 1, span)
    # a maxval past the type's largest value: one more (which may wrap to 0)
    span = gnp.where(gnp.logical_and(out_of_range, gnp.greater(hi, lo)), gnp.add(span, 1), span)
    # (higher * 2**32 + lower) % span, without 64-bit integers
    multiplier = _safe_rem(gnp.asarray(2 ** 16, np.uint32), span)
    multiplier = _safe_rem(gnp.multiply(multiplier, multiplier), span)
    offset = gnp.add(gnp.multiply(_safe_rem(higher, span), multiplier), _safe_rem(lower, span))
    offset = _safe_rem(offset, span)
    return gnp.astype(gnp.add(lo, gnp.astype(offset, sampling)), dtype)


def _shuffle(key, x):
    """x (1-d) in a random order: sorted by random 32-bit keys, in as many
    rounds as make ties unlikely to matter (JAX's rule)."""
    n = gnp.shape(x)[0]
    rounds = math.ceil(3 * math.log(max(1, n)) / math.log(2 ** 32 - 1))
    for _ in range(rounds):
        keys = split(key)
        key = keys[0]
        x = gnp.take(x, gnp.argsort(bits(keys[1], (n,))), axis=0)
    return x


def permutation(key, x, axis=0):
    """A random permutation of range(x) (x an int), or of x's slices along
    `axis` (x an array)."""
    key = _check_key("permutation", key)
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        if x < 0:
            raise ValueError(f"gpuprop.random.permutation: x = {x}; a length must be >= 0")
        return _shuffle(key, gnp.arange(int(x), dtype=np.int32))
    if not hasattr(x, "shape") or not x.shape:
        raise TypeError(f"gpuprop.random.permutation: x must be an int or an array of at "
                        f"least one dimension, got {_describe(x)}")
    n = gnp.ndim(x)
    if not -n <= axis < n:
        raise ValueError(f"gpuprop.random.permutation: axis {axis} is out of bounds for "
                         f"an array of shape {tuple(x.shape)}")
    if n == 1:
        return _shuffle(key, x)
    order = _shuffle(key, gnp.arange(x.shape[axis], dtype=np.int32))
    return gnp.take(x, order, axis=axis)
