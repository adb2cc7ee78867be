"""LSTM and GRU with the batch cut into row blocks over two threads (``fast/lstm.py``: split_rows):
the split route against the same independent checks as the serial one (tests/lstm_oracle.py for the
LSTM, the GRU's float64 reference run and its rounding bounds in test_gru.py), and finite
differences through the split in float64."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet.engine import check_grad
from numbanet.engine.functional import lstm
from numbanet.fast import lstm as fast_lstm
from numbanet.fast import parallel, routes

import test_gru as G
import test_lstm as L
from bounds import assert_within

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])


@pytest.fixture
def split_always(monkeypatch):
    """Two threads, and every recurrent call big enough to be split."""
    monkeypatch.setattr(fast_lstm, "RECURRENT_SPLIT_MIN_WORK", 0)
    nb.utils.set_num_threads(2)
    yield
    nb.utils.set_num_threads(1)


def _two_or_more_rows(c):
    return {**c, "N": max(c["N"], 2) + c["seed"] % 3}     # N in 2..5: two blocks, equal or not


@SETTINGS
@given(L.configs)
def test_lstm_split_matches_the_oracle(split_always, c):
    c = _two_or_more_rows(c)
    x, W, R, b, h0, c0, mask, rng = L._inputs(c)
    gy = rng.standard_normal(L._out_shape(c)).astype(c["dtype"])
    with nb.kernels("fast"):
        y, grads = L._run(c, x, W, R, b, h0, c0, mask, gy)
    base = "time_major" if mask is None else "time_major_masked"
    assert routes.last("lstm_forward") == routes.last("lstm_backward") == base + "_split"
    L._check_against_oracle(c, y, grads, x, W, R, b, h0, c0, mask, gy, "fast split")


@SETTINGS
@given(G.configs)
def test_gru_split_matches_the_reference_run_within_its_bounds(split_always, c):
    c = _two_or_more_rows(c)
    x, W, R, b, h0, mask, gy = G.make_inputs(c)
    dt = c["dtype"]
    gy_full = gy if c["seq"] else np.concatenate([np.zeros((c["N"], c["T"] - 1, c["U"]), dt), gy[:, None]], 1)
    e_y, e_g, e_max = G.gru_error_bounds(x, W, R, b, h0, c["act"], c["rec"], c["reset_after"], c["back"], mask,
                                         gy_full, G._eps(dt))
    assume(G.kink_distance(x, W, R, b, h0, c["act"], c["rec"], c["reset_after"], c["back"], mask) > 4 * e_max)
    y_f, g_f = G._run("fast", c, x, W, R, b, h0, mask, gy)
    route = ("reset_after" if c["reset_after"] else "reset_before") + ("" if mask is None else "_masked")
    assert routes.last("gru_forward") == routes.last("gru_backward") == route + "_split"
    y_r, g_r = G._run("reference", c, x, W, R, b, h0, mask, gy)
    assert y_f.dtype == dt and y_f.shape == y_r.shape
    assert_within(y_f, y_r, e_y if c["seq"] else e_y[:, -1], f"gru y {c}")
    for name, gf, gr, bound in zip(("gx", "gW", "gR", "gb", "gh0"), g_f, g_r, e_g):
        if gr is None:
            assert gf is None, name
            continue
        assert gf.dtype == dt and gf.shape == gr.shape, name
        assert_within(gf, gr, bound, f"gru {name} {c}")


def test_lstm_split_finite_differences_every_input(split_always):
    """float64, return_state and initial states, a mask with a padded row: central differences."""
    rng = np.random.default_rng(7)
    N, T, D, U = 5, 4, 3, 2
    x, W, R = rng.standard_normal((N, T, D)), rng.standard_normal((D, 4 * U)) * 0.5, rng.standard_normal((U, 4 * U)) * 0.5
    b, h0, c0 = rng.standard_normal(4 * U) * 0.3, rng.standard_normal((N, U)) * 0.5, rng.standard_normal((N, U)) * 0.5
    mask = rng.random((N, T)) < 0.7
    mask[3] = False
    with nb.kernels("fast"):
        report = check_grad(lambda *a: lstm(*a, return_sequences=True, return_state=True, mask=mask),
                            x, W, R, b, h0, c0, rtol=1e-5, atol=1e-7)
    assert routes.last("lstm_backward") == "time_major_masked_split"
    assert report.passed, str(report)


def test_one_thread_or_small_work_is_not_split(monkeypatch):
    rng = np.random.default_rng(0)
    x, W, R = rng.standard_normal((4, 3, 2)), rng.standard_normal((2, 8)), rng.standard_normal((2, 8))
    fast_lstm.lstm_forward(x, W, R)
    assert routes.last("lstm_forward") == "time_major"                # one thread
    nb.utils.set_num_threads(2)
    try:
        fast_lstm.lstm_forward(x, W, R)
        assert routes.last("lstm_forward") == "time_major"            # 4 * 3 * 4 * 8 multiply-adds: too few
        monkeypatch.setattr(fast_lstm, "RECURRENT_SPLIT_MIN_WORK", 0)
        y, saved = fast_lstm.lstm_forward(x, W, R)
        assert routes.last("lstm_forward") == "time_major_split" and isinstance(saved, fast_lstm.SplitSaved)
        y1, _ = fast_lstm.lstm_forward(x[:1], W, R)                    # one row: nothing to cut
        assert routes.last("lstm_forward") == "time_major"
    finally:
        nb.utils.set_num_threads(1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_split_rows_fill_their_slice_of_dh_out(split_always, cell):
    """dL/dh_t recorded for the gradient-health callback: with the rows split over two threads,
    each block writes its own rows, equal to the unsplit run over those rows."""
    from numbanet.fast import tier
    rng = np.random.default_rng(0)
    N, T, D, U = 6, 5, 3, 4
    k = 4 if cell == "lstm" else 3
    x, W, R = rng.standard_normal((N, T, D)), rng.standard_normal((D, k * U)), rng.standard_normal((U, k * U))
    b = rng.standard_normal(k * U if cell == "lstm" else (2, k * U))
    gy = rng.standard_normal((N, T, U))
    forward = ((lambda: tier.lstm_forward(x, W, R, b, None, None, "tanh", "sigmoid", True, False, False, None))
               if cell == "lstm" else
               (lambda: tier.gru_forward(x, W, R, b, None, "tanh", "sigmoid", True, True, False, None)))
    _, saved = forward()
    dh_split = np.full((N, T, U), np.nan)
    getattr(tier, f"{cell}_backward")(gy, saved, True, dh_out=dh_split)
    assert routes.last(f"{cell}_backward").endswith("_split")
    assert not np.isnan(dh_split).any()
    # each block's rows against the unsplit run on the same rows alone: the same products of the
    # same shapes, so the same bits (the whole batch at once may differ in the last bit: BLAS's
    # kernels sum a 6-row and a 3-row product in different orders on some CPUs)
    parts = parallel.split(N)
    assert len(parts) == 2
    fast_lstm.RECURRENT_SPLIT_MIN_WORK = 1 << 62
    full = x, gy
    for r0, r1 in parts:
        x, gy = full[0][r0:r1], full[1][r0:r1]
        _, saved = forward()
        dh_rows = np.full((r1 - r0, T, U), np.nan)
        getattr(tier, f"{cell}_backward")(gy, saved, True, dh_out=dh_rows)
        assert not routes.last(f"{cell}_backward").endswith("_split")
        np.testing.assert_array_equal(dh_split[r0:r1], dh_rows)
