"""User errors: each raises a subclass of the fitting built-in exception, with
a message that names the operation, the shapes or dtypes, and the fix."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import dev, host


# ---- misuse of the transforms -----------------------------------------------
def test_grad_of_non_scalar_output():
    with pytest.raises(TypeError, match=r"scalar.*shape \(3,\).*vjp.*jacobian"):
        gp.grad(lambda x: x * 2.0)(dev([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match=r"single scalar.*vjp.*jacobian"):
        gp.grad(lambda x: {"a": x * 2.0})(1.0)
    with pytest.raises(TypeError, match=r"dtype int64"):
        gp.grad(lambda x: 3)(1.0)


@pytest.mark.parametrize("arg", [
    lambda: 2, lambda: True, lambda: dev([1, 2]), lambda: dev([True]),
    lambda: {"w": dev([1.0]), "n": dev([3], np.int32)},
], ids=["int", "bool", "int-array", "bool-array", "int-leaf"])
def test_grad_wrt_integer_or_bool_argument(arg):
    with pytest.raises(TypeError, match=r"argument 0 has dtype (int|bool).*floating"):
        gp.grad(lambda x: 1.0)(arg())


def test_integer_argument_outside_argnums_is_fine():
    g = gp.grad(lambda x, n: gnp.sum(x[n]) * 2.0)(dev([1.0, 2.0, 3.0]), dev([0, 2, 2]))
    np.testing.assert_array_equal(host(g), [2.0, 0.0, 4.0])


def test_bad_argnums_and_aux():
    with pytest.raises(ValueError, match=r"argnums 2 out of range for 1"):
        gp.grad(lambda x: x, argnums=2)(1.0)
    with pytest.raises(TypeError, match=r"has_aux=True.*pair"):
        gp.grad(lambda x: x, has_aux=True)(1.0)


def test_vjp_cotangent_of_wrong_shape_or_structure():
    _, vjp_fn = gp.vjp(lambda x: (x * 2.0, x), dev([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"shape \(3,\).*shape \(2,\)"):
        vjp_fn((dev([1.0, 2.0, 3.0]), dev([1.0, 2.0])))
    with pytest.raises(ValueError, match=r"structure"):
        vjp_fn([dev([1.0, 2.0]), dev([1.0, 2.0])])


def test_custom_vjp_misuse():
    f = gp.custom_vjp(lambda x: x * 2.0)
    with pytest.raises(TypeError, match="defvjp"):
        f(1.0)
    f.defvjp(lambda x: (x * 2.0, None), lambda _, g: g * 2.0)   # not a tuple
    with pytest.raises(TypeError, match=r"tuple of 1 cotangent"):
        gp.grad(f)(1.0)


# ---- shapes -----------------------------------------------------------------
def test_incompatible_broadcast():
    with pytest.raises(ValueError, match=r"gnp\.add.*\(3,\) and \(4,\)"):
        gnp.add(dev(np.ones(3)), dev(np.ones(4)))
    with pytest.raises(ValueError, match=r"gnp\.multiply.*\(2, 3\) and \(2,\)"):
        gp.grad(lambda x: gnp.sum(x * dev(np.ones(2))))(dev(np.ones((2, 3))))


def test_matmul_shape_mismatch():
    with pytest.raises(ValueError, match=r"gnp\.matmul.*\(4, 2\) and \(3, 2\).*2 != 3"):
        gnp.matmul(dev(np.ones((4, 2))), dev(np.ones((3, 2))))
    with pytest.raises(ValueError, match=r"gnp\.matmul.*\(2,\) and \(3,\)"):
        gp.grad(lambda x: x @ dev(np.ones(3)))(dev(np.ones(2)))


def test_reshape_mismatch():
    with pytest.raises(ValueError, match=r"gnp\.reshape.*\(6,\).*\(4, 2\)"):
        gnp.reshape(dev(np.ones(6)), (4, 2))
    with pytest.raises(ValueError, match=r"gnp\.reshape.*\(2, 3\).*\(4, -1\)"):
        gp.grad(lambda x: gnp.sum(x.reshape(4, -1)))(dev(np.ones((2, 3))))


@pytest.mark.parametrize("f, match", [
    pytest.param(lambda x: gnp.sum(x, axis=2), r"gnp\.sum: axis 2 is out of bounds.*2 dim",
                 id="sum-2"),
    pytest.param(lambda x: gnp.sum(x, axis=-3), r"gnp\.sum: axis -3 is out of bounds",
                 id="sum-neg3"),
    pytest.param(lambda x: gnp.mean(x, axis=-3), r"gnp\.mean: axis -3 is out of bounds",
                 id="mean-neg3"),
    pytest.param(lambda x: gnp.max(x, axis=(0, 0)), r"gnp\.max: repeated axis", id="repeated"),
])
def test_bad_axis(f, match):
    x = dev(np.ones((2, 3)))
    with pytest.raises(ValueError, match=match):
        f(x)
    with pytest.raises(ValueError, match=match):
        gp.grad(lambda x: gnp.sum(f(x)))(x)


# ---- tracers ----------------------------------------------------------------
def test_leaked_tracer():
    leaked = []

    def f(x):
        leaked.append(x)
        return x * 2.0

    gp.grad(f)(1.0)
    t = leaked[0]
    for use in [lambda: t * 2.0, lambda: gnp.exp(t), lambda: gnp.add(dev(1.0), t),
                lambda: gp.grad(lambda y: y * t)(3.0)]:
        with pytest.raises(gp.UnexpectedTracerError, match="leaked out of the function"):
            use()
    assert issubclass(gp.UnexpectedTracerError, RuntimeError)


def _fd_grad(f, x, eps=1e-6):
    steps = np.eye(x.size).reshape((x.size,) + x.shape) * eps
    return np.array([(f(x + e) - f(x - e)) / (2 * eps) for e in steps]).reshape(x.shape)


X = np.array([[0.5, -1.2], [0.3, 2.0]])


@pytest.mark.parametrize("f", [
    pytest.param(lambda x: np.sum(np.exp(x)), id="exp-sum"),
    pytest.param(lambda x: np.mean(np.tanh(x) * np.maximum(x, 0.0)), id="tanh-maximum"),
    pytest.param(lambda x: np.sum(np.matmul(x, x.T) ** 2), id="matmul"),
    pytest.param(lambda x: np.sum(np.sqrt(np.square(x) + 1.0), axis=0)[1], id="sqrt-axis"),
    pytest.param(lambda x: np.sum(np.linalg.svd(x)[1]), id="svd"),
    pytest.param(lambda x: np.sum(np.abs(np.fft.fft(x))), id="fft"),
    pytest.param(lambda x: np.sum(np.cumsum(x)), id="cumsum"),
    pytest.param(lambda x: np.sum(np.arctan(x)), id="arctan"),
    pytest.param(lambda x: np.add.reduce(x, axis=None), id="ufunc-method"),
    pytest.param(lambda x: np.sum(np.asarray(x)), id="asarray"),
    pytest.param(lambda x: np.sum(np.dot(np.stack([x, x.T]), np.stack([x, 2 * x]))),
                 id="dot-3d"),
    pytest.param(lambda x: np.sum(np.linspace(x[0, 0], 1.0, 3)), id="linspace"),
])
def test_numpy_function_on_a_tracer_is_dispatched_or_refused(f):
    """Either the derivative is right, or a TypeError points to gpuprop.numpy."""
    try:
        g = gp.grad(f)(dev(X))
    except TypeError as e:
        assert "gpuprop.numpy" in str(e)
    else:
        np.testing.assert_allclose(host(g), _fd_grad(f, X), rtol=1e-6, atol=1e-8)


def test_host_array_times_tracer(backend_name):
    """A NumPy array next to a tracer is dispatched on the NumPy backend, and
    refused as an array of another backend on the others."""
    c = np.array([2.0, -3.0])
    f = gp.grad(lambda x: gnp.sum(c * x))
    if backend_name == "numpy":
        np.testing.assert_array_equal(host(f(dev([1.0, 1.0]))), c)
    else:
        with pytest.raises(gp.BackendMismatchError, match="gnp.multiply"):
            f(dev([1.0, 1.0]))
