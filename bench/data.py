"""The inputs every library gets: the same float32 host arrays, made from
fixed seeds, so gradients can be compared across processes."""
import gzip
import os

import numpy as np

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def init_mlp(sizes, seed=0):
    """[(W, b), ...] float32: W ~ N(0, 1/fan_in), b small and nonzero (so the
    bias gradients are checked against something)."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((k, n), dtype=np.float32) / np.float32(np.sqrt(k)),
             rng.standard_normal(n, dtype=np.float32) * np.float32(0.01))
            for k, n in zip(sizes[:-1], sizes[1:])]


def one_hot(labels, classes):
    y = np.zeros((len(labels), classes), np.float32)
    y[np.arange(len(labels)), labels] = 1
    return y


def batch(sizes, n, seed=1):
    """A synthetic batch: x ~ N(0, 1), one-hot labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    return x, one_hot(rng.integers(0, sizes[-1], n), sizes[-1])


def direction(params, seed=2):
    """A random tangent vector shaped like params (for the HVP)."""
    rng = np.random.default_rng(seed)
    return [tuple(rng.standard_normal(a.shape, dtype=np.float32) for a in layer)
            for layer in params]


def chain_input(shape=(4,)):
    return np.linspace(-1.0, 1.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(limit=None, seed=3):
    """(x float32 [n, 784] in [0, 1], one-hot y [n, 10], source): the
    Fashion-MNIST training set shuffled with a fixed seed, or synthetic data of
    the same shape where the dataset is not installed."""
    images = os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")
    labels = os.path.join(FASHION_DIR, "train-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    if os.path.exists(images) and os.path.exists(labels):
        x = _read_idx(images).reshape(-1, 784).astype(np.float32) / np.float32(255)
        lab = _read_idx(labels).astype(np.int64)
        source = "fashion-mnist"
    else:
        x = rng.random((60000, 784), dtype=np.float32)
        lab = rng.integers(0, 10, 60000)
        source = "synthetic (fashion-mnist not installed)"
    order = rng.permutation(len(x))[:limit]
    return np.ascontiguousarray(x[order]), one_hot(lab[order], 10), source


def batches(x, y, size):
    """Whole batches only (the last partial batch is dropped), as views."""
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x) - size + 1, size)]
