"""Regression with the Trainer: an MLP learns y = sin(3x) + x/2 from noisy
samples, with mean squared error, AdamW under a warmup-then-cosine learning
rate, and gradient clipping; early stopping watches the validation loss.

    python examples/regression.py
"""
import logging

import numpy as np

import gpuprop as gp
from gpuprop import nn, optim
from gpuprop.train import Trainer

logging.basicConfig(level=logging.INFO, format="%(message)s")


def target(x):
    return np.sin(3 * x) + 0.5 * x


rng = np.random.default_rng(0)
x_train = rng.uniform(-2, 2, (2000, 1)).astype(np.float32)
y_train = (target(x_train) + 0.1 * rng.standard_normal(x_train.shape)).astype(np.float32)
x_val = np.linspace(-2, 2, 401, dtype=np.float32)[:, None]
y_val = target(x_val).astype(np.float32)                  # noise-free: the true curve

model = nn.MLP([1, 64, 64, 1], activation="tanh", init="xavier", seed=0)
epochs, batch_size = 60, 64
steps = epochs * -(-len(x_train) // batch_size)
optimizer = optim.chain(
    optim.clip_by_global_norm(1.0),
    optim.adamw(optim.warmup_cosine_decay_schedule(0.0, 1e-2, 100, steps), weight_decay=1e-4))
trainer = Trainer(model.apply, model.init(), nn.mse, optimizer, x_train, y_train,
                  x_val, y_val, epochs=epochs, batch_size=batch_size, early_stopping=10)
history = trainer.fit()

pred = gp.to_numpy(model.apply(trainer.params, gp.asarray(x_val)))
print(f"\nvalidation MSE against the true curve: {min(history['val_loss']):.5f} "
      f"(the best epoch's parameters; the noise variance is 0.01)")
print("   x      true    predicted")
for i in range(0, 401, 50):
    print(f"{x_val[i, 0]:5.2f}  {y_val[i, 0]:7.4f}  {pred[i, 0]:7.4f}")
