"""Complex numbers: values and dtypes against NumPy, every function that takes
complex checked with check_grads (order 2) at complex inputs, and JAX's
derivative conventions ("complex numbers and differentiation" in its FAQ),
checked against finite differences in the real and imaginary directions and,
where JAX is installed, against jax.grad, vjp, jvp, jacfwd and jacrev:

- a real f of complex z = x + iy: grad(f)(z) = df/dx - i df/dy;
- a holomorphic f: grad(f, holomorphic=True)(z) = f'(z), and the holomorphic
  Jacobians are those of complex derivatives;
- a VJP is the transpose of the JVP under re(sum(g * t)): no conjugation
  for holomorphic operations; a complex cotangent into a real input keeps
  its real part.
"""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.compile import fusion
from gpuprop.testing import check_grads
from support import REF, assert_same, check, dev, host, uniform


def cplx(shape, seed=0, lo=0.3, hi=1.2):
    """Complex values with |re| and |im| in [lo, hi]: off the real and
    imaginary axes (branch cuts of log, sqrt, arcsin...) and away from 0."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], (2,) + tuple(shape))
    mags = rng.uniform(lo, hi, (2,) + tuple(shape))
    return signs[0] * mags[0] + 1j * signs[1] * mags[1]


UNARY = ["exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "arcsin",
         "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "log2", "log10",
         "exp2", "abs", "sign", "real", "imag", "conj", "conjugate", "angle", "square",
         "reciprocal", "negative", "logistic"]


@pytest.mark.parametrize("name", UNARY)
def test_unary_values_and_derivatives(name):
    check(lambda m, z: getattr(m, name)(z), cplx((2, 3)), rtol=1e-12)


@pytest.mark.parametrize("fn", [
    lambda m, z, w: z + w, lambda m, z, w: z - w, lambda m, z, w: z * w,
    lambda m, z, w: z / w, lambda m, z, w: m.power(z, w), lambda m, z, w: z ** 3,
    lambda m, z, w: (1.5 - 0.5j) * z + w, lambda m, z, w: m.where(m.real(z) > 0, z, w),
    lambda m, z, w: m.maximum(z, w), lambda m, z, w: m.minimum(z, w),
    lambda m, z, w: m.fmax(z, w), lambda m, z, w: m.fmin(z, w), lambda m, z, w: m.min(z * w),
    lambda m, z, w: m.angle(z, deg=True),
], ids=["add", "sub", "mul", "div", "power", "cube", "scalar", "where", "maximum", "minimum",
        "fmax", "fmin", "min", "angle-deg"])
def test_binary_values_and_derivatives(fn):
    check(fn, cplx((2, 3)), cplx((3,), seed=1), rtol=1e-12)


@pytest.mark.parametrize("fn", [
    lambda m, z, x: z * x, lambda m, z, x: x / z, lambda m, z, x: m.power(x * x + 1.0, z),
    lambda m, z, x: m.abs(z) * x + m.real(z * x), lambda m, z, x: m.astype(x, np.complex128) * z,
], ids=["mul", "div", "power", "abs-real", "astype"])
def test_real_and_complex_arguments_together(fn):
    """A real argument's cotangent is the real part of the complex one."""
    check(fn, cplx((2, 3)), uniform((2, 3)), rtol=1e-12)


@pytest.mark.parametrize("fn", [
    lambda m, z: m.sum(z, axis=0), lambda m, z: m.prod(z, axis=1), lambda m, z: m.mean(z),
    lambda m, z: m.var(z, axis=1), lambda m, z: m.std(z), lambda m, z: m.cumsum(z, axis=1),
    lambda m, z: m.cumprod(z, axis=0), lambda m, z: m.matmul(z, z.T),
    lambda m, z: m.dot(z[0], z[1]), lambda m, z: m.vdot(z[0], z[1]),
    lambda m, z: m.inner(z, z), lambda m, z: m.outer(z[0], z[1]),
    lambda m, z: m.einsum("ij,kj->ik", z, z), lambda m, z: m.tensordot(z, z, ([1], [1])),
    lambda m, z: m.kron(z[0], z[1]),
    lambda m, z: m.concatenate([z, m.conj(z)], axis=1), lambda m, z: m.transpose(z)[1:, ::-1],
    lambda m, z: m.reshape(z, (3, 2)), lambda m, z: m.pad(z, ((1, 0), (0, 2))),
    lambda m, z: m.roll(z, 1, axis=1), lambda m, z: m.flip(z, 1), lambda m, z: z[:, [0, 2, 0]],
    lambda m, z: m.diff(z, axis=1), lambda m, z: m.trace(m.matmul(z, z.T)),
    lambda m, z: m.sort(z, axis=1), lambda m, z: m.nansum(z, axis=0), lambda m, z: m.max(z),
    lambda m, z: m.stack([z, 2 * z]), lambda m, z: m.tile(z, (1, 2)),
    lambda m, z: m.take_along_axis(z, m.asarray([[0, 2], [1, 1]]), axis=1),
    lambda m, z: m.select([m.real(z) > 0], [z * z], 1j), lambda m, z: m.convolve(z[0], z[1]),
    lambda m, z: m.sinc(z), lambda m, z: m.cross(z[0], z[1]), lambda m, z: m.trapezoid(z),
    lambda m, z: m.gradient(z, axis=1), lambda m, z: m.nan_to_num(z),
], ids=["sum", "prod", "mean", "var", "std", "cumsum", "cumprod", "matmul", "dot", "vdot",
        "inner", "outer", "einsum", "tensordot", "kron", "concatenate", "transpose", "reshape",
        "pad", "roll", "flip", "gather", "diff", "trace", "sort", "nansum", "max", "stack",
        "tile", "take_along_axis", "select", "convolve", "sinc", "cross", "trapezoid",
        "gradient", "nan_to_num"])
def test_reductions_products_and_shapes(fn):
    check(fn, cplx((2, 3)), rtol=1e-12)


# ---- the convention, against finite differences ----------------------------------------
def _fd(f, z, direction, h=1e-6):
    """(f(z + h d) - f(z - h d)) / 2h on the host."""
    return (f(z + h * direction) - f(z - h * direction)) / (2 * h)


def test_grad_of_a_real_function_is_df_dx_minus_i_df_dy():
    z = cplx((3,))
    ref = lambda z: np.sum(np.abs(z) ** 3 + np.angle(z) * np.real(z * z))
    f = lambda z: gnp.sum(gnp.abs(z) ** 3 + gnp.angle(z) * gnp.real(z * z))
    g = host(gp.grad(f)(dev(z)))
    for k in range(3):
        e = np.eye(3)[k]
        want = _fd(ref, z, e) - 1j * _fd(ref, z, 1j * e)
        np.testing.assert_allclose(g[k], want, rtol=1e-7)


def test_the_readme_example():
    """|z|^2 has gradient 2 conj(z); z^2, holomorphic, has derivative 2z."""
    z = dev(3.0 + 4.0j)
    assert host(gp.grad(lambda z: gnp.abs(z) ** 2)(z)) == pytest.approx(6 - 8j)
    assert host(gp.grad(lambda z: gnp.real(z * gnp.conj(z)))(z)) == pytest.approx(6 - 8j)
    assert host(gp.grad(lambda z: z ** 2, holomorphic=True)(z)) == pytest.approx(6 + 8j)


@pytest.mark.parametrize("fn", [lambda m, z: m.sin(z) * z, lambda m, z: m.exp(m.cumsum(z)),
                                lambda m, z: m.fft.fft(z * z)], ids=["sin", "cumsum", "fft"])
def test_holomorphic_jacobians_against_finite_differences(fn):
    """f'(z) is the same along the real and the imaginary direction."""
    z = cplx((4,))
    f = lambda z: fn(REF, z)
    want_re = np.stack([_fd(f, z, e) for e in np.eye(4)], axis=-1)
    want_im = np.stack([_fd(f, z, 1j * e) / 1j for e in np.eye(4)], axis=-1)
    np.testing.assert_allclose(want_re, want_im, rtol=1e-6, atol=1e-8)
    for jac in (gp.jacfwd, gp.jacrev):
        got = jac(lambda z: fn(gnp, z), holomorphic=True)(dev(z))
        assert_same(got, want_re, rtol=1e-6, atol=1e-8)
    got = host(gp.hessian(lambda z: gnp.sum(gnp.sin(z) * z), holomorphic=True)(dev(z)))
    np.testing.assert_allclose(got, np.diag(2 * np.cos(z) - z * np.sin(z)), rtol=1e-12)


def test_jvp_and_vjp_with_complex_tangents_and_cotangents():
    z, t, g = cplx((3,)), cplx((3,), seed=1), cplx((3,), seed=2)
    ref = lambda z: np.conj(z) * np.exp(z) + np.abs(z)
    f = lambda z: gnp.conj(z) * gnp.exp(z) + gnp.abs(z)
    out, tangent = gp.jvp(f, (dev(z),), (dev(t),))
    assert_same(tangent, _fd(ref, z, t), rtol=1e-7)
    (ct,) = gp.vjp(f, dev(z))[1](dev(g))
    # the transpose identity: re<g, J t> = re<J^T g, t>
    assert np.real(np.sum(host(ct) * t)) == pytest.approx(np.real(np.sum(g * host(tangent))))


def test_complex_cotangent_into_a_real_input_keeps_its_real_part():
    (ct,) = gp.vjp(lambda x: x * (1 + 2j), dev(2.0))[1](dev(1 - 1j))
    assert host(ct).dtype == np.float64 and host(ct) == pytest.approx(3.0)
    out, t = gp.jvp(gnp.imag, (dev(3 + 4j),), (dev(1 - 2j),))
    assert host(t) == pytest.approx(-2.0)


def test_float32_and_complex64_stay_single_precision():
    z = dev(cplx((3,)), np.complex64)
    assert (gnp.exp(z) * 2j).dtype == np.complex64          # a Python complex is weak
    assert (dev(np.ones(3), np.float32) * 1j).dtype == np.complex64
    assert gnp.abs(z).dtype == gnp.real(z).dtype == np.float32
    assert gp.grad(lambda z: gnp.sum(gnp.abs(z)))(z).dtype == np.complex64
    assert gp.grad(lambda x: gnp.sum(gnp.abs(x * 1j)))(dev(np.ones(3), np.float32)).dtype \
        == np.float32


def test_errors_follow_jax():
    z = dev(3 + 4j)
    with pytest.raises(TypeError, match="holomorphic=True"):
        gp.grad(lambda z: z * z)(z)
    with pytest.raises(TypeError, match="needs complex outputs"):
        gp.grad(gnp.abs, holomorphic=True)(z)
    with pytest.raises(TypeError, match="needs complex inputs"):
        gp.grad(lambda x: x * 1j, holomorphic=True)(dev(2.0))
    with pytest.raises(TypeError, match="jacfwd needs real inputs"):
        gp.jacfwd(lambda z: z * z)(z)
    with pytest.raises(TypeError, match="holomorphic=True"):
        gp.jacrev(lambda z: z * z)(z)
    with pytest.raises(TypeError, match="needs complex outputs"):
        gp.jacfwd(gnp.abs, holomorphic=True)(dev([3 + 4j]))
    # complex outputs of real inputs: jacfwd takes them, as JAX
    assert host(gp.jacfwd(lambda x: x * 1j)(dev(2.0))) == 1j


# ---- the API ------------------------------------------------------------------------
def test_nan_to_num_replaces_each_part():
    z = np.array([complex(np.nan, 1.0), complex(2.0, np.inf), complex(-np.inf, np.nan)])
    assert_same(gnp.nan_to_num(dev(z)), np.nan_to_num(z))
    assert_same(gnp.nan_to_num(dev(z), nan=5.0, posinf=1.0), np.nan_to_num(z, nan=5.0, posinf=1.0))


def test_parts_predicates_and_constructors():
    z = np.array([1 + 2j, 3 + 0j, -1e-17j])
    assert_same(gnp.iscomplex(dev(z)), np.iscomplex(z))
    assert_same(gnp.isreal(dev(z)), np.isreal(z))
    assert_same(gnp.isreal(dev([1.0, 2.0])), np.isreal([1.0, 2.0]))
    assert gnp.iscomplexobj(dev(z)) and not gnp.iscomplexobj(dev([1.0]))
    assert gnp.isrealobj(dev([1.0]))
    assert_same(gnp.real_if_close(dev(z[1:])), np.real_if_close(z[1:]))
    assert_same(gnp.real_if_close(dev(z)), np.real_if_close(z))
    assert_same(gnp.real(dev([1.0, 2.0])), np.real([1.0, 2.0]))
    assert_same(gnp.imag(dev([1.0, 2.0])), np.imag([1.0, 2.0]))
    assert_same(gnp.angle(dev([-1.0, 2.0])), np.angle([-1.0, 2.0]))
    assert gnp.complex64 is np.complex64 and gnp.complex128 is np.complex128
    assert gnp.zeros(2, gnp.complex64).dtype == np.complex64
    assert_same(gnp.asarray([1, 2], gnp.complex128), np.asarray([1, 2], np.complex128))


def test_tracer_attributes():
    z = cplx((3,))

    def f(z):
        return gnp.sum(z.real * z.imag + gnp.real(z.conj() * z.conjugate()))
    ref = lambda z: np.sum(z.real * z.imag + np.real(z.conj() * z.conjugate()))
    g = host(gp.grad(f)(dev(z)))
    want = np.array([_fd(ref, z, e) - 1j * _fd(ref, z, 1j * e) for e in np.eye(3)])
    np.testing.assert_allclose(g, want, rtol=1e-7)
    assert host(gp.jit(lambda z: z.imag)(dev(z))) == pytest.approx(z.imag)
    check_grads(lambda z: z.real * z.imag, (dev(z),), order=2)


def test_numpy_functions_on_tracers_route_to_gnp():
    z = cplx((4,))
    g = gp.grad(lambda z: gnp.sum(np.abs(np.fft.fft(np.conj(z)))))(dev(z))
    want = gp.grad(lambda z: gnp.sum(gnp.abs(gnp.fft.fft(gnp.conj(z)))))(dev(z))
    assert_same(g, host(want))


def test_jit_and_vmap():
    """Complex equations under jit (the fused kernels leave them alone) and vmap."""
    z, x = cplx((4, 3)), uniform((4, 3))

    def f(z, x):
        return gnp.abs(gnp.exp(z * x + 1j) * 2.0 + gnp.conj(z)) + gnp.angle(z) * x
    ref = lambda z, x: np.abs(np.exp(z * x + 1j) * 2.0 + np.conj(z)) + np.angle(z) * x
    assert_same(gp.jit(f)(dev(z), dev(x)), ref(z, x), rtol=1e-12)
    g = gp.jit(gp.grad(lambda z, x: gnp.sum(f(z, x))))(dev(z), dev(x))
    assert_same(g, host(gp.grad(lambda z, x: gnp.sum(f(z, x)))(dev(z), dev(x))), rtol=1e-12)
    assert_same(gp.vmap(f, in_axes=(1, None))(dev(z), dev(x[:, 0])), ref(z.T, x[:, 0]),
                rtol=1e-12)
    zs = dev(z, np.complex64)
    assert gp.jit(lambda z: gnp.imag(z * z) + 1.0)(zs).dtype == np.float32


def test_complex_equations_stay_out_of_fused_kernels():
    """The C++ and CUDA kernels have no complex types: those equations run
    unfused, the real ones around them still fuse."""
    def f(z, x):
        return gnp.abs(gnp.exp(z * x + 1j)) + gnp.tanh(x * x + 1.0) * 2.0
    z, x = cplx((5,)), uniform((5,))
    jitted = gp.jit(f)
    program = jitted.lower(dev(z), dev(x)).program
    for e in program.eqns:
        complex_ = any(np.result_type(getattr(v.aval, "dtype", v.aval)).kind == "c"
                       for v in [e.out, *e.inputs])     # a literal's aval is its value
        assert fusion.fusible(e) == (not complex_ and e.prim in fusion.EXPRESSIONS)
    assert_same(jitted(dev(z), dev(x)),
                np.abs(np.exp(z * x + 1j)) + np.tanh(x * x + 1.0) * 2.0, rtol=1e-12)


# ---- against JAX -------------------------------------------------------------------
JAX_CASES = {
    "abs2": lambda m, z: m.sum(m.abs(z) ** 2),
    "angle": lambda m, z: m.sum(m.angle(z) * m.real(z)),
    "mixed": lambda m, z: m.sum(m.imag(m.exp(z) * m.conj(z)) + m.abs(m.sin(z))),
    "fft": lambda m, z: m.sum(m.abs(m.fft.fft(z)) ** 2 * m.arange(4.0)),
    "rfft": lambda m, z: m.sum(m.real(m.fft.rfft(m.real(z) * m.imag(z))) ** 2),
}


@pytest.mark.parametrize("name", sorted(JAX_CASES))
def test_grad_is_jaxs(name):
    jax = pytest.importorskip("jax")
    jnp, fn = jax.numpy, JAX_CASES[name]
    z = cplx((4,)).astype(np.complex64)
    want = np.asarray(jax.grad(lambda z: fn(jnp, z))(jnp.asarray(z)))
    got = gp.grad(lambda z: fn(gnp, z))(dev(z))
    assert_same(got, want, rtol=2e-5, atol=2e-5)


HOLO_CASES = {
    "sin": lambda m, z: m.sin(z) * z,
    "cumsum": lambda m, z: m.exp(m.cumsum(z)) / (z + 3.0),
    "fft": lambda m, z: m.fft.ifft(z * z, norm="ortho"),
}


@pytest.mark.parametrize("name", sorted(HOLO_CASES))
def test_holomorphic_derivatives_and_vjp_jvp_are_jaxs(name):
    jax = pytest.importorskip("jax")
    jnp, fn = jax.numpy, HOLO_CASES[name]
    z = cplx((4,)).astype(np.complex64)
    t, g = cplx((4,), seed=1).astype(np.complex64), cplx((4,), seed=2).astype(np.complex64)
    jf, gf = (lambda z: fn(jnp, z)), (lambda z: fn(gnp, z))
    for jjac, gjac in [(jax.jacfwd, gp.jacfwd), (jax.jacrev, gp.jacrev)]:
        assert_same(gjac(gf, holomorphic=True)(dev(z)),
                    np.asarray(jjac(jf, holomorphic=True)(jnp.asarray(z))), rtol=2e-5, atol=2e-5)
    assert_same(gp.grad(lambda z: gnp.sum(gf(z)), holomorphic=True)(dev(z)),
                np.asarray(jax.grad(lambda z: jnp.sum(jf(z)), holomorphic=True)(jnp.asarray(z))),
                rtol=2e-5, atol=2e-5)
    assert_same(gp.jvp(gf, (dev(z),), (dev(t),))[1],
                np.asarray(jax.jvp(jf, (jnp.asarray(z),), (jnp.asarray(t),))[1]),
                rtol=2e-5, atol=2e-5)
    assert_same(gp.vjp(gf, dev(z))[1](dev(g))[0],
                np.asarray(jax.vjp(jf, jnp.asarray(z))[1](jnp.asarray(g))[0]),
                rtol=2e-5, atol=2e-5)
