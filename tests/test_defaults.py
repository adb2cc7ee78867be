"""Fast by default: the batch-split threads a plain script gets, how to opt out, and the pool
that keeps a step's large arrays (``numbanet/fast/parallel.py``, ``numbanet/fast/workspace.py``)."""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import numbanet as nb
from numbanet.fast import parallel, workspace

ROOT = Path(__file__).resolve().parent.parent
L = nb.layers

# A fresh interpreter: what `import numbanet` alone sets up, then what the first use settles.
PLAIN_SCRIPT = r"""
import json, os, threading
before = threading.active_count()
import numbanet as nb
from numbanet.fast import parallel
out = {"threads_after_import": threading.active_count() - before, "state_after_import": parallel._STATE["threads"],
       "pool_after_import": parallel._STATE["pool"] is not None}
try:
    out["default"] = nb.utils.get_num_threads()
except ValueError as err:
    out["error"] = str(err)
print(json.dumps(out))
"""


def _plain(env_threads=None):
    env = {k: v for k, v in os.environ.items() if k != parallel.ENV_VAR}
    if env_threads is not None:
        env[parallel.ENV_VAR] = env_threads
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", PLAIN_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_plain_import_starts_nothing_and_first_use_takes_every_available_cpu():
    out = _plain()
    assert out["threads_after_import"] == 0 and out["state_after_import"] is None and not out["pool_after_import"]
    assert out["default"] == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value, expected", [("3", 3), (" 1 ", 1)])
def test_environment_variable_sets_the_default(value, expected):
    assert _plain(value)["default"] == expected


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_environment_variable_is_a_clear_error(value, monkeypatch):
    monkeypatch.setenv(parallel.ENV_VAR, value)
    with pytest.raises(ValueError, match=rf"NUMBANET_NUM_THREADS must be a positive integer.*got {value!r}"):
        parallel.default_threads()


def test_default_and_opt_out_in_process(monkeypatch):
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    try:
        assert nb.utils.set_num_threads() == len(os.sched_getaffinity(0)) == nb.utils.get_num_threads()
        assert nb.utils.set_num_threads(1) == 1 and parallel._STATE["pool"] is None
        assert parallel.split(10) == [(0, 10)]                      # serial: one part
        monkeypatch.setenv(parallel.ENV_VAR, "3")
        assert nb.utils.set_num_threads(None) == 3
        assert parallel.split(10) == [(0, 3), (3, 7), (7, 10)]
    finally:
        nb.utils.set_num_threads(1)


@pytest.mark.parametrize("n, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError),
                                      ("2", TypeError)])
def test_set_num_threads_rejects_bad_counts(n, error):
    with pytest.raises(error, match="set_num_threads"):
        nb.utils.set_num_threads(n)


def test_only_numpys_blas_is_selected():
    """Among the BLAS libraries loaded, the one in NumPy's own folder; all where none is."""
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    numpy_lib = SimpleNamespace(filepath=str(libs / "libopenblas.so"))
    scipy_lib = SimpleNamespace(filepath=str(libs.parent / "scipy.libs" / "libopenblas.so"))
    system_lib = SimpleNamespace(filepath="/usr/lib/libopenblas.so.0")
    assert parallel.numpy_blas([scipy_lib, numpy_lib]) == [numpy_lib]
    assert parallel.numpy_blas([system_lib, scipy_lib]) == [system_lib, scipy_lib]


def test_tensorflow_in_the_process_keeps_its_blas_threads(tf):
    """With TensorFlow (and the SciPy it loads) in the process, a batch split sets NumPy's BLAS
    to one thread and leaves every other BLAS library's thread count as it was."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    tf.linalg.matmul(tf.ones((64, 64)), tf.ones((64, 64))).numpy()     # TensorFlow's pools exist
    nb.utils.set_num_threads(1)
    everything = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
    ours = {lc.filepath for lc in parallel.numpy_blas(everything)}
    before = {lc.filepath: lc.get_num_threads() for lc in everything}
    try:
        nb.utils.set_num_threads(2)
        parallel.run(lambda a, b, _: None, parallel.split(8))         # a batch split
        if not parallel._STATE["blas_single"]:
            pytest.skip("threadpoolctl cannot set the BLAS thread count here")
        for lc in everything:
            assert lc.get_num_threads() == (1 if lc.filepath in ours else before[lc.filepath]), lc.filepath
    finally:
        nb.utils.set_num_threads(1)
    assert {lc.filepath: lc.get_num_threads() for lc in everything} == before


# ------------------------------------------------------------------ the pool
def test_scratch_reuses_a_free_array_and_never_a_held_one():
    workspace.clear()
    a = workspace.scratch("t", (4, 5), np.float32)
    a_id = id(a)
    del a
    b = workspace.scratch("t", (4, 5), np.float32)
    assert id(b) == a_id                                      # free again: the same array
    view = b[1:]
    del b
    c = workspace.scratch("t", (4, 5), np.float32)            # held through a view: another one
    assert not np.shares_memory(c, view)
    d = workspace.scratch("t", (4, 5), np.float64)            # another dtype, another key
    assert d.dtype == np.float64 and not np.shares_memory(c, d)
    workspace.clear()


def test_same_shape_users_each_find_their_array_again_up_to_the_cap():
    workspace.clear()
    first = [workspace.scratch("t", (3,), np.float32) for _ in range(2)]   # two held at once
    ids = {id(a) for a in first}
    assert len(ids) == 2
    del first
    again = [workspace.scratch("t", (3,), np.float32) for _ in range(2)]
    assert {id(a) for a in again} == ids                      # the next step: the same two
    many = again + [workspace.scratch("t", (3,), np.float32) for _ in range(workspace.PER_KEY + 2)]
    assert len({id(a) for a in many}) == len(many)           # all held: all distinct
    assert len(workspace._POOL[("t", (3,), np.dtype(np.float32))]) == workspace.PER_KEY
    workspace.clear()


def test_empty_pools_from_the_threshold_up():
    workspace.clear()
    n_small = workspace.POOL_MIN_BYTES // 4 - 1               # float32 elements just under the threshold
    small = workspace.empty("t", (n_small,), np.float32)
    big = workspace.empty("t", (n_small + 1,), np.float32)
    assert workspace.pooled_bytes() == big.nbytes == workspace.POOL_MIN_BYTES
    assert small.shape == (n_small,) and big.shape == (n_small + 1,)
    workspace.clear()


def _cnn(seed=0):
    nb.utils.set_random_seed(seed)
    model = nb.Sequential([L.Input((20, 20, 3)), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2),
                           L.Conv2D(32, 3, activation="relu"), L.UpSampling2D(2), L.Flatten(), L.Dense(4)])
    model.compile(optimizer="sgd", loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_an_output_the_user_keeps_is_never_overwritten():
    """Conv, pool and upsample outputs come from the pool: one the caller still holds stays as it was
    while the model runs on other data, and equals the reference tier's output within rounding."""
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 32, 20, 20, 3)).astype(np.float32)
    model = _cnn()
    conv = model.layers[0]
    kept = conv(x1)                                            # (32, 18, 18, 16) float32: pooled
    assert kept.data.nbytes >= workspace.POOL_MIN_BYTES
    snapshot = kept.data.copy()
    for _ in range(3):
        other = conv(x2)
        assert not np.shares_memory(other.data, kept.data)
        model(x2)
    np.testing.assert_array_equal(kept.data, snapshot)
    with nb.kernels("reference"):
        ref = conv(x1).data
    W = conv.weights[0].data.astype(np.float64)
    # each output: a sum of K = 27 products plus the bias, in float32 (relu only shrinks errors)
    bound = 27 * np.finfo(np.float32).eps * (np.abs(x1).max() * np.abs(W).sum(axis=(0, 1, 2)) + 1)
    assert np.all(np.abs(kept.data - ref) <= bound)


def test_training_reuses_the_pool_and_stays_deterministic():
    """Two runs with the same seed and thread count give the same weights bit for bit, and after
    the first epoch the pool holds no more memory: each step reuses the previous step's arrays."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 20, 20, 3)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    nb.utils.set_num_threads(2)
    try:
        runs = []
        for _ in range(2):
            workspace.clear()
            model = _cnn(seed=3)
            model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
            held = workspace.pooled_bytes()
            model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
            assert workspace.pooled_bytes() == held
            runs.append(model.get_weights())
    finally:
        nb.utils.set_num_threads(1)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
