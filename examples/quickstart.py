"""The backpropagation note in a few lines: a two-layer network's loss,
its gradient by gpuprop, and gradient descent Θ ← Θ − α ∇J(Θ)."""
import numpy as np

import gpuprop as gp
import gpuprop.numpy as gnp

rng = np.random.default_rng(0)
x = gp.asarray(rng.standard_normal((64, 3)).astype(np.float32))
y = gp.asarray(np.sin(gp.to_numpy(x).sum(axis=1, keepdims=True)).astype(np.float32))
params = {"W1": gp.asarray(0.5 * rng.standard_normal((3, 16)).astype(np.float32)),
          "b1": gnp.zeros(16), "W2": gp.asarray(0.5 * rng.standard_normal((16, 1)).astype(np.float32)),
          "b2": gnp.zeros(1)}


def loss(p, x, y):
    h = gnp.tanh(x @ p["W1"] + p["b1"])          # z = W x + b, x' = h(z)
    return gnp.mean((h @ p["W2"] + p["b2"] - y) ** 2)


grad_loss = gp.value_and_grad(loss)
for step in range(201):
    value, g = grad_loss(params, x, y)
    params = gp.tree_map(lambda w, dw: w - 0.1 * dw, params, g)
    if step % 50 == 0:
        print(f"step {step:3d}  loss {float(value):.4f}")
