"""Weight files: ``save_weights`` / ``load_weights`` in NumPy's ``.npz`` format.

Layout: arrays ``w0, w1, ...`` in Keras order, plus ``__names__`` (the weight
names) and ``__format__``. Writing is atomic: the file is written under a
temporary name in the same folder, flushed to disk, then renamed over the
target (``os.replace``), so a crash mid-write leaves the old file intact.
Loading checks the count and every shape before any weight changes.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
import zlib

import numpy as np

FORMAT = "numbanet-weights-1"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_savez(path, arrays: dict):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600); give it a normal file's mode
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class WeightsIO:
    def save_weights(self, filepath):
        """Write every weight to ``filepath`` (.npz), atomically."""
        weights = self.weights
        if not weights:
            raise ValueError(f"{self.name}: the model has no weights yet (build it or call it once first)")
        arrays = {f"w{i}": w.data for i, w in enumerate(weights)}
        arrays["__names__"] = np.array([w.name or "" for w in weights])
        arrays["__format__"] = np.array(FORMAT)
        atomic_savez(filepath, arrays)

    def load_weights(self, filepath):
        """Read weights written by ``save_weights``; the model is unchanged if anything is wrong."""
        path = os.fspath(filepath)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{self.name}.load_weights: no such file {path!r}")
        try:  # np.load raises ValueError for bytes that are neither .npy nor .npz
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            with data:
                if "__format__" not in data.files or str(data["__format__"]) != FORMAT:
                    arrays = None
                else:
                    count = sum(1 for k in data.files if k.startswith("w") and k[1:].isdigit())
                    arrays = [data[f"w{i}"] for i in range(count)]
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, ValueError) as err:
            raise ValueError(f"{self.name}.load_weights: {path!r} is corrupt or not an .npz file ({err})") from None
        if arrays is None:
            raise ValueError(f"{self.name}.load_weights: {path!r} is not a numbanet weight file")
        own = self.weights
        if len(arrays) != len(own):
            raise ValueError(f"{self.name}.load_weights: {path!r} holds {len(arrays)} arrays, "
                             f"the model has {len(own)} weights")
        for i, (w, a) in enumerate(zip(own, arrays)):
            if a.shape != w.shape:
                raise ValueError(f"{self.name}.load_weights: weight {i} ({w.name}) has shape {w.shape}, "
                                 f"the file holds shape {a.shape}")
        self.set_weights(arrays)
