"""nb.utils.to_categorical against Keras 3 (shapes, the trailing-1 rule, num_classes), and bad labels."""
import numpy as np
import pytest

from numbanet.utils import to_categorical


@pytest.mark.parametrize("y, num_classes", [
    ([0, 2, 1], None), ([0, 2, 1], 5), ([[1], [0], [3]], None), (np.array([[0, 1], [2, 2]]), None),
    (np.zeros((2, 3, 1), dtype=np.int32), 2), (np.array([1.0, 0.0, 2.0]), None), (3, 4), ([True, False], None),
    (np.array([[4]]), None), (np.arange(6, dtype=np.uint8).reshape(2, 3), 7), (np.array([], dtype=int), 3),
])
def test_matches_keras(keras, y, num_classes):
    ours = to_categorical(y, num_classes)
    theirs = keras.utils.to_categorical(y, num_classes)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_rows_are_one_hot_by_construction():
    y = np.random.default_rng(0).integers(0, 5, (4, 6))
    out = to_categorical(y, 5)
    assert out.shape == (4, 6, 5)
    np.testing.assert_array_equal(out.argmax(-1), y)
    np.testing.assert_array_equal(out.sum(-1), np.ones((4, 6)))


@pytest.mark.parametrize("y, num_classes, error, match", [
    ([0, -1, 2], None, ValueError, r"labels must be >= 0, got -1"),
    ([0.5, 1.0], None, ValueError, r"labels must be whole numbers, got 0.5 at index \(0,\)"),
    ([0.0, np.nan], None, ValueError, r"labels must be whole numbers"),
    ([0, 3], 3, ValueError, r"label 3 is out of range for num_classes=3 \(labels must be in \[0, 2\]\)"),
    ([0, 1], 0, ValueError, r"num_classes must be a positive integer"),
    ([0, 1], 2.0, TypeError, r"num_classes must be an integer"),
    (["a", "b"], None, TypeError, r"y must be integer class labels, got an array of dtype <U1"),
    ("ab", None, TypeError, r"y must be integer class labels, got the str"),
    ([], None, ValueError, r"y is empty, so num_classes cannot be inferred"),
])
def test_bad_labels_are_named(y, num_classes, error, match):
    with pytest.raises(error, match=match):
        to_categorical(y, num_classes)
