"""The MLP, its initialisers and activations, losses and accuracy, against NumPy."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop import nn
from support import dev, host

RNG = np.random.default_rng(7)


def test_init_is_numpys_generator_then_the_device():
    params = nn.MLP([5, 4, 3], init="he", seed=3).init()
    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((5, 4)) * np.sqrt(2 / 5)).astype(np.float32)
    w2 = (rng.standard_normal((4, 3)) * np.sqrt(2 / 4)).astype(np.float32)
    got = host(params)
    assert [sorted(layer) for layer in got] == [["W", "b"], ["W", "b"]]
    np.testing.assert_array_equal(got[0]["W"], w1)       # bit for bit on every backend
    np.testing.assert_array_equal(got[1]["W"], w2)
    np.testing.assert_array_equal(got[1]["b"], np.zeros(3, np.float32))
    assert got[0]["W"].dtype == np.float32
    assert gp.backend.current().owns(params[0]["W"])


@pytest.mark.parametrize("init, dist, var", [
    ("he", "normal", 2 / 400), ("kaiming_uniform", "uniform", 2 / 400),
    ("xavier", "normal", 2 / 700), ("glorot_uniform", "uniform", 2 / 700),
    ("lecun_normal", "normal", 1 / 400), ("lecun_uniform", "uniform", 1 / 400)])
def test_initialiser_variances(init, dist, var):
    w = nn.init_weight(np.random.default_rng(0), 400, 300, init, np.float64)
    assert w.shape == (400, 300)
    assert abs(w.var() / var - 1) < 0.02
    if dist == "uniform":
        assert np.abs(w).max() <= np.sqrt(3 * var)
        assert np.abs(w).max() > 0.99 * np.sqrt(3 * var)
    else:
        assert np.abs(w).max() > 1.5 * np.sqrt(3 * var)     # tails beyond a uniform's


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


REFERENCE = {
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "gelu": lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3))),
    "softplus": lambda z: np.log1p(np.exp(z)),
    "identity": lambda z: z,
}


@pytest.mark.parametrize("activation", sorted(REFERENCE))
@pytest.mark.parametrize("jit", [False, True])
def test_forward_matches_numpy(activation, jit):
    model = nn.MLP([3, 5, 4, 2], activation=activation, seed=1, dtype=np.float64)
    params = model.init()
    x = RNG.standard_normal((6, 3))
    apply = gp.jit(model.apply) if jit else model.apply
    got = host(apply(params, dev(x)))
    h, p = x, host(params)
    for i, layer in enumerate(p):
        h = h @ layer["W"] + layer["b"]
        if i < len(p) - 1:
            h = REFERENCE[activation](h)
    np.testing.assert_allclose(got, h, rtol=1e-12, atol=1e-14)


def test_gelu_close_to_the_erf_form():
    from math import erf
    z = np.linspace(-4, 4, 41)
    exact = np.array([0.5 * v * (1 + erf(v / np.sqrt(2))) for v in z])
    np.testing.assert_allclose(host(nn.gelu(dev(z))), exact, atol=1e-3)


def test_float64_model_and_callable_activation():
    model = nn.MLP([2, 3, 1], activation=gnp.sin, dtype=np.float64)
    params = model.init()
    assert host(params)[0]["W"].dtype == np.float64
    x = RNG.standard_normal((4, 2))
    p = host(params)
    want = np.sin(x @ p[0]["W"] + p[0]["b"]) @ p[1]["W"] + p[1]["b"]
    np.testing.assert_allclose(host(model(params, dev(x))), want, rtol=1e-12)


def test_gradient_is_the_chain_rule_by_hand():
    model = nn.MLP([4, 6, 3], activation="tanh", seed=2, dtype=np.float64)
    params = model.init()
    x, y = RNG.standard_normal((5, 4)), np.array([0, 2, 1, 1, 0])
    g = host(gp.grad(lambda p: nn.softmax_cross_entropy(model.apply(p, dev(x)), dev(y)))(params))
    p = host(params)
    a1 = np.tanh(x @ p[0]["W"] + p[0]["b"])
    z2 = a1 @ p[1]["W"] + p[1]["b"]
    s = np.exp(z2 - z2.max(1, keepdims=True))
    s /= s.sum(1, keepdims=True)
    d2 = (s - np.eye(3)[y]) / len(x)                 # dJ/dz2
    d1 = (d2 @ p[1]["W"].T) * (1 - a1 ** 2)          # dJ/dz1
    np.testing.assert_allclose(g[1]["W"], a1.T @ d2, rtol=1e-10)
    np.testing.assert_allclose(g[1]["b"], d2.sum(0), rtol=1e-10)
    np.testing.assert_allclose(g[0]["W"], x.T @ d1, rtol=1e-10)
    np.testing.assert_allclose(g[0]["b"], d1.sum(0), rtol=1e-10)


# ---- losses -----------------------------------------------------------------
def test_mse():
    a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    np.testing.assert_allclose(host(nn.mse(dev(a), dev(b))), np.mean((a - b) ** 2))
    with pytest.raises(ValueError, match=r"mse: predictions of shape \(4, 1\) and targets "
                                         r"of shape \(4,\) differ"):
        nn.mse(dev(a[:, :1]), dev(b[:, 0]))


def test_cross_entropy_integer_and_one_hot():
    logits = RNG.standard_normal((5, 4))
    y = np.array([3, 0, 1, 1, 2])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    want = -np.mean(logp[np.arange(5), y])
    np.testing.assert_allclose(host(nn.softmax_cross_entropy(dev(logits), dev(y))), want)
    np.testing.assert_allclose(host(nn.softmax_cross_entropy(dev(logits), dev(np.eye(4)[y]))),
                               want)
    np.testing.assert_allclose(host(nn.softmax_cross_entropy(dev(logits), nn.one_hot(dev(y), 4,
                                                                                    np.float64))),
                               want)
    with pytest.raises(ValueError, match=r"labels' shape must be the logits' without the "
                                         r"class axis, \(5,\)"):
        nn.softmax_cross_entropy(dev(logits), dev(y[:, None]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_stable_at_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype)
    y = np.array([0, 0])
    loss, g = gp.value_and_grad(nn.softmax_cross_entropy)(dev(logits), dev(y))
    np.testing.assert_allclose(host(loss), (0 + 2e4) / 2, rtol=1e-6)
    np.testing.assert_allclose(host(g), np.array([[0, 0, 0], [-1, 1, 0]]) / 2, atol=1e-6)
    # a class masked out with -inf is harmless
    masked = np.array([[2.0, -np.inf, 0.0]], dtype)
    loss, g = gp.value_and_grad(nn.softmax_cross_entropy)(dev(masked), dev(np.array([0])))
    assert np.isfinite(host(loss)) and np.all(np.isfinite(host(g)))


def test_binary_cross_entropy_with_logits():
    x = np.array([-100.0, -3.0, 0.0, 2.5, 100.0], np.float32)
    t = np.array([1.0, 0.0, 1.0, 1.0, 0.0], np.float32)
    xd = x.astype(np.float64)
    want = np.mean(np.logaddexp(0, xd) - xd * t)     # -log sigmoid(x) = log(1 + e^-x)
    got = host(nn.binary_cross_entropy_with_logits(dev(x), dev(t)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    mid = np.array([-3.0, 0.5, 2.0])
    tt = np.array([0.0, 1.0, 0.3])
    np.testing.assert_allclose(host(nn.binary_cross_entropy_with_logits(dev(mid), dev(tt))),
                               np.mean(-tt * np.log(sigmoid(mid))
                                       - (1 - tt) * np.log(1 - sigmoid(mid))), rtol=1e-12)


def test_l2_penalty():
    params = [{"W": dev(np.arange(6.0).reshape(2, 3)), "b": dev(np.array([1.0, -2.0]))}]
    np.testing.assert_allclose(host(nn.l2_penalty(params)), 0.5 * (55 + 5))
    np.testing.assert_allclose(host(nn.l2_penalty([layer["W"] for layer in params])), 27.5)
    g = gp.grad(nn.l2_penalty)(params)
    np.testing.assert_array_equal(host(g[0]["W"]), np.arange(6.0).reshape(2, 3))


def test_accuracy():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], np.float32)
    y = np.array([1, 1, 1, 0])
    acc = host(nn.accuracy(dev(logits), dev(y)))
    assert acc.dtype == np.float32 and acc == pytest.approx(0.75)
    assert host(nn.accuracy(dev(logits), dev(np.eye(2)[y]))) == pytest.approx(0.75)


def test_mlp_errors():
    with pytest.raises(ValueError, match="sizes must be at least two positive integers"):
        nn.MLP([784])
    with pytest.raises(ValueError, match="unknown activation 'rleu'; choose one of"):
        nn.MLP([2, 2], activation="rleu")
    with pytest.raises(ValueError, match="unknown init 'hee'; choose one of"):
        nn.MLP([2, 2], init="hee")
    model = nn.MLP([4, 3])
    with pytest.raises(ValueError, match=r"inputs of shape \(2, 5\) do not fit the first "
                                         r"layer, whose W has shape \(4, 3\)"):
        model.apply(model.init(), dev(np.ones((2, 5), np.float32)))


# ---- dropout ----------------------------------------------------------------
def test_dropout_is_inverted_and_driven_by_the_key():
    key = gp.random.key(0)
    x = dev(np.ones((200, 50), np.float32))
    y = host(nn.dropout(key, 0.25, x))
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs(np.mean(y == 0) - 0.25) < 0.02 and abs(y.mean() - 1) < 0.03
    keep = host(gp.random.bernoulli(key, 0.75, (200, 50)))
    np.testing.assert_array_equal(y != 0, keep)                 # the mask is the key's
    np.testing.assert_array_equal(host(gp.jit(lambda k, x: nn.dropout(k, 0.25, x))(key, x)), y)
    assert nn.dropout(key, 0.0, x) is x
    for bad in (1.0, -0.1, "0.5", True):
        with pytest.raises(ValueError, match="nn.dropout: rate must be a dropout rate with "
                                             "0 <= rate < 1"):
            nn.dropout(key, bad, x)


def test_mlp_dropout_after_each_hidden_activation_only_with_a_key():
    model = nn.MLP([3, 16, 16, 2], activation="tanh", seed=1)
    params, x = model.init(), dev(np.random.default_rng(0).standard_normal((5, 3)), np.float32)
    plain = host(model.apply(params, x))
    np.testing.assert_array_equal(host(model.apply(params, x, dropout=0.5)), plain)   # no key
    np.testing.assert_array_equal(host(model.apply(params, x, key=gp.random.key(0))), plain)
    k = gp.random.key(3)
    got = host(model.apply(params, x, key=k, dropout=0.5))
    p = host(params)
    h = x_host = host(x)
    for i, layer in enumerate(p[:-1]):      # by hand: the mask of fold_in(key, layer)
        h = np.tanh(h @ layer["W"] + layer["b"])
        keep = host(gp.random.bernoulli(gp.random.fold_in(k, i), 0.5, h.shape))
        h = np.where(keep, h / np.float32(0.5), 0)
    want = h @ p[-1]["W"] + p[-1]["b"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, plain) and x_host.shape == (5, 3)
    g = gp.grad(lambda q: gnp.sum(model.apply(q, x, key=k, dropout=0.5) ** 2))(params)
    assert np.all(np.isfinite(host(g[0]["W"])))
