"""Losses: values against NumPy references written from Keras's definitions, gradients against
finite differences (float64), with sample_weight and mask, from_logits and clipping."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numbanet as nb
from numbanet import losses

from bounds import LIBM_ULP, assert_within, elementwise_bound, sum_bound
from grad_helpers import GRAD_SETTINGS, MAX_REL, assert_grad, away_from

pytestmark = pytest.mark.usefixtures("tier")  # every test here runs under both kernel tiers (conftest.py)

EPS_CLIP = 1e-7


@pytest.fixture(scope="module", autouse=True)
def _report_max_rel():
    yield
    print(f"\n[gradient checks so far] max rel error {MAX_REL['value']:.2e} ({MAX_REL['where']}), "
          f"max abs error {MAX_REL['abs']:.2e}")


# ------------------------------------------------- references (Keras's formulas)
def ref_values(kind, t, p, from_logits=False):
    """Per-sample loss values, shape p.shape[:-1] (sparse: t.shape), from Keras's definitions."""
    if kind == "mse":
        return np.mean((p - t) ** 2, axis=-1)
    if kind == "mae":
        return np.mean(np.abs(p - t), axis=-1)
    if kind == "bce":
        if from_logits:
            s = 1 / (1 + np.exp(-p))
            return np.mean(-(t * np.log(s) + (1 - t) * np.log(1 - s)), axis=-1)
        q = np.clip(p, EPS_CLIP, 1 - EPS_CLIP)
        return np.mean(-(t * np.log(q) + (1 - t) * np.log(1 - q)), axis=-1)
    if kind == "cce":
        if from_logits:
            q = np.exp(p) / np.exp(p).sum(axis=-1, keepdims=True)
        else:
            q = np.clip(p / p.sum(axis=-1, keepdims=True), EPS_CLIP, 1 - EPS_CLIP)
        return -np.sum(t * np.log(q), axis=-1)
    if kind == "sparse":
        onehot = np.eye(p.shape[-1])[t]
        if from_logits:
            q = np.exp(p) / np.exp(p).sum(axis=-1, keepdims=True)
        else:   # Keras's TensorFlow backend: clip, then the log-probabilities are the logits
            q = np.clip(p, EPS_CLIP, 1 - EPS_CLIP)
            q = q / q.sum(axis=-1, keepdims=True)
        return -np.sum(onehot * np.log(q), axis=-1)
    raise KeyError(kind)


def ref_reduce(values, sample_weight=None, mask=None):
    w = np.ones_like(values)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=float)
        w = w * sw.reshape(sw.shape + (1,) * (values.ndim - sw.ndim))
    if mask is not None:
        return np.sum(w * mask * values) / np.sum(mask)
    return np.sum(w * values) / values.size


def make_loss(kind, from_logits=False):
    return {"mse": lambda: losses.MeanSquaredError(), "mae": lambda: losses.MeanAbsoluteError(),
            "bce": lambda: losses.BinaryCrossentropy(from_logits=from_logits),
            "cce": lambda: losses.CategoricalCrossentropy(from_logits=from_logits),
            "sparse": lambda: losses.SparseCategoricalCrossentropy(from_logits=from_logits)}[kind]()


def draw_case(data, kind, from_logits):
    """(y_true, y_pred, sample_weight or None, mask or None) for a loss kind, inside its smooth region."""
    seq = data.draw(st.booleans(), label="sequence")
    N = data.draw(st.integers(1, 4))
    T = data.draw(st.integers(1, 3))
    D = data.draw(st.integers(1 if kind != "sparse" else 2, 4))
    lead = (N, T) if seq else (N,)
    shape = lead + (D,)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    if kind in ("mse", "mae"):
        t = rng.uniform(-2, 2, shape)
        d = away_from(rng.uniform(-2, 2, shape), (0.0,), 0.05)   # mae: no p == t kink
        p = t + d
    elif kind == "bce":
        t = rng.uniform(0, 1, shape) if data.draw(st.booleans()) else rng.integers(0, 2, shape).astype(float)
        p = rng.uniform(-4, 4, shape) if from_logits else rng.uniform(0.05, 0.95, shape)
    elif kind == "cce":
        t = np.eye(D)[rng.integers(0, D, lead)] if data.draw(st.booleans()) else rng.dirichlet(np.ones(D), lead)
        p = rng.uniform(-3, 3, shape) if from_logits else rng.uniform(0.1, 1.0, shape)  # rows need not sum to 1
    else:
        t = rng.integers(0, D, lead)
        if not seq and data.draw(st.booleans()):
            t = t[:, None]                                         # labels (N, 1)
        p = rng.uniform(-3, 3, shape) if from_logits else rng.uniform(0.1, 1.0, shape)
    sw = rng.uniform(0.1, 2.0, (N,)) if data.draw(st.booleans()) else None
    mask = None
    if seq and data.draw(st.booleans()):
        mask = rng.integers(0, 2, lead).astype(bool)
        mask[0, 0] = True
    return t, p, sw, mask


CASES = [("mse", False), ("mae", False), ("bce", False), ("bce", True), ("cce", False), ("cce", True),
         ("sparse", False), ("sparse", True)]


@GRAD_SETTINGS
@given(st.data(), st.sampled_from(CASES))
def test_loss_value_matches_reference(data, case):
    kind, from_logits = case
    t, p, sw, mask = draw_case(data, kind, from_logits)
    loss = make_loss(kind, from_logits)
    out = loss(t, nb.Tensor(p), sample_weight=sw, mask=mask)
    assert out.shape == () and out.dtype == np.float64
    t_ref = t[..., 0] if kind == "sparse" and t.ndim == p.ndim else t
    expected = ref_reduce(ref_values(kind, t_ref, p, from_logits), sw, mask)
    assert_within(out.data, expected, _value_bound(kind, t_ref, p, from_logits, sw, mask))


def _value_bound(kind, t, p, from_logits, sw, mask):
    """Rounding bound for the implementation against ref_values + ref_reduce.

    A per-sample value takes at most two exp/log calls and eight arithmetic operations
    per class (D classes), on intermediates no larger than S = 1 + max|p| + max|t| +
    log(D), amplified by at most 1/(1 - s) where a probability s is subtracted from 1
    (p in [0.05, 0.95], or a sigmoid of |p| <= 4). The weighted mean then adds each value
    with weight <= 2 (sample weights up to 2): its own sum bound, and the per-value bound twice.
    """
    D = p.shape[-1]
    S = 1 + np.abs(p).max() + np.abs(np.asarray(t, dtype=float)).max() + np.log(D)
    A = 1.0
    if kind == "bce":
        q = 1 / (1 + np.exp(-np.abs(p))) if from_logits else np.maximum(p, 1 - p)
        A = 1 / (1 - q).min()
    per_value = elementwise_bound(S * A * D, 2 * LIBM_ULP + 8)
    values = ref_values(kind, t, p, from_logits)
    w = np.ones_like(values)
    if sw is not None:
        w = w * sw.reshape(sw.shape + (1,) * (values.ndim - sw.ndim))
    if mask is not None:
        w = w * mask
    count = np.sum(mask) if mask is not None else values.size
    mean = np.sum(w * values) / count
    return 2 * per_value + sum_bound(w * values) / count + elementwise_bound(abs(mean), 2)


@GRAD_SETTINGS
@given(st.data(), st.sampled_from(CASES))
def test_loss_grad(data, case):
    kind, from_logits = case
    t, p, sw, mask = draw_case(data, kind, from_logits)
    loss = make_loss(kind, from_logits)
    assert_grad(lambda y: loss(t, y, sample_weight=sw, mask=mask), p,
                label=f"{kind} logits={from_logits} sw={sw is not None} mask={mask is not None}")


def test_loss_computed_in_prediction_dtype():
    p = nb.Tensor(np.full((2, 3), 0.5, np.float32), requires_grad=True)
    for loss in (losses.MeanSquaredError(), losses.BinaryCrossentropy(), losses.CategoricalCrossentropy()):
        out = loss(np.ones((2, 3)), p)
        assert out.dtype == np.float32 and out.shape == ()
        out.backward()
        assert p.grad.dtype == np.float32
        p.zero_grad()


def test_binary_crossentropy_clips_probabilities_and_has_zero_gradient_there():
    """p outside [1e-7, 1 - 1e-7] is clipped: the loss is flat there (gradient 0)."""
    t = np.array([[1.0, 0.0, 1.0, 0.0]])
    p = np.array([[-0.3, 1.3, 1.2, 0.4]])
    loss = losses.BinaryCrossentropy()
    q = np.clip(p, EPS_CLIP, 1 - EPS_CLIP)
    terms = -(t * np.log(q) + (1 - t) * np.log(1 - q))
    # the clip bounds are one double on both sides and 1 - q is exact for q >= 1/2 (Sterbenz):
    # each term is one log call and <= 4 roundings, then a mean of 4
    bound = elementwise_bound(np.abs(terms).sum() / 4, LIBM_ULP + 4) + sum_bound(terms) / 4
    assert_within(loss(t, nb.Tensor(p)).data, np.mean(terms), bound)
    by_hand = (-2 * np.log(EPS_CLIP) - np.log1p(-EPS_CLIP) - np.log(0.6)) / 4   # two clipped to 1e-7, one to 1-1e-7
    assert loss(t, nb.Tensor(p)).data == pytest.approx(by_hand, rel=1e-9)
    report = assert_grad(lambda y: loss(t, y), p, label="bce clipped")
    y = nb.Tensor(p, requires_grad=True)
    loss(t, y).backward()
    np.testing.assert_array_equal(y.grad[0, :3], 0.0)
    assert y.grad[0, 3] != 0 and report.passed


def test_categorical_crossentropy_clipping_gives_zero_gradient():
    t = np.array([[1.0, 0.0, 0.0]])
    p = np.array([[1e-10, 1.0, 1.0]])   # q_0 = 5e-11 is clipped to 1e-7: the loss is flat
    loss = losses.CategoricalCrossentropy()
    # -log of the clip bound, after a row normalisation and a 3-term sum: a log call and <= 6 roundings
    assert_within(loss(t, nb.Tensor(p)).data, -np.log(EPS_CLIP), elementwise_bound(-np.log(EPS_CLIP), LIBM_ULP + 6))
    numeric = nb.numerical_grad(lambda y: loss(t, y), p, eps=1e-11)[0]
    y = nb.Tensor(p, requires_grad=True)
    loss(t, y).backward()
    np.testing.assert_array_equal(numeric, 0.0)
    np.testing.assert_array_equal(y.grad, 0.0)


def test_categorical_crossentropy_normalises_rows():
    t = np.array([[0.0, 1.0]])
    p = np.array([[1.0, 3.0]])    # q = (0.25, 0.75)
    assert losses.CategoricalCrossentropy()(t, nb.Tensor(p)).data == pytest.approx(-np.log(0.75), rel=1e-12)


def test_logits_losses_are_stable_for_huge_logits():
    z = np.array([[1000.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise"):
        bce = losses.BinaryCrossentropy(from_logits=True)(np.array([[0.0, 1.0]]), nb.Tensor(z))
        cce = losses.CategoricalCrossentropy(from_logits=True)(np.array([[0.0, 1.0]]), nb.Tensor(z))
        scce = losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([1]), nb.Tensor(z))
    assert bce.data == pytest.approx(1000.0, rel=1e-12)
    assert cce.data == pytest.approx(2000.0, rel=1e-12) and scce.data == pytest.approx(2000.0, rel=1e-12)


def test_sparse_labels_shapes_are_equivalent():
    p = np.random.default_rng(0).uniform(0.1, 1, (4, 3))
    labels = np.array([0, 2, 1, 2])
    loss = losses.SparseCategoricalCrossentropy()
    a = loss(labels, nb.Tensor(p)).data
    b = loss(labels[:, None], nb.Tensor(p)).data
    c = loss(labels.astype(np.float32), nb.Tensor(p)).data
    d = losses.CategoricalCrossentropy()(np.eye(3)[labels], nb.Tensor(p)).data
    assert a == b == c
    assert a == pytest.approx(d, rel=1e-12)   # no clipping in play: sparse == categorical


def test_mask_excludes_positions_and_averages_over_valid_ones():
    p = np.zeros((1, 3, 1))
    t = np.array([[[1.0], [2.0], [100.0]]])
    mask = np.array([[True, True, False]])
    out = losses.MeanSquaredError()(t, nb.Tensor(p), mask=mask)
    assert out.data == pytest.approx((1 + 4) / 2)


def test_sample_weight_scales_each_sample():
    p = np.zeros((2, 1))
    t = np.array([[1.0], [2.0]])
    out = losses.MeanSquaredError()(t, nb.Tensor(p), sample_weight=np.array([3.0, 0.5]))
    assert out.data == pytest.approx((3 * 1 + 0.5 * 4) / 2)


def test_loss_names_and_objects():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("mean_squared_error"), losses.MeanSquaredError)
    assert isinstance(losses.get("mae"), losses.MeanAbsoluteError)
    assert isinstance(losses.get("binary_crossentropy"), losses.BinaryCrossentropy)
    assert isinstance(losses.get("categorical_crossentropy"), losses.CategoricalCrossentropy)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), losses.SparseCategoricalCrossentropy)
    obj = losses.BinaryCrossentropy(from_logits=True)
    assert losses.get(obj) is obj
    assert obj.get_config()["from_logits"] is True


def test_one_dimensional_predictions():
    p, t = np.array([0.5, 1.5, -1.0]), np.array([1.0, 1.0, 1.0])
    assert losses.MeanSquaredError()(t, nb.Tensor(p)).data == pytest.approx(np.mean((p - t) ** 2))
    assert losses.MeanSquaredError()(t[:, None], nb.Tensor(p)).data == pytest.approx(np.mean((p - t) ** 2))
