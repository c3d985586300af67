"""The gradient defects of issue 14, each with a test that failed before the
fix: conversions to Python numbers under grad, relu's NaN, custom_vjp
cotangent shapes, logaddexp/softplus/std derivatives at their special
points, complex outputs and Python-float cotangents, donated arrays used
again, jit's message for non-array arguments, pytree error messages, and
out-of-range labels in softmax_cross_entropy."""
import math

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop import nn
from gpuprop.testing import check_grads
from support import dev, host


# ---- 1. conversions to Python numbers drop the derivative: refused ----------------
@pytest.mark.parametrize("convert", [
    lambda t: float(t[0]), lambda t: complex(t[0]).real, lambda t: t[0].item(),
    lambda t: math.exp(t[0]), lambda t: np.float64(t[0])], ids=[
    "float", "complex", "item", "math.exp", "np.float64"])
def test_a_conversion_to_a_python_number_under_grad_raises(convert):
    f = gp.grad(lambda t: gnp.sum(t) * convert(t))
    with pytest.raises(TypeError, match=r"float\(\)|complex\(\)|\.item\(\)|NumPy array"):
        f(dev([1.0, 2.0]))
    with pytest.raises(TypeError, match="gnp|gpuprop.numpy"):
        gp.vjp(lambda t: t * convert(t), dev([1.0, 2.0]))


def test_a_conversion_names_the_fix():
    with pytest.raises(TypeError, match="math.exp.*stop_gradient"):
        gp.grad(lambda t: math.exp(t))(1.0)


def test_bool_and_constants_still_convert_under_grad():
    def f(t):
        scale = float(gp.stop_gradient(t[0]))      # a constant on purpose
        return gnp.sum(t) * scale if t[1] > 0 else gnp.sum(t)
    np.testing.assert_allclose(host(gp.grad(f)(dev([2.0, 1.0]))), [2.0, 2.0])


# ---- 2. relu propagates NaN --------------------------------------------------------
def test_relu_propagates_nan():
    out = host(gnp.relu(dev([np.nan, -1.0, 0.0, 2.0])))
    assert np.isnan(out[0]) and list(out[1:]) == [0.0, 0.0, 2.0]
    assert host(gp.grad(lambda x: gnp.relu(x))(0.0)) == 0.0


def test_relu_activation_of_an_mlp_propagates_nan():
    out = host(nn.get_activation("relu")(dev([np.nan])))
    assert np.isnan(out[0])


# ---- 3. custom_vjp cotangents of the wrong shape ---------------------------------
def test_a_custom_vjp_cotangent_of_the_wrong_shape_raises():
    @gp.custom_vjp
    def f(x, y):
        return x * y

    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (gnp.sum(g * res[1]), g * res[0]))
    with pytest.raises(ValueError, match=r"custom_vjp f.*shape \(\).*argument 0.*\(3,\)"):
        gp.grad(lambda x: gnp.sum(f(x, dev([1.0, 2.0, 3.0]))))(dev([1.0, 1.0, 1.0]))


def test_a_custom_vjp_cotangent_tuple_of_the_wrong_length_raises():
    @gp.custom_vjp
    def f(x):
        return x * 2.0

    f.defvjp(lambda x: (x * 2.0, None), lambda res, g: (g * 2.0, g))
    with pytest.raises(TypeError, match="custom_vjp f.*1 cotangents.*length 2"):
        gp.grad(lambda x: gnp.sum(f(x)))(dev([1.0]))


# ---- 4. derivatives at special points ------------------------------------------------
def test_logaddexp_second_derivative_at_a_tie():
    d2 = gp.grad(gp.grad(lambda x: gnp.logaddexp(x, 1.0)))(1.0)
    np.testing.assert_allclose(host(d2), 0.25)
    check_grads(lambda x, y: gnp.logaddexp(x, y), (dev([0.5, -1.0]), dev([0.5, -1.0])), order=2)


def test_logaddexp_values_at_infinities_and_nan():
    x = dev([np.inf, -np.inf, np.inf, 1.0, np.nan])
    y = dev([np.inf, -np.inf, -np.inf, 2.0, 1.0])
    with np.errstate(invalid="ignore"):     # NumPy's own inf - inf, as the reference
        np.testing.assert_array_equal(host(gnp.logaddexp(x, y)), np.logaddexp(host(x), host(y)))


def test_softplus_derivative_at_zero():
    np.testing.assert_allclose(host(gp.grad(gnp.softplus)(0.0)), 0.5)
    np.testing.assert_allclose(host(gp.grad(gp.grad(gnp.softplus))(0.0)), 0.25)


def test_std_of_one_element_has_gradient_zero():
    g = gp.grad(lambda x: gnp.std(x))(dev([3.0]))
    np.testing.assert_array_equal(host(g), [0.0])
    g = gp.grad(lambda x: gnp.sum(gnp.std(x, axis=1)))(dev(np.ones((2, 1))))
    np.testing.assert_array_equal(host(g), np.zeros((2, 1)))


# ---- 5. complex outputs and Python-number cotangents -----------------------------------
def test_grad_of_a_complex_output_raises():
    with pytest.raises(TypeError, match="complex"):
        gp.grad(lambda x: gnp.multiply(x, 1j))(1.0)


def test_vjp_takes_a_python_float_cotangent():
    _, pullback = gp.vjp(lambda x: x + 1.0, dev(2.0))
    (g,) = pullback(1.0)
    assert host(g) == 1.0 and host(g).dtype == np.float64


# ---- 6. donated arrays are deleted -------------------------------------------------
def test_a_donated_array_used_again_raises():
    f = gp.jit(lambda x: gnp.tanh(x) * 2.0, donate_argnums=0)
    x = dev(np.linspace(-1, 1, 4))
    y = f(x)
    for use in [lambda: gnp.sum(x), lambda: f(x), lambda: gp.to_numpy(x)]:
        with pytest.raises(gp.backend.DeletedArrayError, match="donate"):
            use()
    np.testing.assert_allclose(host(f(y)), np.tanh(2 * np.tanh(np.linspace(-1, 1, 4))) * 2)


# ---- 7. jit of a non-array argument suggests static arguments ----------------------------
def test_jit_of_a_string_suggests_static_argnums():
    f = gp.jit(lambda x, mode: x * 2.0)
    with pytest.raises(TypeError, match=r"argument 'mode' is a str.*static_argnums"):
        f(dev([1.0]), "double")
    with pytest.raises(TypeError, match=r"'mode'\['k'\]\[1\] is a str"):
        f(dev([1.0]), mode={"k": [1.0, "x"]})


# ---- 8. pytree errors name the difference and the path ---------------------------------
def test_tree_map_names_the_keys_that_differ():
    with pytest.raises(ValueError, match=r"keys \['b'\] only in the first, \['c'\] only"):
        gp.tree_map(lambda a, b: a, {"a": 1, "b": 2}, {"a": 1, "c": 2})
    with pytest.raises(ValueError, match=r"at \['a'\]\[1\]"):
        gp.tree_map(lambda a, b: a, {"a": [1, 2]}, {"a": [1, (2,)]})


def test_a_string_leaf_or_an_unregistered_class_names_its_path():
    class Params:
        pass

    f = gp.grad(lambda p: gnp.sum(p["w"]))
    with pytest.raises(TypeError, match=r"argument 0 \(leaf \['name'\]\) is a str"):
        f({"w": dev([1.0]), "name": "layer"})
    with pytest.raises(TypeError, match=r"argument 0 \(leaf \['extra'\]\[0\]\) is a Params.*register"):
        f({"w": dev([1.0]), "extra": [Params()]})


def test_hessian_of_a_non_scalar_function_is_jaxs():
    """hessian is jacfwd(jacrev(f)): for an output of shape S and an input of
    shape T, shape S + T + T, as in JAX (no error to name)."""
    h = gp.hessian(lambda x: x ** 3)(dev([1.0, 2.0]))
    want = np.zeros((2, 2, 2))
    want[0, 0, 0], want[1, 1, 1] = 6.0, 12.0
    np.testing.assert_allclose(host(h), want)


# ---- 9. labels outside [0, classes) ----------------------------------------------
def test_softmax_cross_entropy_refuses_labels_out_of_range():
    logits = dev(np.zeros((2, 3)))
    for bad in ([0, 3], [-1, 0]):
        with pytest.raises(ValueError, match=r"\[0, 3\)"):
            nn.softmax_cross_entropy(logits, dev(bad, np.int32))
    np.testing.assert_allclose(host(nn.softmax_cross_entropy(logits, dev([0, 2], np.int32))),
                               np.log(3.0))
