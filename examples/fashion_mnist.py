"""Fashion-MNIST with an MLP 784-256-256-10: Adam with a cosine-decayed
learning rate, 10 epochs on 90% of the training set (the other 10% validate
each epoch), a checkpoint each epoch (Ctrl-C, then run it again to
continue), and the test accuracy, overall and per class, at the end.

    sudo apt-get install dataset-fashion-mnist     # or set GPUPROP_DATA_DIR
    python examples/fashion_mnist.py               # GPUPROP_BACKEND=cupy for a GPU
"""
import logging
import sys

import numpy as np

import gpuprop as gp
from gpuprop import data, nn, optim
from gpuprop.train import Trainer

logging.basicConfig(level=logging.INFO, format="%(message)s")

try:
    ds = data.load_fashion_mnist()
except FileNotFoundError as e:
    sys.exit(str(e))

epochs, batch_size = 10, 128
x_train, y_train, x_val, y_val = data.split_validation(ds.x_train, ds.y_train, 0.1, seed=0)
model = nn.MLP([784, 256, 256, 10], activation="relu", init="he", seed=0)
steps = epochs * data.num_batches(len(x_train), batch_size)
trainer = Trainer(model.apply, model.init(), nn.softmax_cross_entropy,
                  optim.adam(optim.cosine_decay_schedule(2e-3, steps)),
                  x_train, y_train, x_val, y_val, x_test=ds.x_test, y_test=ds.y_test,
                  epochs=epochs, batch_size=batch_size, seed=0,
                  checkpoint_dir="runs/fashion-mnist-example")
history = trainer.fit(resume=True)

seconds = history["seconds"][1:] or history["seconds"]    # the first epoch also compiles
print(f"\ntest accuracy {trainer.test_metrics[1]:.4f} after {len(history['epoch'])} "
      f"epochs; {np.mean(seconds):.2f} s per epoch (backend {gp.get_backend()})")
logits = model.apply(trainer.params, gp.asarray(ds.x_test))
pred = gp.to_numpy(logits).argmax(axis=1)
for k, name in enumerate(data.FASHION_MNIST_CLASSES):
    mine = ds.y_test == k
    print(f"  {name:12s} {np.mean(pred[mine] == k):.3f}")
