"""Data loading: IDX files (real layout, corrupt, truncated, foreign, missing),
spirals, digits, and the batching iterator."""
import gzip
import importlib.util
import struct

import numpy as np
import pytest

import gpuprop as gp
from gpuprop import data
from support import dev, host

TRAIN_IMG, TRAIN_LAB = data.FASHION_MNIST_FILES["train"]
TEST_IMG, TEST_LAB = data.FASHION_MNIST_FILES["test"]


def idx_bytes(array, type_byte=0x08):
    array = np.asarray(array)
    head = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(np.uint8).tobytes()


def write(path, raw, compress=True):
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def fake_fashion(d, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    arrays = {TRAIN_IMG: rng.integers(0, 256, (n_train, 28, 28)),
              TRAIN_LAB: rng.integers(0, 10, n_train),
              TEST_IMG: rng.integers(0, 256, (n_test, 28, 28)),
              TEST_LAB: rng.integers(0, 10, n_test)}
    for name, a in arrays.items():
        write(d / name, idx_bytes(a))
    return arrays


def test_loads_the_idx_files(tmp_path, monkeypatch):
    arrays = fake_fashion(tmp_path)
    monkeypatch.setenv("GPUPROP_DATA_DIR", str(tmp_path))
    ds = data.load_fashion_mnist()
    assert ds.x_train.shape == (6, 784) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train * 255, arrays[TRAIN_IMG].reshape(6, -1))
    np.testing.assert_array_equal(ds.y_test, arrays[TEST_LAB])
    assert ds.y_train.dtype == np.int32 and ds.num_classes == 10
    assert data.load_fashion_mnist(tmp_path, flatten=False).x_test.shape == (4, 28, 28)


def test_uncompressed_files_are_accepted(tmp_path):
    fake_fashion(tmp_path)
    raw = gzip.decompress((tmp_path / TRAIN_IMG).read_bytes())
    (tmp_path / TRAIN_IMG).unlink()
    write(tmp_path / TRAIN_IMG[:-3], raw, compress=False)
    assert data.load_fashion_mnist(tmp_path).x_train.shape == (6, 784)


def test_missing_files_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEFAULT_DATA_DIRS", (str(tmp_path / "nowhere"),))
    monkeypatch.setenv("GPUPROP_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist()


def test_a_named_directory_without_the_files_is_not_passed_over(tmp_path, monkeypatch):
    system = tmp_path / "system"
    system.mkdir()
    fake_fashion(system)            # the system copy exists, yet is not read
    monkeypatch.setattr(data, "DEFAULT_DATA_DIRS", (str(system),))
    monkeypatch.setenv("GPUPROP_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="holds train-images-idx3-ubyte.gz"):
        data.load_fashion_mnist()
    monkeypatch.delenv("GPUPROP_DATA_DIR")
    with pytest.raises(FileNotFoundError, match="holds train-images-idx3-ubyte.gz"):
        data.load_fashion_mnist(tmp_path / "empty")
    assert data.load_fashion_mnist().name == "fashion-mnist"


def test_split_validation_is_seeded_and_disjoint():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.int32)
    xt, yt, xv, yv = data.split_validation(x, y, 0.3, seed=4)
    assert len(yt) == 7 and len(yv) == 3 and sorted([*yt, *yv]) == list(range(10))
    np.testing.assert_array_equal(xv[:, 0], 2 * yv)
    assert data.split_validation(x, y, 0.3, seed=4)[3].tolist() == yv.tolist()
    assert data.split_validation(x, y, 0.3, seed=5)[3].tolist() != yv.tolist()
    assert len(data.split_validation(x, y, 0.0)[3]) == 0
    with pytest.raises(ValueError, match="leaves none to train on"):
        data.split_validation(x[:1], y[:1], 0.5)


def corrupt_cases():
    images = np.zeros((3, 28, 28))
    good = idx_bytes(images)
    return {
        "not gzip": (b"hello, I am plain text", True, "not a readable gzip file"),
        "truncated gzip": (gzip.compress(good)[:-30], True, "not a readable gzip file"),
        "foreign": (gzip.compress(b"\x89PNG\r\n\x1a\n" + bytes(100)), True, "not an IDX file"),
        "empty": (gzip.compress(b""), True, "not an IDX file"),
        "wrong rank": (gzip.compress(idx_bytes(np.zeros(3))), True,
                       "holds a 1-dimensional array, expected 3"),
        "short header": (gzip.compress(good[:9]), True, "truncated inside its header"),
        "truncated data": (gzip.compress(good[:-1]), True, "has 2351: the file is truncated"),
        "extra data": (gzip.compress(good + b"\x00"), True, "has 2353: the file is corrupt"),
    }


@pytest.mark.parametrize("case", sorted(corrupt_cases()))
def test_corrupt_truncated_and_foreign_files(tmp_path, case):
    fake_fashion(tmp_path)
    payload, _, message = corrupt_cases()[case]
    (tmp_path / TRAIN_IMG).write_bytes(payload)
    with pytest.raises(data.DataFormatError, match=message):
        data.load_fashion_mnist(tmp_path)


def test_inconsistent_files(tmp_path):
    fake_fashion(tmp_path)
    write(tmp_path / TEST_LAB, idx_bytes(np.zeros(5)))
    with pytest.raises(data.DataFormatError, match="has 4 images but .* has 5 labels"):
        data.load_fashion_mnist(tmp_path)
    write(tmp_path / TEST_LAB, idx_bytes(np.array([0, 1, 12, 3])))
    with pytest.raises(data.DataFormatError, match=r"labels outside 0..9 \(from 0 to 12\)"):
        data.load_fashion_mnist(tmp_path)
    write(tmp_path / TEST_IMG, idx_bytes(np.zeros((4, 27, 27))))
    with pytest.raises(data.DataFormatError, match=r"images of shape \(27, 27\), expected"):
        data.load_fashion_mnist(tmp_path)


def test_read_idx_big_endian_types(tmp_path):
    a = (np.arange(6).reshape(2, 3) - 3).astype(">i4")
    raw = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 3) + a.tobytes()
    write(tmp_path / "x.gz", raw)
    got = data.read_idx(tmp_path / "x.gz")
    np.testing.assert_array_equal(got, a)
    assert got.dtype == np.int32 and got.dtype.isnative


def test_spirals():
    ds = data.spirals(n_per_class=50, num_classes=3, seed=1)
    assert ds.x_train.shape == (120, 2) and ds.x_test.shape == (30, 2)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist() == [50, 50, 50]
    again = data.spirals(n_per_class=50, num_classes=3, seed=1)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    assert not np.array_equal(ds.x_train, data.spirals(n_per_class=50, seed=2).x_train)
    assert np.abs(ds.x_train).max() < 2


def test_digits():
    if importlib.util.find_spec("sklearn") is None:
        pytest.skip("scikit-learn is not installed (pip install scikit-learn)")
    ds = data.load_digits()
    assert ds.x_train.shape[1] == 64 and len(ds.x_train) + len(ds.x_test) == 1797
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1


def test_load_by_name():
    assert data.load("spirals").name == "spirals"
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose one of"):
        data.load("mnist")


@pytest.mark.parametrize("on_device", [False, True])
def test_batches_cover_a_permutation(on_device):
    x = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(10)
    xs, ys = (dev(x), dev(y)) if on_device else (x, y)
    got = list(data.batches(xs, ys, 4, np.random.default_rng(5)))
    assert [len(b[0]) for b in got] == [4, 4, 2]
    if on_device:
        assert gp.backend.current().owns(got[0][0]) and gp.backend.current().owns(got[0][1])
    else:
        assert isinstance(got[0][0], np.ndarray)
    order = np.concatenate([host(b[1]) for b in got])
    np.testing.assert_array_equal(order, np.random.default_rng(5).permutation(10))
    np.testing.assert_array_equal(np.concatenate([host(b[0])[:, 0] for b in got]), order)
    # drop_last, no shuffling, and starting after two batches
    assert [host(b[1]).tolist() for b in data.batches(xs, ys, 4, drop_last=True)] == \
        [[0, 1, 2, 3], [4, 5, 6, 7]]
    rest = list(data.batches(xs, ys, 4, np.random.default_rng(5), start=2))
    np.testing.assert_array_equal(host(rest[0][1]), order[8:])
    with pytest.raises(ValueError, match="x has 10 rows but y has 9"):
        next(data.batches(xs, ys[:9], 4))
