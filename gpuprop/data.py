"""Datasets and batching.  Everything here returns host (NumPy) arrays:
features float32, labels int32; move them with gpuprop.asarray.

- Fashion-MNIST from its IDX `.gz` files (`load_fashion_mnist`), looked up
  in $GPUPROP_DATA_DIR, then /usr/share/datasets/fashion-mnist (Debian:
  `apt-get install dataset-fashion-mnist`).
- Digits (8x8) through scikit-learn, when it is installed (`load_digits`).
- Spirals, synthetic, needing nothing (`spirals`).
- `batches(x, y, batch_size, rng)`: (x, y) minibatches, shuffled by `rng`.
"""
import gzip
import os
import zlib
from typing import NamedTuple

import numpy as np

from . import backend

DEFAULT_DATA_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
               0x0D: ">f4", 0x0E: ">f8"}


class DataFormatError(ValueError):
    """A data file that is not what it claims to be: foreign, truncated, corrupt."""


class Dataset(NamedTuple):
    """Train and test splits as host arrays, and what the labels mean."""
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


# ---- IDX files --------------------------------------------------------------
def read_idx(path, ndim=None):
    """The array in an IDX file (gzip-compressed when the name ends in .gz):
    magic 0x0000, a type byte, the number of dimensions, each size as a
    big-endian uint32, then the data.  Anything else is a DataFormatError."""
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (EOFError, OSError, ValueError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise DataFormatError(f"read_idx: {path} is not a readable gzip file ({e}); it is "
                              f"truncated or corrupt: download or reinstall it") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataFormatError(f"read_idx: {path} is not an IDX file (its first bytes are "
                              f"{raw[:4].hex() or 'missing'}, expected 0000 then a type "
                              f"byte, e.g. 00000803 for images)")
    dims = raw[3]
    if ndim is not None and dims != ndim:
        raise DataFormatError(f"read_idx: {path} holds a {dims}-dimensional array, "
                              f"expected {ndim} dimensions")
    head = 4 + 4 * dims
    if len(raw) < head:
        raise DataFormatError(f"read_idx: {path} is truncated inside its header "
                              f"({len(raw)} bytes, the header needs {head})")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", dims, 4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - head != want:
        raise DataFormatError(f"read_idx: {path} should hold {want} bytes of data for an "
                              f"array of shape {shape}, but has {len(raw) - head}: the "
                              f"file is {'truncated' if len(raw) - head < want else 'corrupt'}; "
                              f"download or reinstall it")
    return np.frombuffer(raw, dtype, offset=head).reshape(shape).astype(dtype.newbyteorder("="))


def find_data_dir(files, data_dir=None):
    """The first directory holding all of `files` (or their ungzipped
    versions): `data_dir`, else $GPUPROP_DATA_DIR (or its fashion-mnist
    subdirectory), else DEFAULT_DATA_DIRS.  A directory asked for by name
    must hold them: the system copy is read only when none was asked for."""
    env = os.environ.get("GPUPROP_DATA_DIR", "").strip()
    if data_dir is not None:
        candidates = [os.fspath(data_dir)]
    elif env:
        candidates = [env, os.path.join(env, "fashion-mnist")]
    else:
        candidates = list(DEFAULT_DATA_DIRS)
    for d in candidates:
        if all(_existing(d, f) for f in files):
            return d
    raise FileNotFoundError(
        f"Fashion-MNIST not found: no directory among {', '.join(candidates)} holds "
        f"{', '.join(files)}. Install it with `sudo apt-get install dataset-fashion-mnist` "
        f"(Debian/Ubuntu, into {DEFAULT_DATA_DIRS[0]}), or download the four IDX .gz files "
        f"and point GPUPROP_DATA_DIR (or data_dir=) at their directory")


def _existing(d, name):
    """The path of `name` in `d`, or of its ungzipped version, or None."""
    for n in (name, name[:-3] if name.endswith(".gz") else None):
        if n and os.path.isfile(os.path.join(d, n)):
            return os.path.join(d, n)
    return None


def load_fashion_mnist(data_dir=None, flatten=True):
    """Fashion-MNIST as a Dataset: images float32 in [0, 1] of shape
    (n, 784) (or (n, 28, 28) without flatten), labels int32 in 0..9."""
    names = [f for split in FASHION_MNIST_FILES.values() for f in split]
    d = find_data_dir(names, data_dir)
    splits = []
    for img_name, lab_name in FASHION_MNIST_FILES.values():
        img_path, lab_path = _existing(d, img_name), _existing(d, lab_name)
        images, labels = read_idx(img_path, ndim=3), read_idx(lab_path, ndim=1)
        if images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise DataFormatError(f"load_fashion_mnist: {img_path} holds {images.dtype} "
                                  f"images of shape {images.shape[1:]}, expected uint8 28x28")
        if len(images) != len(labels):
            raise DataFormatError(f"load_fashion_mnist: {img_path} has {len(images)} images "
                                  f"but {lab_path} has {len(labels)} labels")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DataFormatError(f"load_fashion_mnist: {lab_path} has labels outside 0..9 "
                                  f"(from {labels.min()} to {labels.max()})")
        x = images.astype(np.float32) / np.float32(255)
        splits += [x.reshape(len(x), -1) if flatten else x, labels.astype(np.int32)]
    return Dataset("fashion-mnist", *splits, num_classes=10)


# ---- other datasets ---------------------------------------------------------
def _split(name, x, y, num_classes, test_fraction, seed):
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    return Dataset(name, x[train], y[train], x[test], y[test], num_classes)


def load_digits(test_fraction=0.2, seed=0):
    """scikit-learn's 8x8 digits (1797 images) as a Dataset: features
    float32 in [0, 1] of shape (n, 64), labels int32 in 0..9."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise ImportError("load_digits needs scikit-learn: `pip install scikit-learn` "
                          "(or `pip install gpuprop[digits]`)") from e
    d = sk_load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return _split("digits", x, d.target.astype(np.int32), 10, test_fraction, seed)


def spirals(n_per_class=300, num_classes=3, noise=0.2, turns=1.0, test_fraction=0.2,
            seed=0):
    """Interleaved 2-D spirals, one arm per class (not linearly separable):
    features float32 of shape (n, 2) in about [-1, 1], labels int32."""
    if n_per_class < 1 or num_classes < 2:
        raise ValueError(f"spirals: need n_per_class >= 1 and num_classes >= 2, got "
                         f"{n_per_class} and {num_classes}")
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.05, 1.0, n_per_class), num_classes)
    k = np.repeat(np.arange(num_classes), n_per_class)
    theta = (2 * np.pi * turns * r + 2 * np.pi * k / num_classes
             + noise * rng.standard_normal(len(r)))
    x = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1).astype(np.float32)
    return _split("spirals", x, k.astype(np.int32), num_classes, test_fraction, seed)


DATASETS = {"fashion-mnist": load_fashion_mnist, "digits": load_digits, "spirals": spirals}


def load(name, data_dir=None, seed=0):
    """A Dataset by name: fashion-mnist, digits, spirals."""
    if name not in DATASETS:
        raise ValueError(f"gpuprop.data.load: unknown dataset {name!r}; choose one of "
                         f"{', '.join(DATASETS)}")
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    return DATASETS[name](seed=seed)


def split_validation(x, y, fraction, seed=0):
    """(x_train, y_train, x_val, y_val): a seeded random `fraction` of the
    rows held out for validation (at least one row when fraction > 0)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"split_validation: fraction must lie in [0, 1), got {fraction!r}")
    n_val = max(int(round(len(x) * fraction)), 1) if fraction else 0
    if n_val >= len(x):
        raise ValueError(f"split_validation: holding out {n_val} of {len(x)} rows leaves "
                         f"none to train on; use more data or a smaller fraction")
    perm = np.random.default_rng(seed).permutation(len(x))
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return x[train], y[train], x[val], y[val]


# ---- batching ---------------------------------------------------------------
def batches(x, y, batch_size, rng=None, drop_last=False, start=0):
    """Iterate over (x[idx], y[idx]) minibatches in the order of a random
    permutation drawn from `rng` (a numpy.random.Generator; None keeps the
    order).  The arrays may be host arrays or arrays of the active backend
    (gathered there: only the indices travel).  The last batch is smaller
    unless drop_last; `start` skips that many batches (after the
    permutation is drawn, so resuming mid-epoch sees the same batches)."""
    n = len(x)
    if len(y) != n:
        raise ValueError(f"batches: x has {n} rows but y has {len(y)}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batches: batch_size must be a positive integer, got {batch_size!r}")
    order = None if rng is None else rng.permutation(n)
    # device arrays are indexed by device indices: one transfer per epoch
    on_device = None if order is None or all(isinstance(a, np.ndarray) for a in (x, y)) \
        else backend.asarray(order)
    stop = n - n % batch_size if drop_last else n
    for lo in range(start * batch_size, stop, batch_size):
        hi = min(lo + batch_size, n)
        if order is None:
            yield x[lo:hi], y[lo:hi]
        else:
            yield tuple(a[(order if isinstance(a, np.ndarray) else on_device)[lo:hi]]
                        for a in (x, y))


def num_batches(n, batch_size, drop_last=False):
    return n // batch_size if drop_last else -(-n // batch_size)
