"""Elementwise primitives: each one's implementation, shape rule and VJP together.

A VJP rule is `(g, out, *args) -> cotangent of one argument`, written with the
functions of this package so that derivatives are differentiable again.
Binary rules reduce a broadcast cotangent back to the argument's shape with
`unbroadcast`.  The cotangent's dtype is matched to the argument's by the
backward pass.
"""
import numpy as np

from ..core import Primitive, ShapedArray, bind
from ._base import batch_elementwise, broadcast_to, unbroadcast, zeros_like
from ._rules import dtype_of, elementwise_aval


def _prim(name, impl, *vjp, **facts):
    """An elementwise primitive; impl None means the backend's function of
    the same name (a ufunc), which is then called directly."""
    if impl is None:
        impl = lambda xp, *args: getattr(xp, name)(*args)
        facts.update(backend_fn=True, ufunc=isinstance(getattr(np, name, None), np.ufunc))
    return Primitive(name, impl, elementwise_aval(name, impl), vjp=vjp or None,
                     jvp=_jvp_of(vjp) if vjp else None, batch=batch_elementwise, **facts)


def _jvp_of(rules):
    """The JVP of an elementwise primitive, from its VJP rules: its Jacobian
    is diagonal, hence its own transpose, so each argument's term is its VJP
    rule applied to the tangent, with every array argument broadcast to the
    output's shape first (so the rule's unbroadcast sums nothing).  With
    complex values this holds under JAX's pairing re(sum(g * t)) for
    holomorphic rules (g f'(z)) and for those of real outputs (re(c t), the
    JVP trace keeping the real part of the tangent): see real, imag, abs."""
    def jvp(tangents, out, *args, **params):
        shape = getattr(out, "shape", ())
        full = [broadcast_to(a, shape) if hasattr(a, "shape") else a for a in args]
        total = None
        for rule, t in zip(rules, tangents):
            if t is None or rule is None:
                continue
            term = rule(broadcast_to(t, shape), out, *full, **params)
            total = term if total is None else add(total, term)
        return total
    return jvp


# ---- arithmetic -------------------------------------------------------------
add_p = _prim("add", None,
              lambda g, out, x, y: unbroadcast(g, x),
              lambda g, out, x, y: unbroadcast(g, y))
subtract_p = _prim("subtract", None,
                   lambda g, out, x, y: unbroadcast(g, x),
                   lambda g, out, x, y: unbroadcast(negative(g), y))
multiply_p = _prim("multiply", None,
                   lambda g, out, x, y: unbroadcast(multiply(g, y), x),
                   lambda g, out, x, y: unbroadcast(multiply(g, x), y),
                   unit=1)     # x * 1 == x bit for bit (x + 0 is not: -0.0 + 0 is 0.0)
divide_p = _prim("divide", None,
                 lambda g, out, x, y: unbroadcast(divide(g, y), x),
                 lambda g, out, x, y: unbroadcast(negative(multiply(g, divide(out, y))), y))
negative_p = _prim("negative", None,
                   lambda g, out, x: negative(g))


def _power_dx(g, out, x, y):
    if type(y) in (int, float):    # a constant exponent: no masking needed
        if y == 0:
            return unbroadcast(multiply(g, 0.0), x)
        return unbroadcast(multiply(g, multiply(y, power(x, y - 1))), x)
    # y * x**(y-1), taken as 0 where y == 0 (so 0**0 has derivative 0, not nan);
    # the base is 1 there, so the branch not taken stays finite (0**-1 is inf)
    zero = equal(y, 0)
    safe = where(zero, 0.0, multiply(y, power(where(zero, 1.0, x), subtract(y, 1))))
    return unbroadcast(multiply(g, safe), x)


def _power_dy(g, out, x, y):
    # d/dy x**y = log(x) x**y, taken as 0 at x == 0 (the limit along y > 0)
    logx = log(where(equal(x, 0), 1.0, x))
    return unbroadcast(multiply(g, multiply(out, logx)), y)


power_p = _prim("power", None, _power_dx, _power_dy)

# ---- transcendental ---------------------------------------------------------
exp_p = _prim("exp", None, lambda g, out, x: multiply(g, out))
log_p = _prim("log", None, lambda g, out, x: divide(g, x))
log1p_p = _prim("log1p", None,
                lambda g, out, x: divide(g, add(x, 1)))
expm1_p = _prim("expm1", None,
                lambda g, out, x: multiply(g, add(out, 1)))
sqrt_p = _prim("sqrt", None,
               lambda g, out, x: divide(multiply(g, 0.5), out))
sin_p = _prim("sin", None, lambda g, out, x: multiply(g, cos(x)))
cos_p = _prim("cos", None,
              lambda g, out, x: negative(multiply(g, sin(x))))
tanh_p = _prim("tanh", None,
               lambda g, out, x: multiply(g, subtract(1, multiply(out, out))))
# 1/(1+exp(-x)) written through tanh: no overflow warning for large |x|
logistic_p = _prim("logistic", lambda xp, x: xp.tanh(x * 0.5) * 0.5 + 0.5,
                   lambda g, out, x: multiply(g, multiply(out, subtract(1, out))))


def _abs_rule(g, out, x):
    """Real x: g sign(x).  Complex x (as JAX): |z| is not holomorphic; its
    derivative t -> re(conj(z) t) / |z| transposes to g conj(z) / |z|, taken
    as 0 at z = 0 (where conj(z) is 0)."""
    if np.dtype(dtype_of(x)).kind != "c":
        return multiply(g, sign(x))
    return multiply(g, divide(conj(x), where(equal(out, 0), 1.0, out)))


abs_p = _prim("abs", None, _abs_rule)
LN2, LN10 = float(np.log(2.0)), float(np.log(10.0))     # Python floats: float32 stays


def _one_minus_square(x):
    """1 - x*x as (1 - x)(1 + x): accurate near |x| = 1."""
    return multiply(subtract(1, x), add(1, x))


tan_p = _prim("tan", None,
              lambda g, out, x: multiply(g, add(1, multiply(out, out))))
arcsin_p = _prim("arcsin", None,
                 lambda g, out, x: divide(g, sqrt(_one_minus_square(x))))
arccos_p = _prim("arccos", None,
                 lambda g, out, x: negative(divide(g, sqrt(_one_minus_square(x)))))
arctan_p = _prim("arctan", None,
                 lambda g, out, x: divide(g, add(1, multiply(x, x))))
sinh_p = _prim("sinh", None, lambda g, out, x: multiply(g, cosh(x)))
cosh_p = _prim("cosh", None, lambda g, out, x: multiply(g, sinh(x)))
arcsinh_p = _prim("arcsinh", None,
                  lambda g, out, x: divide(g, sqrt(add(multiply(x, x), 1))))
# sqrt(x - 1) sqrt(x + 1), not sqrt(x*x - 1): the same for real x >= 1, and
# the derivative of the principal branch for complex x
arccosh_p = _prim("arccosh", None,
                  lambda g, out, x: divide(g, multiply(sqrt(subtract(x, 1)), sqrt(add(x, 1)))))
arctanh_p = _prim("arctanh", None,
                  lambda g, out, x: divide(g, _one_minus_square(x)))
log2_p = _prim("log2", None, lambda g, out, x: divide(g, multiply(x, LN2)))
log10_p = _prim("log10", None, lambda g, out, x: divide(g, multiply(x, LN10)))
exp2_p = _prim("exp2", None, lambda g, out, x: multiply(g, multiply(out, LN2)))


def _arctan2_rule(first):
    """d atan2(y, x) = (x dy - y dx) / (x^2 + y^2)."""
    def rule(g, out, y, x):
        r2 = add(multiply(x, x), multiply(y, y))
        return unbroadcast(divide(multiply(g, x), r2), y) if first else \
            unbroadcast(negative(divide(multiply(g, y), r2)), x)
    return rule


def _hypot_rule(first):
    """d hypot(x, y) = (x dx + y dy) / hypot; taken as 0 at the origin (as
    abs at 0), so that the rule never divides by zero."""
    def rule(g, out, x, y):
        me = x if first else y
        share = divide(multiply(g, me), where(equal(out, 0), 1.0, out))
        return unbroadcast(share, me)
    return rule


arctan2_p = _prim("arctan2", None, _arctan2_rule(True), _arctan2_rule(False))
hypot_p = _prim("hypot", None, _hypot_rule(True), _hypot_rule(False))

# ---- complex parts -------------------------------------------------------------
# Not holomorphic: their derivatives are real-linear maps, and a VJP rule is
# the transpose of the JVP under the pairing re(sum(cotangent * tangent)), as
# in JAX.  re(t) transposes to g (made complex by the backward pass), im(t)
# to -1j g, conj(t) to conj(g); each rule applied to a tangent, cut to the
# real part where the output is real, is the JVP, as _jvp_of derives it.
real_p = _prim("real", None, lambda g, out, x: g, view=True)
imag_p = _prim("imag", None, lambda g, out, x: multiply(g, -1j), view=True)
conj_p = _prim("conjugate", None, lambda g, out, x: conj(g))

# ---- piecewise --------------------------------------------------------------
sign_p = _prim("sign", None)        # derivative 0: no rule
floor_p = _prim("floor", None)
ceil_p = _prim("ceil", None)
rint_p = _prim("rint", None)        # round half to even, as NumPy


def _select_rule(first):
    """maximum/minimum: the cotangent goes to the selected argument, split
    equally on ties (a valid subgradient, as JAX does)."""
    def rule(g, out, x, y):
        me, other = (x, y) if first else (y, x)
        share = where(equal(me, other), multiply(g, 0.5), where(equal(out, me), g, 0.0))
        return unbroadcast(share, me)
    return rule


maximum_p = _prim("maximum", None,
                  _select_rule(True), _select_rule(False))
minimum_p = _prim("minimum", None,
                  _select_rule(True), _select_rule(False))
# fmax/fmin ignore a NaN operand: the cotangent goes to the other one
fmax_p = _prim("fmax", None, _select_rule(True), _select_rule(False))
fmin_p = _prim("fmin", None, _select_rule(True), _select_rule(False))
trunc_p = _prim("trunc", None)
signbit_p = _prim("signbit", None)
floor_divide_p = _prim("floor_divide", None)      # derivative 0
# x - y * floor(x / y) and x - y * trunc(x / y): derivative 1 in x, minus the
# quotient in y (NumPy's own quotient, so the rule matches the value)
remainder_p = _prim("remainder", None,
                    lambda g, out, x, y: unbroadcast(g, x),
                    lambda g, out, x, y: unbroadcast(negative(multiply(g, floor_divide(x, y))), y))
fmod_p = _prim("fmod", None,
               lambda g, out, x, y: unbroadcast(g, x),
               lambda g, out, x, y: unbroadcast(negative(multiply(g, trunc(divide(x, y)))), y))
where_p = _prim("where", None,
                None,
                lambda g, out, c, x, y: unbroadcast(where(c, g, 0.0), x),
                lambda g, out, c, x, y: unbroadcast(where(c, 0.0, g), y))
clip_p = _prim("clip", None,
               lambda g, out, x, lo, hi: unbroadcast(
                   where(logical_and(greater_equal(x, lo), less_equal(x, hi)), g, 0.0), x),
               # where a_min > a_max, NumPy's clip gives a_max
               lambda g, out, x, lo, hi: unbroadcast(
                   where(logical_and(less(x, lo), less_equal(lo, hi)), g, 0.0), lo),
               lambda g, out, x, lo, hi: unbroadcast(
                   where(logical_or(greater(x, hi), greater(lo, hi)), g, 0.0), hi),
               takes_out=True)


def _astype_impl(xp, x, dtype):
    return x.astype(dtype) if hasattr(x, "astype") else xp.asarray(x, dtype=dtype)


# The backward pass casts each cotangent to its argument's dtype, so the rule
# of astype is the identity.
astype_p = _prim("astype", _astype_impl, lambda g, out, x, dtype: g)
stop_gradient_p = _prim("stop_gradient", lambda xp, x: x, view=True)   # no rule: constant
# x itself; its `token` (one per rematerialised call) keeps CSE from merging
# a recomputation with the computation it repeats
remat_barrier_p = _prim("remat_barrier", lambda xp, x, token: x, lambda g, out, x, token: g,
                        view=True)

# ---- comparisons and logic (not differentiable; bool out) -------------------
greater_p = _prim("greater", None)
greater_equal_p = _prim("greater_equal", None)
less_p = _prim("less", None)
less_equal_p = _prim("less_equal", None)
equal_p = _prim("equal", None)
not_equal_p = _prim("not_equal", None)
logical_and_p = _prim("logical_and", None)
logical_or_p = _prim("logical_or", None)
logical_not_p = _prim("logical_not", None)
isfinite_p = _prim("isfinite", None)
isnan_p = _prim("isnan", None)

# ---- bits (integers; not differentiable) ------------------------------------
# NumPy's ufuncs: unsigned arithmetic wraps modulo 2**bits, right_shift of an
# unsigned integer is logical, a shift by the width or more gives 0.
bitwise_and_p = _prim("bitwise_and", None)
bitwise_or_p = _prim("bitwise_or", None)
bitwise_xor_p = _prim("bitwise_xor", None)
left_shift_p = _prim("left_shift", None)
right_shift_p = _prim("right_shift", None)
invert_p = _prim("invert", None)        # bitwise not (logical not on bool)
# the next representable value of x towards y (the derivative in x is 1 almost
# everywhere, but no rule is declared: it serves to make bounds open)
nextafter_p = _prim("nextafter", None)


def _bitcast_impl(xp, x, dtype):
    return x.view(dtype)


def _bitcast_aval(x, dtype):
    if not isinstance(dtype, np.dtype):
        raise TypeError(f"gnp.bitcast: dtype must be a numpy dtype, got {dtype!r}")
    if x.dtype.itemsize != dtype.itemsize:
        raise TypeError(f"gnp.bitcast: cannot view {x} as {dtype.name}: their items have "
                        f"{x.dtype.itemsize} and {dtype.itemsize} bytes; bitcast between "
                        f"types of one width (uint32 <-> float32, uint64 <-> float64)")
    return ShapedArray(x.shape, dtype)


# the same bits read as another type of the same width (JAX's
# lax.bitcast_convert_type; NumPy's x.view(dtype)); a view of x
bitcast_p = Primitive("bitcast", _bitcast_impl, _bitcast_aval, batch=batch_elementwise,
                      view=True)


# ---- the public functions ---------------------------------------------------
def add(x, y): return bind(add_p, (x, y), {})
def subtract(x, y): return bind(subtract_p, (x, y), {})
def multiply(x, y): return bind(multiply_p, (x, y), {})
def divide(x, y): return bind(divide_p, (x, y), {})
def power(x, y): return bind(power_p, (x, y), {})
def arctan2(y, x): return bind(arctan2_p, (y, x), {})
def hypot(x, y): return bind(hypot_p, (x, y), {})
def maximum(x, y): return bind(maximum_p, (x, y), {})
def minimum(x, y): return bind(minimum_p, (x, y), {})
def fmax(x, y): return bind(fmax_p, (x, y), {})
def fmin(x, y): return bind(fmin_p, (x, y), {})
def remainder(x, y): return bind(remainder_p, (x, y), {})
def fmod(x, y): return bind(fmod_p, (x, y), {})
def floor_divide(x, y): return bind(floor_divide_p, (x, y), {})
def divmod(x, y): return floor_divide(x, y), remainder(x, y)
def greater(x, y): return bind(greater_p, (x, y), {})
def greater_equal(x, y): return bind(greater_equal_p, (x, y), {})
def less(x, y): return bind(less_p, (x, y), {})
def less_equal(x, y): return bind(less_equal_p, (x, y), {})
def equal(x, y): return bind(equal_p, (x, y), {})
def not_equal(x, y): return bind(not_equal_p, (x, y), {})
def logical_and(x, y): return bind(logical_and_p, (x, y), {})
def logical_or(x, y): return bind(logical_or_p, (x, y), {})
def bitwise_and(x, y): return bind(bitwise_and_p, (x, y), {})
def bitwise_or(x, y): return bind(bitwise_or_p, (x, y), {})
def bitwise_xor(x, y): return bind(bitwise_xor_p, (x, y), {})
def left_shift(x, y): return bind(left_shift_p, (x, y), {})
def right_shift(x, y): return bind(right_shift_p, (x, y), {})
def nextafter(x, y): return bind(nextafter_p, (x, y), {})


def _is_complex(x):
    return np.dtype(dtype_of(x)).kind == "c"


def real(val):
    """The real part (a real array is its own real part)."""
    return bind(real_p, (val,), {}) if _is_complex(val) else val


def imag(val):
    """The imaginary part (zeros for a real array: a constant)."""
    if _is_complex(val):
        return bind(imag_p, (val,), {})
    return zeros_like(val)


def conj(x):
    """The complex conjugate (a real array is its own)."""
    return bind(conj_p, (x,), {}) if _is_complex(x) else x


def angle(z, deg=False):
    """The argument of z, arctan2(imag(z), real(z)), in radians (degrees
    with deg=True); differentiable for complex z away from 0."""
    a = arctan2(imag(z), real(z))
    return multiply(a, 180 / np.pi) if deg else a


def iscomplexobj(x):
    """Whether x has a complex dtype (not whether any value has an imaginary part)."""
    return _is_complex(x)


def isrealobj(x):
    return not _is_complex(x)


def iscomplex(x):
    """Where the imaginary part is nonzero (bool array)."""
    return not_equal(imag(x), 0)


def isreal(x):
    """Where the imaginary part is zero (bool array)."""
    return equal(imag(x), 0)


def to_dtype(x, dtype):
    """x as `dtype`; complex to real keeps the real part (a complex cotangent
    of a real value, or tangent of a real output, as JAX), without NumPy's
    ComplexWarning."""
    if _is_complex(x) and np.dtype(dtype).kind != "c":
        x = real(x)
    return x if dtype_of(x) == dtype else astype(x, dtype)


def bitcast(x, dtype):
    """The bits of x read as `dtype`, of the same width (x.view(dtype))."""
    dtype = np.dtype(dtype)
    if getattr(x, "dtype", None) == dtype:
        return x
    if not hasattr(x, "dtype"):
        raise TypeError(f"gnp.bitcast: x must be an array, got {type(x).__name__} "
                        f"{x!r}; make it one with gnp.asarray(x, dtype)")
    return bind(bitcast_p, (x,), {"dtype": dtype})


def _unary(prim):
    """The public function of a one-argument primitive, under its name."""
    def f(x):
        return bind(prim, (x,), {})
    f.__name__ = f.__qualname__ = prim.name
    return f


(negative, exp, log, log1p, expm1, sqrt, sin, cos, tanh, abs, _sign, logical_not, isfinite,
 isnan, tan, arcsin, arccos, arctan, sinh, cosh, arcsinh, arccosh, arctanh, log2, log10, exp2,
 floor, ceil, rint, trunc, signbit, invert) = map(_unary, (
    negative_p, exp_p, log_p, log1p_p, expm1_p, sqrt_p, sin_p, cos_p, tanh_p, abs_p, sign_p,
    logical_not_p, isfinite_p, isnan_p, tan_p, arcsin_p, arccos_p, arctan_p, sinh_p, cosh_p,
    arcsinh_p, arccosh_p, arctanh_p, log2_p, log10_p, exp2_p, floor_p, ceil_p, rint_p, trunc_p,
    signbit_p, invert_p))


def sign(x):
    """-1, 0 or 1 by the sign of x (derivative 0); for complex x NumPy 2's
    z / |z| (0 at 0), which is differentiable."""
    if not _is_complex(x):
        return _sign(x)
    r = abs(x)
    return where(equal(r, 0), 0.0, divide(x, where(equal(r, 0), 1.0, r)))


def square(x): return multiply(x, x)
def reciprocal(x): return divide(1.0, x)
def deg2rad(x): return multiply(x, np.pi / 180)
def rad2deg(x): return multiply(x, 180 / np.pi)


def fabs(x):
    """|x| as a float (NumPy's fabs makes integers float64)."""
    return abs(x if np.dtype(dtype_of(x)).kind == "f" else astype(x, np.float64))


def copysign(x1, x2):
    """|x1| with the sign bit of x2 (-0.0 counts as negative, as in NumPy)."""
    a = abs(x1)
    return where(signbit(x2), negative(a), a)


def heaviside(x1, x2):
    """0 where x1 < 0, 1 where x1 > 0, x2 where x1 == 0 (NaN stays NaN);
    differentiable in x2 only."""
    step = where(less(x1, 0), 0.0, where(greater(x1, 0), 1.0, x2))
    return where(isnan(x1), x1, step)


def sinc(x):
    """sin(pi x) / (pi x), 1 at 0.  Near 0 its Taylor series (exact to
    rounding for |pi x| < 1e-3), so every derivative is right at 0 too."""
    px = multiply(x, np.pi)
    small = less(abs(px), 1e-3)
    safe = where(small, 1.0, px)
    p2 = multiply(px, px)
    series = add(subtract(1.0, divide(p2, 6.0)), divide(multiply(p2, p2), 120.0))
    return where(small, series, divide(sin(safe), safe))


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced by `nan`, `posinf` and `neginf` (default:
    the dtype's largest and lowest finite values); the gradient passes where
    x is finite."""
    dt = np.dtype(dtype_of(x))
    if dt.kind == "c":      # each part on its own, as NumPy
        return add(nan_to_num(real(x), copy, nan, posinf, neginf),
                   multiply(nan_to_num(imag(x), copy, nan, posinf, neginf), 1j))
    if dt.kind != "f":
        return x
    info = np.finfo(dt)
    hi = float(info.max) if posinf is None else posinf
    lo = float(info.min) if neginf is None else neginf
    x = where(isnan(x), nan, x)
    x = where(equal(x, np.inf), hi, x)
    return where(equal(x, -np.inf), lo, x)


def round(x, decimals=0):
    """x rounded to `decimals` places, halves to even: NumPy's
    rint(x * 10**decimals) / 10**decimals.  Its derivative is 0."""
    decimals = int(decimals)
    if decimals == 0:
        return rint(x)
    if decimals > 0:
        return divide(rint(multiply(x, 10.0 ** decimals)), 10.0 ** decimals)
    return multiply(rint(divide(x, 10.0 ** -decimals)), 10.0 ** -decimals)


def logistic(x):
    """The logistic sigmoid 1 / (1 + exp(-x)), stable for any x."""
    return bind(logistic_p, (x,), {})


def where(condition, x, y):
    """`x` where `condition` holds, else `y`.  Both branches are computed and
    differentiated: the gradient of the branch not taken is 0 * (its
    derivative), which is NaN if that derivative is infinite or NaN (e.g.
    where(x > 0, log(x), 0) at x = 0).  The safe pattern makes the untaken
    branch harmless: log(where(x > 0, x, 1))."""
    return bind(where_p, (condition, x, y), {})


def clip(x, a_min=None, a_max=None):
    """x limited to [a_min, a_max]; the gradient passes where a_min <= x <= a_max."""
    lo = -np.inf if a_min is None else a_min
    hi = np.inf if a_max is None else a_max
    return bind(clip_p, (x, lo, hi), {})


def astype(x, dtype):
    return bind(astype_p, (x,), {"dtype": np.dtype(dtype)})


def remat_barrier(x, token):
    return bind(remat_barrier_p, (x,), {"token": token})


def stop_gradient(x):
    """x, seen by every derivative as a constant."""
    return bind(stop_gradient_p, (x,), {})


true_divide = divide
absolute = abs
conjugate = conj
mod = remainder
radians, degrees = deg2rad, rad2deg
sigmoid = logistic
around = round
# NumPy 2's short names
asin, acos, atan, atan2 = arcsin, arccos, arctan, arctan2
bitwise_left_shift, bitwise_right_shift, bitwise_not = left_shift, right_shift, invert
asinh, acosh, atanh = arcsinh, arccosh, arctanh
