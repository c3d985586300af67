"""The transforms: grad, value_and_grad, vjp, jacobian, hessian, custom_vjp and
stop_gradient, nested to any order; the backward pass; dtypes of derivatives.

Every derivative is compared with an analytic formula, or with central finite
differences of the same function run by NumPy on the host: functions written
as `f(m, x)` take the module (`np` or `gnp`) that computes them.
"""

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import dev, host, weak_ref


def fd_jacobian(f, x, eps=1e-6):
    """Central differences of a host function: shape f(x).shape + x.shape."""
    x = np.asarray(x, np.float64)
    steps = np.eye(x.size).reshape((x.size,) + x.shape) * eps
    cols = [(np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps) for e in steps]
    return np.moveaxis(np.array(cols), 0, -1).reshape(np.shape(cols[0]) + x.shape)


def fd_hessian(f, x, eps=1e-4):
    return fd_jacobian(lambda z: fd_jacobian(f, z, eps), x, eps)


X = np.array([-0.9, -0.2, 0.3, 0.7, 1.4])


# ---- trace levels -----------------------------------------------------------
def test_perturbation_confusion_is_avoided():
    # the inner derivative d(x + y)/dy is 1 whatever x is: f(x) = x
    assert host(gp.grad(lambda x: x * gp.grad(lambda y: x + y)(1.0))(2.0)) == 1.0
    # the inner derivative x depends on x: f(x) = x * x
    assert host(gp.grad(lambda x: x * gp.grad(lambda y: x * y)(1.0))(3.0)) == 6.0
    # the outer variable only: d/dx [d(x y)/dy] = d/dx x = 1
    assert host(gp.grad(lambda x: gp.grad(lambda y: x * y)(2.0))(3.0)) == 1.0


def _exp_tanh_d3(x):
    """d^3/dx^3 exp(tanh x), with t = tanh x and s = 1 - t^2 = tanh'."""
    t = np.tanh(x)
    s = 1 - t * t
    return np.exp(t) * s * (s * s - 6 * t * s + 4 * t * t - 2 * s)


@pytest.mark.parametrize("f, d1, d2, d3", [
    (lambda m, x: x ** 4, lambda x: 4 * x ** 3, lambda x: 12 * x ** 2, lambda x: 24 * x),
    (lambda m, x: x * x * x * x, lambda x: 4 * x ** 3, lambda x: 12 * x ** 2,
     lambda x: 24 * x),
    (lambda m, x: m.sin(x), np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x)),
    (lambda m, x: m.exp(m.tanh(x)), lambda x: np.exp(np.tanh(x)) / np.cosh(x) ** 2,
     lambda x: np.exp(np.tanh(x)) / np.cosh(x) ** 2 * (1 / np.cosh(x) ** 2 - 2 * np.tanh(x)),
     _exp_tanh_d3),
], ids=["pow4", "x*x*x*x", "sin", "exp_tanh"])
def test_reverse_over_reverse_to_third_order(f, d1, d2, d3):
    def deriv(fun):     # elementwise derivative of an elementwise function
        return gp.grad(lambda x: gnp.sum(fun(x)))

    g1 = deriv(lambda x: f(gnp, x))
    g2, g3 = deriv(g1), deriv(deriv(g1))
    for g, d in [(g1, d1), (g2, d2), (g3, d3)]:
        np.testing.assert_allclose(host(g(dev(X))), d(X), rtol=1e-12, atol=1e-12)
    # and on scalars, grad of grad of grad
    d3_scalar = gp.grad(gp.grad(gp.grad(lambda x: f(gnp, x))))
    np.testing.assert_allclose(host(d3_scalar(0.7)), d3(0.7), rtol=1e-12)


# ---- grad, value_and_grad, vjp ----------------------------------------------
def _f3(x, y, z):
    return gnp.sum(gnp.add(gnp.multiply(x, y ** 2), gnp.sin(z)))


def test_grad_argnums_int_and_tuple():
    x, y, z = np.array([1.0, 2.0]), np.array([3.0, -1.0]), np.array([0.5, 0.1])
    args = dev(x), dev(y), dev(z)
    np.testing.assert_allclose(host(gp.grad(_f3)(*args)), y ** 2)
    np.testing.assert_allclose(host(gp.grad(_f3, argnums=1)(*args)), 2 * x * y)
    np.testing.assert_allclose(host(gp.grad(_f3, argnums=-1)(*args)), np.cos(z))
    gz, gx = gp.grad(_f3, argnums=(2, 0))(*args)
    np.testing.assert_allclose(host(gz), np.cos(z))
    np.testing.assert_allclose(host(gx), y ** 2)
    (gy,) = gp.grad(_f3, argnums=(1,))(*args)
    np.testing.assert_allclose(host(gy), 2 * x * y)


def test_grad_and_value_and_grad_with_aux():
    x = np.array([0.3, -1.2, 2.0])

    def f(x):
        t = gnp.tanh(x)
        return gnp.sum(t ** 2), {"t": t, "n": 7}

    g, aux = gp.grad(f, has_aux=True)(dev(x))
    np.testing.assert_allclose(host(g), 2 * np.tanh(x) / np.cosh(x) ** 2)
    assert aux["n"] == 7 and not isinstance(aux["t"], gp.core.Tracer)
    np.testing.assert_allclose(host(aux["t"]), np.tanh(x))

    (value, aux), g2 = gp.value_and_grad(f, has_aux=True)(dev(x))
    np.testing.assert_allclose(host(value), np.sum(np.tanh(x) ** 2))
    np.testing.assert_allclose(host(g2), host(g))
    np.testing.assert_allclose(host(aux["t"]), np.tanh(x))


def test_value_and_grad_argnums():
    value, (gx, gy) = gp.value_and_grad(lambda x, y: x * gnp.exp(y), argnums=(0, 1))(2.0, 0.5)
    np.testing.assert_allclose(host(value), 2 * np.exp(0.5))
    np.testing.assert_allclose([host(gx), host(gy)], [np.exp(0.5), 2 * np.exp(0.5)])


def test_grad_of_constant_or_unused_argument_is_zero():
    g = gp.grad(lambda x, y: x * 2.0, argnums=1)(1.0, dev([3.0, 4.0]))
    np.testing.assert_array_equal(host(g), [0.0, 0.0])
    value, g = gp.value_and_grad(lambda x: 2.0)(dev(1.5, np.float32))
    assert host(value) == 2.0 and host(g) == 0.0 and host(g).dtype == np.float32


def test_vjp_tuple_output_and_vjp_fn_callable_twice():
    x, y = np.array([0.5, 1.5]), np.array([2.0, -3.0])
    out, vjp_fn = gp.vjp(lambda x, y: (x * y, gnp.sin(x)), dev(x), dev(y))
    np.testing.assert_allclose(host(out[0]), x * y)
    np.testing.assert_allclose(host(out[1]), np.sin(x))
    for u, v in [(np.array([1.0, 0.0]), np.array([0.0, 1.0])),
                 (np.array([-2.0, 3.0]), np.array([0.5, 4.0]))]:
        cx, cy = vjp_fn((dev(u), dev(v)))
        np.testing.assert_allclose(host(cx), u * y + v * np.cos(x))
        np.testing.assert_allclose(host(cy), u * x)


def test_vjp_has_aux():
    out, vjp_fn, aux = gp.vjp(lambda x: (x * 3.0, x + 1.0), dev([1.0, 2.0]), has_aux=True)
    np.testing.assert_allclose(host(aux), [2.0, 3.0])
    (c,) = vjp_fn(dev([1.0, -1.0]))
    np.testing.assert_allclose(host(c), [3.0, -3.0])


# ---- jacobian and hessian ---------------------------------------------------
def _vec_fn(m, x):
    return m.stack([m.sin(x) * x[0], x ** 2 * m.exp(x[1])])


def test_jacobian_matches_finite_differences():
    x = np.array([0.4, -0.7, 1.1])
    jac = host(gp.jacobian(lambda x: _vec_fn(gnp, x))(dev(x)))
    assert jac.shape == (2, 3, 3)
    np.testing.assert_allclose(jac, fd_jacobian(lambda x: _vec_fn(np, x), x), rtol=1e-7,
                               atol=1e-8)


def test_jacobian_argnums_tuple_and_matrix_input():
    a, b = np.arange(6.0).reshape(2, 3) / 5, np.array([0.5, -1.0, 2.0])
    ja, jb = gp.jacobian(lambda a, b: gnp.tanh(a @ b), argnums=(0, 1))(dev(a), dev(b))
    ja, jb = host(ja), host(jb)
    assert ja.shape == (2, 2, 3) and jb.shape == (2, 3)
    np.testing.assert_allclose(ja, fd_jacobian(lambda a: np.tanh(a @ b), a), rtol=1e-7)
    np.testing.assert_allclose(jb, fd_jacobian(lambda b: np.tanh(a @ b), b), rtol=1e-7)


def test_jacobian_of_scalar_output_is_the_gradient():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(host(gp.jacobian(lambda x: gnp.sum(x ** 3))(dev(x))), 3 * x ** 2)


A = np.array([[2.0, -1.0, 0.5], [0.3, 1.0, 4.0], [-2.0, 0.0, 3.0]])


def test_hessian_of_quadratic_form():
    x = np.array([1.0, -2.0, 0.5])
    h = host(gp.hessian(lambda x: gnp.sum(x * gnp.matmul(dev(A), x)))(dev(x)))
    np.testing.assert_allclose(h, A + A.T, rtol=1e-12)


def test_hessian_of_quadratic_form_with_vector_matmul():
    x = np.array([1.0, -2.0, 0.5])
    h = host(gp.hessian(lambda x: x @ gnp.matmul(dev(A), x))(dev(x)))
    np.testing.assert_allclose(h, A + A.T, rtol=1e-12)


def _scalar_fn(m, x):
    return m.sum(m.exp(x) * m.sin(x[::-1])) + m.sum(x ** 2) * x[0]


def test_hessian_matches_finite_differences():
    x = np.array([0.3, -0.5, 0.8, 1.2])
    h = host(gp.hessian(lambda x: _scalar_fn(gnp, x))(dev(x)))
    assert h.shape == (4, 4)
    np.testing.assert_allclose(h, fd_hessian(lambda x: _scalar_fn(np, x), x), rtol=1e-6,
                               atol=1e-6)


# ---- custom_vjp and stop_gradient -------------------------------------------
@gp.custom_vjp
def clip_gradient(x):
    """The identity, whose gradient is clipped to [-1, 1]."""
    return x * 1.0


def _clip_fwd(x):
    return clip_gradient(x), None


def _clip_bwd(_, g):
    return (gnp.clip(g, -1.0, 1.0),)


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


@gp.custom_vjp
def sin_twice_slope(x):
    """sin, with a rule that says its derivative is 2 cos (not cos)."""
    return gnp.sin(x)


sin_twice_slope.defvjp(lambda x: (gnp.sin(x), x),
                       lambda x, g: (gnp.multiply(g, 2.0 * gnp.cos(x)),))


@gp.custom_vjp
def product(x, y):
    return x * y


product.defvjp(lambda x, y: (x * y, (x, y)),
               lambda r, g: (gnp.multiply(g, r[1]) * 3.0, gnp.multiply(g, r[0]) * 5.0))


def test_custom_vjp_rule_replaces_the_true_derivative():
    x = np.array([0.01, 0.1, 1.0, -2.0])
    # d/dx sum(clip_gradient(3x)^2): the cotangent 6x reaching the rule is clipped
    # (the true derivative would be 18x)
    g = gp.grad(lambda x: gnp.sum(clip_gradient(3.0 * x) ** 2))(dev(x))
    np.testing.assert_allclose(host(g), 3 * np.clip(6 * x, -1, 1))
    np.testing.assert_allclose(host(clip_gradient(dev(x))), x)    # no transform: fun
    np.testing.assert_allclose(host(gp.grad(sin_twice_slope)(0.3)), 2 * np.cos(0.3))


def test_custom_vjp_under_grad_of_grad():
    # the outer grad differentiates the backward rule: d/dx 2 cos x = -2 sin x
    np.testing.assert_allclose(host(gp.grad(gp.grad(sin_twice_slope))(0.3)), -2 * np.sin(0.3))
    np.testing.assert_allclose(host(gp.grad(gp.grad(lambda x: product(x, x)))(2.0)), 8.0)


def test_custom_vjp_with_two_arguments():
    gx, gy = gp.grad(product, argnums=(0, 1))(2.0, 7.0)
    assert (host(gx), host(gy)) == (21.0, 10.0)
    assert host(gp.grad(lambda x: product(x, 7.0))(2.0)) == 21.0
    assert host(gp.grad(lambda y: product(2.0, y))(7.0)) == 10.0
    g = gp.grad(lambda x: gnp.sum(product(x, dev([1.0, 2.0]))))(dev([4.0, 5.0]))
    np.testing.assert_allclose(host(g), [3.0, 6.0])


def test_stop_gradient():
    x = np.array([1.0, -2.0, 3.0])
    g = gp.grad(lambda x: gnp.sum(gp.stop_gradient(x) * x))(dev(x))
    np.testing.assert_allclose(host(g), x)
    # second order: s x^2 with s held constant has second derivative 2 s
    d2 = gp.grad(gp.grad(lambda x: gp.stop_gradient(x) * x * x))(1.5)
    assert host(d2) == 3.0
    np.testing.assert_array_equal(host(gp.stop_gradient(dev(x))), x)


# ---- the backward pass ------------------------------------------------------
def test_chain_of_100000_operations():
    def chain(x):
        for _ in range(100_000):
            x = x * 1.00001
        return x
    np.testing.assert_allclose(host(gp.grad(chain)(dev(2.0))), 1.00001 ** 100_000, rtol=1e-9)


def test_cotangents_of_reused_values_sum():
    assert host(gp.grad(lambda a: a + a)(3.0)) == 2.0
    assert host(gp.grad(lambda a: a * a)(3.0)) == 6.0
    assert host(gp.grad(lambda a: sum(a * k for k in range(10)))(3.0)) == 45.0
    x = np.array([0.2, -0.4, 1.0])
    # a reused intermediate
    g = gp.grad(lambda x: gnp.sum(gnp.sin(x) * gnp.sin(x) + 4.0 * gnp.sin(x)))(dev(x))
    np.testing.assert_allclose(host(g), (2 * np.sin(x) + 4) * np.cos(x))

    def via_intermediate(x):
        y = gnp.sin(x)
        return gnp.sum(y * y + y + y * 3.0)
    np.testing.assert_allclose(host(gp.grad(via_intermediate)(dev(x))), host(g))
    # reuse through broadcasting: sum_jk x_j x_k = (sum x)^2
    g = gp.grad(lambda x: gnp.sum(x[:, None] * x[None, :]))(dev(x))
    np.testing.assert_allclose(host(g), np.full(3, 2 * x.sum()))


def test_backward_pass_releases_saved_values_as_it_goes():
    saved = []          # weak references to intermediates saved on the tape
    alive = []          # which of them lived when the pass reached the first op

    @gp.custom_vjp
    def spy(x):
        return x

    def spy_fwd(x):
        saved.append(weak_ref(x))
        return x, None

    spy.defvjp(spy_fwd, lambda _, g: (g,))

    @gp.custom_vjp
    def first(x):
        return x * 1.0

    def first_bwd(_, g):
        alive.extend(r() is not None for r in saved)
        return (g,)

    first.defvjp(lambda x: (x * 1.0, None), first_bwd)

    def f(x):
        a = spy(gnp.sin(first(x)))
        b = spy(gnp.exp(a))
        return gnp.sum(spy(b * 2.0))

    x = np.array([0.1, 0.5, -0.3])
    g = gp.grad(f)(dev(x))
    np.testing.assert_allclose(host(g), 2 * np.exp(np.sin(x)) * np.cos(x))
    assert len(saved) == 3
    assert alive == [False, False, False], \
        "intermediates outlived the part of the backward pass that needed them"
    assert all(r() is None for r in saved)


# ---- dtypes -----------------------------------------------------------------
def test_float32_inputs_give_float32_gradients():
    x = dev([0.5, -1.0, 2.0], np.float32)
    c64 = dev([1.0, 2.0, 3.0], np.float64)
    for f in [lambda x: gnp.sum(gnp.exp(x) * 2.5 + 1.0 / x),
              lambda x: gnp.mean(gnp.tanh(x) ** 2),
              lambda x: gnp.sum(x * c64)]:      # float64 inside, float32 gradient
        value, g = gp.value_and_grad(f)(x)
        assert host(g).dtype == np.float32
    np.testing.assert_allclose(host(g), [1.0, 2.0, 3.0])
    assert host(gp.value_and_grad(lambda x: gnp.sum(x * 2.5))(x)[0]).dtype == np.float32
    assert host(gp.jacobian(lambda x: x * 2.0)(x)).dtype == np.float32
    assert host(gp.hessian(lambda x: gnp.sum(x ** 3))(x)).dtype == np.float32
    assert host(gp.grad(lambda x: x * 2.5)(dev(1.0, np.float32))).dtype == np.float32


def test_python_float_arguments_are_float64():
    value, g = gp.value_and_grad(lambda x: x ** 3)(2.0)
    assert host(g).dtype == np.float64 and host(value).dtype == np.float64
    assert host(g) == 12.0
    # d/dx x (x - 1) = 2x - 1: float32 would round 1 + 2e-10 to 1
    g = host(gp.grad(lambda x: x * (x - 1.0))(1.0 + 1e-10))
    np.testing.assert_allclose(g, 1.0 + 2e-10, rtol=1e-14)


def test_python_scalars_do_not_upcast_float32():
    x = dev([1.0, 2.0], np.float32)
    assert host((x * 2.5 + 1.0) / 3.0 - 0.5).dtype == np.float32
    assert host(gnp.maximum(x, 0.0) ** 2).dtype == np.float32

    def f(x):
        y = x * 2.5 + 1.0
        assert y.dtype == np.float32, y.dtype
        return gnp.sum(y ** 2)

    assert host(gp.grad(f)(x)).dtype == np.float32
