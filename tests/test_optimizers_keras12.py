"""Nadam, AdamW, Adamax and Keras 3's weight_decay= on every optimizer: step by step against the
update rules written out here in float64 (from the papers and Keras's docstrings, not numbanet's
code) and against Keras 3 in float32, under both kernel tiers; names, configs, argument checks."""
import functools

import numpy as np
import pytest

import numbanet as nb
from numbanet import optimizers as O

from bounds import elementwise_bound

pytestmark = pytest.mark.usefixtures("tier")

STEPS = 6
SHAPES = ((3,), (2, 2))
EPS32 = float(np.finfo(np.float32).eps)
OPS_PER_STEP = 30   # roundings in one step of the longest rule here (Nadam with weight decay, clipped)


def grad_sequence(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal(s) * 2).astype(dtype) for s in SHAPES] for _ in range(STEPS)]


def initial_weights(dtype=np.float64):
    rng = np.random.default_rng(100)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def run_numbanet(opt, grads, dtype=np.float64, names=("w0", "w1")):
    ws = [nb.Tensor(w.copy(), requires_grad=True, name=n) for w, n in zip(initial_weights(dtype), names)]
    trajectory = []
    for gs in grads:
        opt.apply_gradients(zip([g.copy() for g in gs], ws))
        trajectory.append([w.data.copy() for w in ws])
    return trajectory, ws


def run_reference(update, grads, decay=None, lr=None, clip=None):
    """``update(w, g, state, t, shared)`` is one weight's step; ``shared`` holds per-step optimizer state
    (Nadam's product of momentum factors). With ``decay``: w <- w - w * decay * lr first (Keras 3)."""
    ws, states, shared, trajectory = initial_weights(), [{} for _ in SHAPES], {}, []
    for t, gs in enumerate(grads, start=1):
        gs = clip(gs) if clip else gs
        shared["t"] = t
        for k, (w, g) in enumerate(zip(ws, gs)):
            if decay:
                w = w - w * decay * lr
            ws[k] = update(w, g, states[k], t, shared)
        trajectory.append([w.copy() for w in ws])
    return trajectory


def assert_same(traj_a, traj_b, grads, eps=np.finfo(np.float64).eps, ops=OPS_PER_STEP):
    """Within the rounding bound of the update rules, as in tests/test_optimizers.py: each step rounds
    each element at most ``ops`` times relative to the weight or to U = 1 + max|g| (the moments are
    averages of g, g^2 and |g|, the increments lr-scaled ratios of them, lr <= 1); errors of earlier
    steps carry forward, so after t steps the bound is ops * eps * sum over steps of (|w| + U), per side."""
    magnitude = [np.zeros(s) for s in SHAPES]
    previous = initial_weights()
    for step, (a, b, gs) in enumerate(zip(traj_a, traj_b, grads)):
        U = 1 + max(np.abs(g).max() for g in gs)
        magnitude = [m + np.abs(w) + U for m, w in zip(magnitude, previous)]
        for k, (wa, wb) in enumerate(zip(a, b)):
            bound = elementwise_bound(magnitude[k], ops, eps)
            err = np.abs(np.asarray(wa, np.float64) - np.asarray(wb, np.float64))
            assert np.all(err <= bound), f"step {step + 1}, weight {k}: error {err.max():.3g} over {bound.max():.3g}"
        previous = a


# ------------------------------------------------------------------ the rules, written out
def adam(lr, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    def update(w, g, s, t, shared):
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
        v = s["v"]
        if amsgrad:
            s["vhat"] = v = np.maximum(s.get("vhat", 0), v)
        m_hat, v_hat = s["m"] / (1 - b1 ** t), v / (1 - b2 ** t)          # the paper's bias corrections
        return w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return update


def adam_keras(lr, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    """Keras's Adam: epsilon is added to sqrt(v) before the bias correction of v (epsilon-hat)."""
    def update(w, g, s, t, shared):
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
        v = s["v"]
        if amsgrad:
            s["vhat"] = v = np.maximum(s.get("vhat", 0), v)
        return w - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * s["m"] / (np.sqrt(v) + eps)
    return update


def nadam(lr, b1=0.9, b2=0.999, eps=1e-7):
    """Dozat's Nadam with the momentum schedule mu_t = b1 (1 - 0.5 * 0.96^t) (Keras, after Dozat)."""
    def mu(t):
        return b1 * (1 - 0.5 * 0.96 ** t)

    def update(w, g, s, t, shared):
        if shared.get("mu_t") != t:                         # prod_{i<=t} mu_i, once per step
            shared["prod"] = shared.get("prod", 1.0) * mu(t)
            shared["mu_t"] = t
        prod = shared["prod"]
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
        m_bar = mu(t + 1) * s["m"] / (1 - prod * mu(t + 1)) + (1 - mu(t)) * g / (1 - prod)
        return w - lr * m_bar / (np.sqrt(s["v"] / (1 - b2 ** t)) + eps)
    return update


def adamax(lr, b1=0.9, b2=0.999, eps=1e-7):
    def update(w, g, s, t, shared):
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["u"] = np.maximum(b2 * s.get("u", 0), np.abs(g))
        return w - (lr / (1 - b1 ** t)) * s["m"] / (s["u"] + eps)
    return update


def sgd(lr, momentum=0.0):
    def update(w, g, s, t, shared):
        if not momentum:
            return w - lr * g
        s["v"] = momentum * s.get("v", 0) - lr * g
        return w + s["v"]
    return update


def rmsprop(lr, rho=0.9, eps=1e-7):
    def update(w, g, s, t, shared):
        s["v"] = rho * s.get("v", 0) + (1 - rho) * g * g
        return w - lr * g / np.sqrt(s["v"] + eps)
    return update


def adagrad(lr, init=0.1, eps=1e-7):
    def update(w, g, s, t, shared):
        s["a"] = s.get("a", init) + g * g
        return w - lr * g / np.sqrt(s["a"] + eps)
    return update


# name: (numbanet optimizer, rule, weight decay, lr)
CASES = {
    "nadam": (lambda **k: O.Nadam(**k), nadam(0.001), None, 0.001),
    "nadam_custom": (lambda **k: O.Nadam(0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-4, **k),
                     nadam(0.05, 0.8, 0.99, 1e-4), None, 0.05),
    "adamax": (lambda **k: O.Adamax(**k), adamax(0.001), None, 0.001),
    "adamax_custom": (lambda **k: O.Adamax(0.05, beta_1=0.7, beta_2=0.9, epsilon=1e-3, **k),
                      adamax(0.05, 0.7, 0.9, 1e-3), None, 0.05),
    "adamw": (lambda **k: O.AdamW(**k), adam_keras(0.001), 0.004, 0.001),
    "adamw_strong": (lambda **k: O.AdamW(0.1, weight_decay=0.5, **k), adam_keras(0.1), 0.5, 0.1),
    "adamw_amsgrad": (lambda **k: O.AdamW(0.05, weight_decay=0.1, amsgrad=True, **k),
                      adam_keras(0.05, amsgrad=True), 0.1, 0.05),
    "sgd_decay": (lambda **k: O.SGD(0.1, momentum=0.9, weight_decay=0.3, **k), sgd(0.1, 0.9), 0.3, 0.1),
    "adam_decay": (lambda **k: O.Adam(0.05, weight_decay=0.2, **k), adam_keras(0.05), 0.2, 0.05),
    "rmsprop_decay": (lambda **k: O.RMSprop(0.01, weight_decay=0.5, **k), rmsprop(0.01), 0.5, 0.01),
    "adagrad_decay": (lambda **k: O.Adagrad(0.1, weight_decay=0.1, **k), adagrad(0.1), 0.1, 0.1),
    "nadam_decay": (lambda **k: O.Nadam(0.05, weight_decay=0.3, **k), nadam(0.05), 0.3, 0.05),
    "adamax_decay": (lambda **k: O.Adamax(0.05, weight_decay=0.3, **k), adamax(0.05), 0.3, 0.05),
}


def test_keras_adam_form_is_the_papers_with_epsilon_hat():
    """The rule the AdamW cases use is Kingma & Ba's Adam with epsilon-hat (Keras's documented form):
    with epsilon = 0 the two forms are the same function."""
    grads = grad_sequence(9)
    assert_same(run_reference(adam_keras(0.05, eps=0.0), grads), run_reference(adam(0.05, eps=0.0), grads), grads)


@pytest.mark.parametrize("name", list(CASES))
def test_update_rule(name):
    make, rule, decay, lr = CASES[name]
    grads = grad_sequence()
    got, _ = run_numbanet(make(), grads)
    assert_same(got, run_reference(rule, grads, decay, lr), grads)


@pytest.mark.parametrize("name", ["adamw_strong", "sgd_decay", "nadam_decay"])
def test_weight_decay_comes_before_the_step_and_matters(name):
    """Decaying after the step instead (w <- (w - step)(1 - lr wd)) differs by lr wd |step|: far over the bound."""
    make, rule, decay, lr = CASES[name]
    grads = grad_sequence(2)
    got, _ = run_numbanet(make(), grads)

    def after(w, g, s, t, shared):
        return rule(w, g, s, t, shared) * (1 - decay * lr)
    wrong = run_reference(after, grads)
    with pytest.raises(AssertionError, match="over"):
        assert_same(got, wrong, grads)
    undecayed = run_reference(rule, grads)
    with pytest.raises(AssertionError, match="over"):
        assert_same(got, undecayed, grads)


def clip_global_norm(c):
    def f(gs):
        n = np.sqrt(sum(np.sum(g * g) for g in gs))
        return [g * c / max(n, c) for g in gs]
    return f


@pytest.mark.parametrize("name", ["nadam_custom", "adamax_custom", "adamw_strong"])
@pytest.mark.parametrize("clip", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_clipping_comes_first(name, clip):
    make, rule, decay, lr = CASES[name]
    c = 0.7
    ref_clip = {"clipnorm": lambda gs: [g * c / max(np.linalg.norm(g), c) for g in gs],
                "global_clipnorm": clip_global_norm(c),
                "clipvalue": lambda gs: [np.clip(g, -c, c) for g in gs]}[clip]
    grads = grad_sequence(1)
    got, _ = run_numbanet(make(**{clip: c}), grads)
    assert_same(got, run_reference(rule, grads, decay, lr, clip=ref_clip), grads)


def test_nadam_momentum_product_is_per_step_not_per_weight():
    """A weight without a gradient at a step still sees the product advance (it is per optimizer step)."""
    grads = grad_sequence(5)
    opt = O.Nadam(0.05)
    w = [nb.Tensor(a.copy(), requires_grad=True) for a in initial_weights()]
    ref_w, states, shared = initial_weights(), [{}, {}], {}
    rule = nadam(0.05)
    got, want = [], []
    for t, gs in enumerate(grads, start=1):
        shared["t"] = t
        present = [0, 1] if t != 3 else [0]      # weight 1 has no gradient at step 3
        w[0].grad, w[1].grad = gs[0].copy(), (gs[1].copy() if 1 in present else None)
        opt.step(w)
        for k in present:
            ref_w[k] = rule(ref_w[k], gs[k], states[k], t, shared)
        got.append([a.data.copy() for a in w])
        want.append([a.copy() for a in ref_w])
    assert_same(got, want, grads)
    assert opt.iterations == STEPS


def test_exclude_from_weight_decay():
    grads = grad_sequence(3)
    opt = O.AdamW(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["w1"])
    got, _ = run_numbanet(opt, grads)
    decayed = run_reference(adam_keras(0.1), grads, 0.5, 0.1)
    plain = run_reference(adam_keras(0.1), grads)
    assert_same(got, [[d[0], p[1]] for d, p in zip(decayed, plain)], grads)   # w0 decays, w1 does not
    with pytest.raises(AssertionError, match="weight 1"):
        assert_same(got, decayed, grads)
    with pytest.raises(ValueError, match="before the first step"):
        opt.exclude_from_weight_decay(var_names=["w0"])


# ------------------------------------------------------------------ against Keras 3, float32
# name: (Keras class, kwargs) -- the same kwargs go to numbanet's class of the same name
KERAS_CASES = {
    "nadam": ("Nadam", {}), "nadam_custom": ("Nadam", dict(learning_rate=0.05, beta_1=0.8, beta_2=0.99,
                                                            epsilon=1e-4)),
    "adamax": ("Adamax", {}), "adamax_custom": ("Adamax", dict(learning_rate=0.05, beta_1=0.7, beta_2=0.9,
                                                               epsilon=1e-3)),
    "adamw": ("AdamW", {}), "adamw_strong": ("AdamW", dict(learning_rate=0.1, weight_decay=0.5)),
    "adamw_amsgrad": ("AdamW", dict(learning_rate=0.05, weight_decay=0.1, amsgrad=True)),
    "sgd_decay": ("SGD", dict(learning_rate=0.1, momentum=0.9, weight_decay=0.3)),
    "adam_decay": ("Adam", dict(learning_rate=0.05, weight_decay=0.2)),
    "rmsprop_decay": ("RMSprop", dict(learning_rate=0.01, weight_decay=0.5, momentum=0.5, centered=True)),
    "adagrad_decay": ("Adagrad", dict(learning_rate=0.1, weight_decay=0.1)),
    "adadelta_decay": ("Adadelta", dict(learning_rate=1.0, weight_decay=0.1)),
    "nadam_decay": ("Nadam", dict(learning_rate=0.05, weight_decay=0.3)),
    "adamax_decay": ("Adamax", dict(learning_rate=0.05, weight_decay=0.3)),
}
CLIPS = {"noclip": {}, "clipnorm": {"clipnorm": 0.5}, "global_clipnorm": {"global_clipnorm": 0.8}}
KERAS_SLOT = {"m": "momentum", "v": "velocity", "u": "norm", "v_hat": "velocity_hat", "momentum": "momentum",
              "velocity": "velocity", "average_gradient": "average_gradient", "accumulator": "accumulator",
              "accumulated_grad": "accumulated_grad", "accumulated_delta_var": "accumulated_delta_var"}


@functools.lru_cache(maxsize=None)
def keras_run(name, clip, exclude=None):
    """Keras's weights and slots after each step (cached: both tiers compare with the same run)."""
    from conftest import import_tensorflow
    tf = import_tensorflow()
    import keras
    cls, kwargs = KERAS_CASES[name]
    opt = getattr(keras.optimizers, cls)(**kwargs, **CLIPS[clip])
    if exclude:
        opt.exclude_from_weight_decay(var_names=[exclude])
    ws = [tf.Variable(w, name=f"w{i}") for i, w in enumerate(initial_weights(np.float32))]
    out = []
    for gs in grad_sequence(7, np.float32):
        opt.apply_gradients(zip([tf.constant(g) for g in gs], ws))
        slots = {v.path.split("/")[-1]: v.numpy().copy() for v in opt.variables
                 if v.path.split("/")[-1].startswith("w")}
        out.append(([w.numpy().copy() for w in ws], slots))
    return out


# the new optimizers with every clipping; weight decay on the older ones unclipped (their clipping
# is compared with Keras in tests/test_keras_parity_dense.py)
KERAS_PAIRS = [(n, c) for n in KERAS_CASES for c in CLIPS
               if c == "noclip" or KERAS_CASES[n][0] in ("Nadam", "Adamax", "AdamW")]


@pytest.mark.parametrize("name,clip", KERAS_PAIRS, ids=[f"{n}-{c}" for n, c in KERAS_PAIRS])
def test_steps_equal_keras(tf, keras, name, clip):
    cls, kwargs = KERAS_CASES[name]
    theirs = keras_run(name, clip)
    grads = grad_sequence(7, np.float32)
    opt = getattr(O, cls)(**kwargs, **CLIPS[clip])
    ours, ws = run_numbanet(opt, grads, np.float32)
    assert_same(ours, [w for w, _ in theirs], grads, eps=EPS32)
    slots = theirs[-1][1]
    U = 1 + max(np.abs(g).max() for gs in grads for g in gs)
    n = 0
    for i, w in enumerate(ws):
        for slot, value in opt.slots[id(w)].items():
            key = f"w{i}_0_{KERAS_SLOT[slot]}" if f"w{i}_0_{KERAS_SLOT[slot]}" in slots else f"w{i}_{KERAS_SLOT[slot]}"
            assert key in slots, (key, sorted(slots))
            # a slot depends on the gradients alone: averages of g, g^2, |g| or lr-scaled ratios of them,
            # each step rounding it at most 10 times relative to U^2 (U = 1 + max|g|, lr <= 1) or to itself
            bound = elementwise_bound(STEPS * (U ** 2 + np.abs(slots[key])), 10, EPS32)
            err = np.abs(value - slots[key])
            assert np.all(err <= bound), f"slot {key}: error {err.max():.3g} over {bound.max():.3g}"
            n += 1
    assert n == len(slots), sorted(slots)


def test_exclude_from_weight_decay_equals_keras(tf, keras):
    theirs = keras_run("adamw_strong", "noclip", exclude="w1")
    opt = O.AdamW(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["w1"])
    ours, _ = run_numbanet(opt, grad_sequence(7, np.float32), np.float32)
    assert_same(ours, [w for w, _ in theirs], grad_sequence(7), eps=EPS32)
    with_decay = keras_run("adamw_strong", "noclip")
    assert not np.allclose(with_decay[-1][0][1], theirs[-1][0][1], atol=1e-3)   # the exclusion changed w1


# ------------------------------------------------------------------ names, defaults, configs
KERAS_ONLY = {"use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
              "gradient_accumulation_steps"}


@pytest.mark.parametrize("cls,kwargs", [
    ("Nadam", dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-5, clipnorm=0.5, weight_decay=0.1)),
    ("AdamW", dict(learning_rate=0.01, weight_decay=0.02, beta_1=0.8, amsgrad=True, global_clipnorm=2.0)),
    ("Adamax", dict(learning_rate=0.01, beta_1=0.7, beta_2=0.9, epsilon=1e-4, clipvalue=0.3)),
    ("Nadam", {}), ("AdamW", {}), ("Adamax", {}), ("SGD", dict(weight_decay=0.1)),
])
def test_config_equals_keras(keras, cls, kwargs):
    ours, theirs = getattr(O, cls)(**kwargs).get_config(), getattr(keras.optimizers, cls)(**kwargs).get_config()
    assert set(ours) == set(theirs) - KERAS_ONLY
    for k in ours:
        if k == "learning_rate":   # Keras keeps it in a float32 variable
            assert ours[k] == pytest.approx(theirs[k], rel=EPS32, abs=0)
        elif k != "name":                        # Keras numbers a second instance's name: "nadam_1"
            assert ours[k] == theirs[k], k
    clone = getattr(O, cls).from_config(ours)
    assert clone.get_config() == ours and type(clone) is getattr(O, cls)
    grads = grad_sequence(4)
    a, _ = run_numbanet(getattr(O, cls)(**kwargs), grads)
    b, _ = run_numbanet(clone, grads)
    for sa, sb in zip(a, b):
        for wa, wb in zip(sa, sb):
            np.testing.assert_array_equal(wa, wb)     # the same operations in the same order: equal bits


def test_names_and_keras_defaults():
    for name, cls in [("nadam", O.Nadam), ("Nadam", O.Nadam), ("adamw", O.AdamW), ("AdamW", O.AdamW),
                      ("adamax", O.Adamax), ("ADAMAX", O.Adamax)]:
        assert type(O.get(name)) is cls
    w = O.AdamW()
    assert (w.learning_rate, w.weight_decay, w.beta_1, w.beta_2, w.epsilon, w.amsgrad, w.name) == \
        (0.001, 0.004, 0.9, 0.999, 1e-7, False, "adam_w")
    for cls in (O.Nadam, O.Adamax):
        o = cls()
        assert (o.learning_rate, o.weight_decay, o.beta_1, o.beta_2, o.epsilon) == (0.001, None, 0.9, 0.999, 1e-7)
    for cls in (O.SGD, O.Adam, O.RMSprop, O.Adagrad, O.Adadelta):
        assert cls().weight_decay is None and cls(weight_decay=0.01).weight_decay == 0.01
    assert sorted(O.Nadam().slot_names()) == ["m", "v"] and sorted(O.Adamax().slot_names()) == ["m", "u"]


def test_float32_weights_stay_float32():
    for opt in (O.Nadam(), O.AdamW(), O.Adamax(), O.SGD(weight_decay=0.1)):
        w = nb.Tensor(np.ones(3, np.float32), requires_grad=True)
        for _ in range(2):
            opt.apply_gradients([(np.ones(3), w)])
        assert w.dtype == np.float32 and all(s.dtype == np.float32 for s in opt.slots[id(w)].values())


def test_train_a_small_model_with_each():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    for opt in ("nadam", "adamw", "adamax"):
        nb.utils.set_random_seed(0)
        model = nb.Sequential([nb.layers.Dense(1, input_shape=(3,))])
        model.compile(O.get(opt).__class__(learning_rate=0.05), loss="mse")
        h = model.fit(x, y, batch_size=16, epochs=30, verbose=0)
        assert h.history["loss"][-1] < 0.05 * h.history["loss"][0], (opt, h.history["loss"][::10])


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("make,error,text", [
    (lambda: O.AdamW(weight_decay=None), ValueError, "AdamW: weight_decay must be a number >= 0, got None"),
    (lambda: O.AdamW(weight_decay=-0.1), ValueError, "AdamW: weight_decay must be a number >= 0, got -0.1"),
    (lambda: O.SGD(weight_decay="0.1"), TypeError, "SGD: weight_decay must be a number.*without quotes"),
    (lambda: O.AdamW(beta_1=1.0), ValueError, r"AdamW: beta_1 must be a number in \[0, 1\), got 1.0"),
    (lambda: O.Nadam(beta_2=1.0), ValueError, r"Nadam: beta_2 must be a number in \[0, 1\), got 1.0"),
    (lambda: O.Nadam(epsilon=-1.0), ValueError, "Nadam: epsilon must be a number >= 0"),
    (lambda: O.Adamax(beta_1=-0.1), ValueError, r"Adamax: beta_1 must be a number in \[0, 1\)"),
    (lambda: O.Adamax(learning_rate=0), ValueError, "Adamax: learning_rate must be a number > 0, got 0"),
    (lambda: O.Nadam(clipnorm=1.0, clipvalue=1.0), ValueError, "Nadam: only one of clipnorm"),
    (lambda: O.AdamW().exclude_from_weight_decay(var_names=[3]), TypeError, "var_names must be strings"),
])
def test_bad_arguments_are_clear_errors(make, error, text):
    with pytest.raises(error, match=text):
        make()
