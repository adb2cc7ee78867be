"""Learning-rate schedules: values against the formulas written out here (float64) and against
Keras 3's schedules (float32), configs as Keras's, and optimizers driven by a schedule step by
step and through fit, against Keras."""
import math

import numpy as np
import pytest

import numbanet as nb
from numbanet import optimizers as O
from numbanet.optimizers.schedules import CosineDecay, ExponentialDecay, PiecewiseConstantDecay

import linear_fit
from bounds import LIBM_ULP

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
TINY32 = float(np.finfo(np.float32).tiny)
STEPS = list(range(0, 41)) + [57, 99, 100, 101, 250, 1000, 12345]


# ------------------------------------------------------------------ formulas (the papers / Keras docs)
def exponential(lr0, T, rate, staircase=False):
    return lambda t: lr0 * rate ** (math.floor(t / T) if staircase else t / T)


def piecewise(boundaries, values):
    def f(t):
        i = sum(t > b for b in boundaries)          # intervals (b_i-1, b_i] are closed on the right
        return values[i]
    return f


def cosine(lr0, T, alpha=0.0, target=None, W=0):
    def decay(s, peak):
        return peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(s, T) / T)) + alpha)

    def f(t):
        if target is None:
            return decay(t, lr0)
        if t < W:
            return lr0 + (target - lr0) * t / W
        return decay(min(t - W, T), target)
    return f


# each case: (numbanet schedule, Keras constructor args, formula, float32 relative bound on Keras's value at t)
def exp_bound(rate, T):
    # p = t / T (1 rounding), rate^p (LIBM_ULP, and p's error times |ln rate| p), times lr0 (1 rounding)
    return lambda t: (LIBM_ULP + 3 + abs(math.log(rate)) * t / T) * EPS32


def cos_bound(alpha, lr0, target):
    # the argument pi * s / T carries 3 roundings (pi itself included), the cosine LIBM_ULP; each moves
    # 0.5 (1 + cos) by at most pi * 3 eps or 4 eps absolutely; 5 more roundings in the affine map
    peak = target if target is not None else lr0
    return lambda t: (3 * math.pi + LIBM_ULP + 8) * EPS32 * peak


CASES = {
    "exponential": (lambda: ExponentialDecay(0.1, 7, 0.5), dict(initial_learning_rate=0.1, decay_steps=7,
                                                                  decay_rate=0.5),
                    exponential(0.1, 7, 0.5), lambda t: exp_bound(0.5, 7)(t) * exponential(0.1, 7, 0.5)(t)),
    "exponential_staircase": (lambda: ExponentialDecay(0.05, 4, 0.8, staircase=True),
                              dict(initial_learning_rate=0.05, decay_steps=4, decay_rate=0.8, staircase=True),
                              exponential(0.05, 4, 0.8, True),
                              lambda t: exp_bound(0.8, 4)(4 * (t // 4)) * exponential(0.05, 4, 0.8, True)(t)),
    "exponential_growth": (lambda: ExponentialDecay(0.01, 50, 1.5), dict(initial_learning_rate=0.01,
                                                                        decay_steps=50, decay_rate=1.5),
                           exponential(0.01, 50, 1.5), lambda t: exp_bound(1.5, 50)(t) * exponential(0.01, 50, 1.5)(t)),
    "piecewise": (lambda: PiecewiseConstantDecay([3, 10, 30], [0.1, 0.05, 0.01, 0.001]),
                  dict(boundaries=[3, 10, 30], values=[0.1, 0.05, 0.01, 0.001]),
                  piecewise([3, 10, 30], [0.1, 0.05, 0.01, 0.001]),
                  lambda t: EPS32 * piecewise([3, 10, 30], [0.1, 0.05, 0.01, 0.001])(t)),
    "cosine": (lambda: CosineDecay(0.1, 30), dict(initial_learning_rate=0.1, decay_steps=30),
               cosine(0.1, 30), cos_bound(0.0, 0.1, None)),
    "cosine_alpha": (lambda: CosineDecay(0.2, 25, alpha=0.1), dict(initial_learning_rate=0.2, decay_steps=25,
                                                                   alpha=0.1),
                     cosine(0.2, 25, 0.1), cos_bound(0.1, 0.2, None)),
    "cosine_warmup": (lambda: CosineDecay(0.0, 20, alpha=0.05, warmup_target=0.3, warmup_steps=8),
                      dict(initial_learning_rate=0.0, decay_steps=20, alpha=0.05, warmup_target=0.3,
                           warmup_steps=8),
                      cosine(0.0, 20, 0.05, 0.3, 8), cos_bound(0.05, 0.0, 0.3)),
    "cosine_warmup_from_nonzero": (lambda: CosineDecay(0.01, 12, warmup_target=0.1, warmup_steps=5),
                                   dict(initial_learning_rate=0.01, decay_steps=12, warmup_target=0.1,
                                        warmup_steps=5),
                                   cosine(0.01, 12, 0.0, 0.1, 5), cos_bound(0.0, 0.01, 0.1)),
}


def f64_bound(name, t):
    """The same rounding count as the float32 bound of CASES, in float64 and for both sides."""
    return 2 * CASES[name][3](t) * (EPS64 / EPS32)


@pytest.mark.parametrize("name", list(CASES))
def test_schedule_equals_the_formula(name):
    make, _, formula, _ = CASES[name]
    schedule = make()
    for t in STEPS:
        want, got = formula(t), schedule(t)
        assert isinstance(got, float)
        assert abs(got - want) <= f64_bound(name, t), (name, t, got, want)


@pytest.mark.parametrize("name", list(CASES))
def test_schedule_equals_keras(keras, name):
    make, kwargs, _, rel_bound = CASES[name]
    ours, theirs = make(), getattr(keras.optimizers.schedules, type(make()).__name__)(**kwargs)
    for t in STEPS:
        want = float(np.asarray(theirs(t)))
        # float32 keeps no relative precision below its smallest normal number (TINY32): subnormals, 0
        assert abs(ours(t) - want) <= rel_bound(t) + EPS32 * abs(want) + TINY32, (name, t, ours(t), want)
    assert ours.get_config() == theirs.get_config()
    assert nb.schedules.serialize(ours) == keras.optimizers.schedules.serialize(theirs)


def test_steps_at_the_boundaries():
    s = PiecewiseConstantDecay([2, 5], [1.0, 0.5, 0.25])
    assert [s(t) for t in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    e = ExponentialDecay(1.0, 3, 0.5, staircase=True)
    assert [e(t) for t in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    c = CosineDecay(1.0, 4, alpha=0.25)
    assert c(0) == 1.0 and c(4) == c(400) == 0.25
    w = CosineDecay(0.0, 4, warmup_target=1.0, warmup_steps=4)
    assert [w(t) for t in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("name", list(CASES))
def test_config_round_trip_and_keras_form(name):
    make = CASES[name][0]
    s = make()
    clone = type(s).from_config(s.get_config())
    assert clone.get_config() == s.get_config()
    again = nb.schedules.deserialize(nb.schedules.serialize(s))
    assert type(again) is type(s) and [again(t) for t in STEPS] == [s(t) for t in STEPS]


def test_optimizer_config_carries_the_schedule_as_keras_does(keras):
    ours = O.SGD(ExponentialDecay(0.1, 7, 0.5))
    theirs = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 7, 0.5))
    assert ours.get_config()["learning_rate"] == theirs.get_config()["learning_rate"]
    clone = O.SGD.from_config(ours.get_config())
    assert isinstance(clone._learning_rate, ExponentialDecay) and clone.learning_rate == 0.1
    from_keras = O.SGD.from_config({k: v for k, v in theirs.get_config().items() if k in ours.get_config()})
    assert isinstance(from_keras._learning_rate, ExponentialDecay)


# ------------------------------------------------------------------ optimizers driven by a schedule
SCHEDULED = {
    "sgd_exponential": (lambda s: O.SGD(s), lambda k, s: k.optimizers.SGD(s), "exponential"),
    "sgd_momentum_piecewise": (lambda s: O.SGD(s, momentum=0.9), lambda k, s: k.optimizers.SGD(s, momentum=0.9),
                               "piecewise"),
    "adam_cosine_warmup": (lambda s: O.Adam(s), lambda k, s: k.optimizers.Adam(s), "cosine_warmup"),
    "adamw_cosine": (lambda s: O.AdamW(s, weight_decay=0.5), lambda k, s: k.optimizers.AdamW(s, weight_decay=0.5),
                     "cosine"),
}


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("name", list(SCHEDULED))
def test_optimizer_with_schedule_steps_as_keras(tf, keras, name):
    """Update t + 1 uses schedule(t): the rates and the weights follow Keras's over 12 steps."""
    ours_make, theirs_make, case = SCHEDULED[name]
    make, kwargs, formula, _ = CASES[case]
    schedule_cls = getattr(keras.optimizers.schedules, type(make()).__name__)
    ours, theirs = ours_make(make()), theirs_make(keras, schedule_cls(**kwargs))
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal((3, 2)).astype(np.float32)
    w_ours, w_theirs = nb.Tensor(w0.copy()), tf.Variable(w0.copy())
    magnitude = np.zeros(w0.shape)
    for t in range(12):
        assert ours.iterations == t and abs(ours.learning_rate - formula(t)) <= f64_bound(case, t)
        g = (rng.standard_normal(w0.shape) * 2).astype(np.float32)
        ours.apply_gradients([(g, w_ours)])
        theirs.apply_gradients([(tf.constant(g), w_theirs)])
        # as tests/test_optimizers.py: each step rounds each element at most 25 times relative to the
        # weight or to U = 1 + max|g| (lr <= 1); errors carry forward; both sides round (the factor 2)
        magnitude += np.abs(w_theirs.numpy()) + 1 + np.abs(g).max()
        bound = 2 * 25 * EPS32 * magnitude
        err = np.abs(w_ours.data - w_theirs.numpy())
        assert np.all(err <= bound), f"{name} step {t + 1}: error {err.max():.3g} over {bound.max():.3g}"
    assert not np.allclose(w_ours.data, w0, atol=1e-3)


def test_a_number_cannot_replace_a_schedule_but_a_schedule_can():
    opt = O.SGD(ExponentialDecay(0.1, 7, 0.5))
    with pytest.raises(TypeError, match="SGD: this optimizer was built with the schedule ExponentialDecay"):
        opt.learning_rate = 0.01
    opt.learning_rate = PiecewiseConstantDecay([1], [0.3, 0.2])
    assert opt.learning_rate == 0.3
    plain = O.Adam(0.01)
    plain.learning_rate = 0.02
    assert plain.learning_rate == 0.02
    with pytest.raises(ValueError, match="Adam: learning_rate must be a number > 0, got -0.1"):
        plain.learning_rate = -0.1


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("case", ["exponential", "piecewise", "cosine_warmup"])
def test_fit_with_a_schedule_equals_keras(tf, keras, case):
    """SGD with a schedule through fit (3 epochs of 3 batches, no shuffle): numbanet's and Keras's
    weights and losses within the float32 bound of the same run written out in float64."""
    make, kwargs, formula, rel_bound = CASES[case]
    x, y, W, b = linear_fit.data(seed=1)
    ours, theirs = linear_fit.models(keras, nb, W, b, O.SGD(make()), keras.optimizers.SGD(
        getattr(keras.optimizers.schedules, type(make()).__name__)(**kwargs)))
    peak = max(formula(t) for t in range(9))
    # the rate of a float32 run: Keras's schedule in float32 (rel_bound), then rounded to float32
    ref = linear_fit.sgd_fit(x, y, W, b, batch_size=8, epochs=3, lr_at=lambda e, t: formula(t),
                             lr_err=lambda e, t: rel_bound(t) + EPS32 * formula(t))
    h_ours = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    h_theirs = theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert ours.optimizer.iterations == 9 and peak > 0
    linear_fit.assert_weights_within(ours, ref, "numbanet")
    linear_fit.assert_weights_within(theirs, ref, "keras")
    assert list(h_ours.history) == list(h_theirs.history) == ["loss"]   # a schedule alone logs no rate
    for got_o, got_t, want, bound in zip(h_ours.history["loss"], h_theirs.history["loss"], ref["loss"],
                                         ref["loss_bound"]):
        assert abs(got_o - want) <= bound and abs(got_t - want) <= bound, (got_o, got_t, want, bound)
    # the rate changed during the run: the first step's rate alone would give other weights
    flat = linear_fit.sgd_fit(x, y, W, b, 8, 3, lambda e, t: formula(0), lambda e, t: 0.0)
    assert np.abs(flat["W"] - ref["W"]).max() > 100 * ref["eW"].max()


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("make,error,text", [
    (lambda: ExponentialDecay(0.1, 10, -0.5), ValueError, "ExponentialDecay: decay_rate must be a number > 0, got -0.5"),
    (lambda: ExponentialDecay(0.1, 0, 0.5), ValueError, "ExponentialDecay: decay_steps must be a number > 0, got 0"),
    (lambda: ExponentialDecay(-0.1, 10, 0.5), ValueError, "initial_learning_rate must be a number > 0"),
    (lambda: ExponentialDecay(0.1, 10, 0.5, staircase="yes"), TypeError, "staircase must be True or False"),
    (lambda: ExponentialDecay("0.1", 10, 0.5), TypeError, "write initial_learning_rate=0.1, without quotes"),
    (lambda: PiecewiseConstantDecay([1, 2], [0.1, 0.2]), ValueError,
     r"values must have one element more than boundaries.*got 2 boundaries \[1, 2\] and 2 values"),
    (lambda: PiecewiseConstantDecay([5, 2], [0.1, 0.2, 0.3]), ValueError, "boundaries must be strictly increasing"),
    (lambda: PiecewiseConstantDecay([], [0.1]), ValueError, "needs at least one boundary"),
    (lambda: PiecewiseConstantDecay([1], [0.1, -0.2]), ValueError, r"values\[1\] must be a number > 0"),
    (lambda: PiecewiseConstantDecay(3, [0.1, 0.2]), TypeError, "boundaries must be a list of numbers"),
    (lambda: CosineDecay(0.1, -5), ValueError, "CosineDecay: decay_steps must be a number > 0"),
    (lambda: CosineDecay(0.1, 5, alpha=1.5), ValueError, r"alpha must be a number in \[0, 1\]"),
    (lambda: CosineDecay(0.0, 5), ValueError, "initial_learning_rate must be a number > 0"),
    (lambda: CosineDecay(0.0, 5, warmup_target=-1.0, warmup_steps=2), ValueError, "warmup_target must be"),
    (lambda: ExponentialDecay(0.1, 10, 0.5)(-1), ValueError, "step must be an integer >= 0"),
    (lambda: ExponentialDecay(0.1, 10, 0.5)(1.5), TypeError, "step must be an integer"),
    (lambda: nb.schedules.deserialize({"class_name": "Nope", "config": {}}), ValueError,
     "unknown learning rate schedule 'Nope'; known: CosineDecay, ExponentialDecay, PiecewiseConstantDecay"),
])
def test_bad_arguments_are_clear_errors(make, error, text):
    with pytest.raises(error, match=text):
        make()


def test_schedules_are_reached_by_keras_paths():
    import numbanet.optimizers.schedules as by_path
    assert nb.optimizers.schedules is nb.schedules is by_path
    assert isinstance(nb.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5), nb.schedules.LearningRateSchedule)
