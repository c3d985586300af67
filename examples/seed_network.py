"""The four-layer network of the backpropagation note, checked by hand.

Input x0, two hidden layers, an output layer; each layer is z = W x + b and
x' = h(z) (column vectors, one column per sample; h = tanh on the hidden
layers, the identity on the output).  The loss is J = 1/(2m) sum ||x3 - y||^2.

The chain rule, written out:  delta3 = dJ/dz3 = (x3 - y) / m,
delta_l = (W_{l+1}^T delta_{l+1}) * h'(z_l),  dJ/dW_l = delta_l x_{l-1}^T,
dJ/db_l = delta_l summed over the samples.  The script prints, layer by
layer, that gpuprop's gradients equal these, then trains by plain gradient
descent  Θ ← Θ − α ∇J(Θ).

    python examples/seed_network.py
"""
import numpy as np

import gpuprop as gp
import gpuprop.numpy as gnp

SIZES = [2, 8, 8, 1]                 # input, hidden, hidden, output
rng = np.random.default_rng(0)
X = rng.uniform(-2, 2, (SIZES[0], 200))                   # 200 samples as columns
Y = np.sin(X[:1]) * np.cos(X[1:])                         # the function to learn
theta = [{"W": rng.standard_normal((n, m)) / np.sqrt(m), "b": np.zeros((n, 1))}
         for m, n in zip(SIZES[:-1], SIZES[1:])]          # float64, on the host


def loss(params, x, y):
    """J(Θ) with gpuprop.numpy: the same formulas, differentiable."""
    for i, layer in enumerate(params):
        z = layer["W"] @ x + layer["b"]
        x = gnp.tanh(z) if i < len(params) - 1 else z
    return gnp.sum((x - y) ** 2) / (2 * y.shape[1])


def backprop_by_hand(params, x, y):
    """∇J(Θ) by the chain rule, in NumPy: a forward pass keeping every x_l,
    then the deltas from the output back to the first layer."""
    xs = [x]
    for i, layer in enumerate(params):
        z = layer["W"] @ xs[-1] + layer["b"]
        xs.append(np.tanh(z) if i < len(params) - 1 else z)
    delta = (xs[-1] - y) / y.shape[1]                     # dJ/dz at the output
    grads = [None] * len(params)
    for i in reversed(range(len(params))):
        grads[i] = {"W": delta @ xs[i].T, "b": delta.sum(axis=1, keepdims=True)}
        if i:                                             # through W, then tanh' = 1 - x^2
            delta = (params[i]["W"].T @ delta) * (1 - xs[i] ** 2)
    return grads


params, x, y = gp.device_put(theta), gp.asarray(X), gp.asarray(Y)
value, grads = gp.value_and_grad(loss)(params, x, y)
ours, hand = gp.to_numpy(grads), backprop_by_hand(theta, X, Y)
print(f"J(Θ) = {float(gp.to_numpy(value)):.6f}   (network {SIZES}, float64)")
worst = 0.0
for layer, (g, h) in enumerate(zip(ours, hand), start=1):
    for name in ("W", "b"):
        err = np.max(np.abs(g[name] - h[name])) / max(np.max(np.abs(h[name])), 1e-300)
        worst = max(worst, err)
        print(f"layer {layer}  dJ/d{name}{layer} {str(h[name].shape):8s}  "
              f"gpuprop vs chain rule by hand: max relative difference {err:.1e}")
assert worst < 1e-12, "gpuprop's gradient differs from the chain rule"
print("gpuprop's gradients equal the chain rule written out by hand\n")


@gp.jit
def descend(params, x, y, alpha):
    """One step of Θ ← Θ − α ∇J(Θ), compiled."""
    value, grads = gp.value_and_grad(loss)(params, x, y)
    return gp.tree_map(lambda p, g: p - alpha * g, params, grads), value


alpha = 0.1
for step in range(2001):
    params, value = descend(params, x, y, alpha)
    if step % 400 == 0:
        print(f"step {step:4d}  J(Θ) = {float(gp.to_numpy(value)):.6f}")
