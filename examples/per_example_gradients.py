"""Per-example gradients with vmap, and the DP-SGD step built on them: each
example's gradient clipped to norm C, the clipped gradients averaged, noise
added (Abadi et al., 2016).  The per-example gradients are checked against a
Python loop over the examples, then a few DP-SGD epochs train an MLP on
Fashion-MNIST (when installed; else on spirals).

    python examples/per_example_gradients.py
"""
import time

import numpy as np

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop import data, nn

CLIP, NOISE, LR, BATCH = 1.0, 0.5, 2.0, 64

try:
    ds, sizes, EPOCHS = data.load_fashion_mnist(), [784, 128, 10], 3
    ds = ds._replace(x_train=ds.x_train[:12000], y_train=ds.y_train[:12000])
except (FileNotFoundError, OSError):
    ds, sizes, EPOCHS = data.spirals(n_per_class=600), [2, 64, 64, 3], 40
model = nn.MLP(sizes, activation="tanh", init="xavier", seed=0)


def loss(params, x, y):
    """The loss of ONE example (x: features, y: its label)."""
    logits = model.apply(params, x[None])
    return nn.softmax_cross_entropy(logits, y[None])


per_example_grads = gp.jit(gp.vmap(gp.grad(loss), in_axes=(None, 0, 0)))


def clipped_mean(grads):
    """Each example's gradient scaled to norm at most CLIP, then averaged."""
    leaves = gp.tree_leaves(grads)
    sq = sum(gnp.sum(gnp.reshape(g * g, (g.shape[0], -1)), axis=1) for g in leaves)
    scale = gnp.minimum(1.0, CLIP / gnp.sqrt(sq + 1e-12))           # one per example
    return gp.tree_map(lambda g: gnp.mean(g * gnp.reshape(scale, (-1,) + (1,) * (g.ndim - 1)),
                                          axis=0), grads)


@gp.jit
def dp_sgd_step(params, x, y, noise):
    g = clipped_mean(per_example_grads(params, x, y))
    return gp.tree_map(lambda p, gi, n: p - LR * (gi + NOISE * CLIP / x.shape[0] * n),
                       params, g, noise)


def main():
    rng = np.random.default_rng(0)
    params = model.init()
    x, y = gp.asarray(ds.x_train[:32]), gp.asarray(ds.y_train[:32])
    batched = per_example_grads(params, x, y)
    looped = [gp.grad(loss)(params, x[i], y[i]) for i in range(32)]
    worst = max(float(np.abs(gp.to_numpy(b)[i] - gp.to_numpy(l)).max())
                for i, tree in enumerate(looped)
                for b, l in zip(gp.tree_leaves(batched), gp.tree_leaves(tree)))
    print(f"per-example gradients of {len(looped)} examples: largest difference from "
          f"a Python loop {worst:.2e}")
    assert worst < 1e-5
    start = time.perf_counter()
    for epoch in range(EPOCHS):
        order = rng.permutation(len(ds.x_train))
        for k in range(0, len(order) - BATCH + 1, BATCH):
            i = order[k:k + BATCH]
            noise = gp.tree_map(lambda p: gp.asarray(
                rng.standard_normal(p.shape).astype(p.dtype)), params)
            params = dp_sgd_step(params, gp.asarray(ds.x_train[i]), gp.asarray(ds.y_train[i]),
                                 noise)
        if (epoch + 1) % max(1, EPOCHS // 4) == 0:
            acc = float(gp.to_numpy(nn.accuracy(model.apply(params, gp.asarray(ds.x_test)),
                                                gp.asarray(ds.y_test))))
            print(f"epoch {epoch + 1}: test accuracy {acc:.3f} "
                  f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
