"""Data sets shipped by packages or already on disk; splitting and batching."""
from .datasets import batches, load_iris, sine, train_test_split  # noqa: F401
from .images import load_digits, load_mnist, to_nhwc  # noqa: F401
