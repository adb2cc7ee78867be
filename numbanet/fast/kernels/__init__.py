"""Numba kernels on plain ndarrays (no Tensor ever enters a kernel).

Each kernel module documents its shapes and index arithmetic; each kernel has a
plain-NumPy twin in the tests that it is checked against.
"""
