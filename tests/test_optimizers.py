"""Optimizer update rules, step by step, against the formulas written out here from the papers
and Keras 3's documentation (not from numbanet's code), and the optimizers' argument checks."""
import numpy as np
import pytest

import numbanet as nb
from numbanet import optimizers as O

from bounds import assert_within, elementwise_bound

pytestmark = pytest.mark.usefixtures("tier")  # every test here runs under both kernel tiers (conftest.py)

STEPS = 5


def grad_sequence(seed=0, shapes=((3,), (2, 2))):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) * 2 for s in shapes] for _ in range(STEPS)]


def initial_weights(shapes=((3,), (2, 2))):
    rng = np.random.default_rng(100)
    return [rng.standard_normal(s) for s in shapes]


def run_numbanet(opt, grads, use_step=False):
    """Apply the fixed gradient sequence; returns the weights after every step."""
    ws = [nb.Tensor(w.copy(), requires_grad=True) for w in initial_weights()]
    trajectory = []
    for gs in grads:
        if use_step:
            for w, g in zip(ws, gs):
                w.grad = g.copy()
            opt.step(ws)
        else:
            opt.apply_gradients(zip([g.copy() for g in gs], ws))
        trajectory.append([w.data.copy() for w in ws])
    return trajectory


def run_reference(update, grads, clip=None):
    """``update(k, w, g, state, t)`` is the formula for one weight; ``clip`` maps the list of gradients."""
    ws = [w.copy() for w in initial_weights()]
    states = [{} for _ in ws]
    trajectory = []
    for t, gs in enumerate(grads, start=1):
        gs = clip(gs) if clip else gs
        for k, (w, g) in enumerate(zip(ws, gs)):
            ws[k] = update(w, g, states[k], t)
        trajectory.append([w.copy() for w in ws])
    return trajectory


OPS_PER_STEP = 20   # roundings in one step of the longest rule here (centered RMSprop with momentum, clipped)


def assert_same(traj_a, traj_b, grads):
    """Both trajectories within the rounding bound of the update rules, step by step.

    The implementation and the formulas here order the same operations differently
    (e.g. ``lr * g / d`` against ``lr * (g / d)``). One step rounds each element at most
    OPS_PER_STEP times, each relative to the weight or to a moment, root or increment;
    with lr <= 1 all of those are at most U = 1 + max|g| in size here (the moments are
    averages of g and g^2, the increments lr-scaled ratios of them). Errors of earlier
    steps carry forward unchanged, so after t steps the bound is OPS_PER_STEP * eps *
    sum over steps of (|w| + U), for each side (``elementwise_bound`` counts both).
    """
    initial = initial_weights()
    magnitude = [np.zeros_like(w) for w in initial]
    previous = initial
    for step, (a, b, gs) in enumerate(zip(traj_a, traj_b, grads)):
        U = 1 + max(np.abs(g).max() for g in gs)
        magnitude = [m + np.abs(w) + U for m, w in zip(magnitude, previous)]
        for k, (wa, wb) in enumerate(zip(a, b)):
            assert_within(wa, wb, elementwise_bound(magnitude[k], OPS_PER_STEP), f"step {step + 1}, weight {k}")
        previous = a


# ------------------------------------------------------------------ formulas
def sgd(lr, momentum=0.0, nesterov=False):
    def update(w, g, s, t):
        if momentum == 0:
            return w - lr * g                      # w <- w - lr g
        v = s.get("v", np.zeros_like(w))
        v = momentum * v - lr * g                  # v <- mu v - lr g
        s["v"] = v
        if nesterov:
            return w + momentum * v - lr * g       # w <- w + mu v - lr g
        return w + v
    return update


def adam(lr, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    def update(w, g, s, t):
        m = b1 * s.get("m", 0) + (1 - b1) * g      # m_t = b1 m + (1 - b1) g
        v = b2 * s.get("v", 0) + (1 - b2) * g * g  # v_t = b2 v + (1 - b2) g^2
        s["m"], s["v"] = m, v
        if amsgrad:
            s["vhat"] = np.maximum(s.get("vhat", 0), v)
            v = s["vhat"]
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return w - alpha * m / (np.sqrt(v) + eps)
    return update


def adagrad(lr, init=0.1, eps=1e-7):
    def update(w, g, s, t):
        s["a"] = s.get("a", np.full_like(w, init)) + g * g
        return w - lr * g / np.sqrt(s["a"] + eps)
    return update


def rmsprop(lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    def update(w, g, s, t):
        s["v"] = rho * s.get("v", 0) + (1 - rho) * g * g
        denom = s["v"] + eps
        if centered:
            s["mg"] = rho * s.get("mg", 0) + (1 - rho) * g
            denom = s["v"] - s["mg"] ** 2 + eps
        inc = lr * g / np.sqrt(denom)
        if momentum:
            s["b"] = momentum * s.get("b", 0) + inc
            return w - s["b"]
        return w - inc
    return update


def adadelta(lr, rho=0.95, eps=1e-7):
    def update(w, g, s, t):
        Eg2 = rho * s.get("Eg2", 0) + (1 - rho) * g * g
        dx = -np.sqrt(s.get("Edx2", 0) + eps) / np.sqrt(Eg2 + eps) * g
        s["Edx2"] = rho * s.get("Edx2", 0) + (1 - rho) * dx * dx
        s["Eg2"] = Eg2
        return w + lr * dx
    return update


def clip_each_norm(c):
    return lambda gs: [g * c / max(np.linalg.norm(g), c) for g in gs]


def clip_global_norm(c):
    def f(gs):
        n = np.sqrt(sum(np.sum(g * g) for g in gs))
        return [g * c / max(n, c) for g in gs]
    return f


def clip_value(c):
    return lambda gs: [np.clip(g, -c, c) for g in gs]


CASES = {
    "sgd": (lambda **k: O.SGD(**k), sgd(0.01)),
    "sgd_lr": (lambda **k: O.SGD(learning_rate=0.1, **k), sgd(0.1)),
    "sgd_momentum": (lambda **k: O.SGD(0.05, momentum=0.9, **k), sgd(0.05, 0.9)),
    "sgd_nesterov": (lambda **k: O.SGD(0.05, momentum=0.8, nesterov=True, **k), sgd(0.05, 0.8, True)),
    "adam": (lambda **k: O.Adam(**k), adam(0.001)),
    "adam_custom": (lambda **k: O.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-4, **k),
                    adam(0.01, 0.8, 0.99, 1e-4)),
    "adam_amsgrad": (lambda **k: O.Adam(0.01, amsgrad=True, **k), adam(0.01, amsgrad=True)),
    "adagrad": (lambda **k: O.Adagrad(**k), adagrad(0.001)),
    "adagrad_lr": (lambda **k: O.Adagrad(0.1, **k), adagrad(0.1)),
    "rmsprop": (lambda **k: O.RMSprop(**k), rmsprop(0.001)),
    "rmsprop_momentum": (lambda **k: O.RMSprop(0.01, momentum=0.9, **k), rmsprop(0.01, momentum=0.9)),
    "rmsprop_centered": (lambda **k: O.RMSprop(0.01, centered=True, **k), rmsprop(0.01, centered=True)),
    "rmsprop_centered_momentum": (lambda **k: O.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True, **k),
                                  rmsprop(0.01, 0.8, 0.5, centered=True)),
    "adadelta_keras": (lambda **k: O.Adadelta(**k), adadelta(0.001)),
    "adadelta_paper": (lambda **k: O.Adadelta(learning_rate=1.0, epsilon=1e-6, **k), adadelta(1.0, eps=1e-6)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_update_rule(name):
    make, update = CASES[name]
    grads = grad_sequence()
    assert_same(run_numbanet(make(), grads), run_reference(update, grads), grads)


@pytest.mark.parametrize("name", ["sgd_momentum", "adam", "rmsprop_momentum", "adadelta_paper", "adagrad"])
@pytest.mark.parametrize("clip", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_update_rule_with_clipping(name, clip):
    make, update = CASES[name]
    c = 0.7
    ref_clip = {"clipnorm": clip_each_norm, "global_clipnorm": clip_global_norm, "clipvalue": clip_value}[clip](c)
    grads = grad_sequence(seed=1)
    got = run_numbanet(make(**{clip: c}), grads)
    assert_same(got, run_reference(update, grads, clip=ref_clip), grads)
    # the clipping did something: the unclipped trajectory differs
    unclipped = run_reference(update, grads)
    assert not np.allclose(got[-1][0], unclipped[-1][0])


def test_clipnorm_leaves_small_gradients_alone():
    grads = [[g * 1e-3 for g in gs] for gs in grad_sequence()]
    assert_same(run_numbanet(O.SGD(0.1, clipnorm=10.0), grads), run_reference(sgd(0.1), grads), grads)


def test_step_equals_apply_gradients():
    grads = grad_sequence(seed=3)
    a = run_numbanet(O.Adam(0.01), grads, use_step=False)
    b = run_numbanet(O.Adam(0.01), grads, use_step=True)
    for step_a, step_b in zip(a, b):           # one update routine behind both entry points: same bits
        for wa, wb in zip(step_a, step_b):
            np.testing.assert_array_equal(wa, wb)


def test_step_skips_weights_without_gradient_and_counts_iterations():
    w1 = nb.Tensor(np.ones(2), requires_grad=True)
    w2 = nb.Tensor(np.ones(2), requires_grad=True)
    w1.grad = np.array([1.0, -1.0])
    opt = O.SGD(0.5)
    opt.step([w1, w2])
    np.testing.assert_array_equal(w1.data, [0.5, 1.5])
    np.testing.assert_array_equal(w2.data, [1.0, 1.0])
    assert opt.iterations == 1


def test_float32_weights_stay_float32():
    w = nb.Tensor(np.ones(3, np.float32), requires_grad=True)
    for opt in (O.SGD(0.1, momentum=0.9), O.Adam(), O.Adagrad(), O.RMSprop(centered=True), O.Adadelta()):
        opt.apply_gradients([(np.ones(3), w)])
        assert w.dtype == np.float32


def test_slots_are_named_as_keras():
    w = nb.Tensor(np.ones(2), requires_grad=True)
    cases = [(O.SGD(momentum=0.9), {"momentum"}), (O.Adam(amsgrad=True), {"m", "v", "v_hat"}),
             (O.Adagrad(), {"accumulator"}), (O.RMSprop(momentum=0.5, centered=True),
                                              {"velocity", "momentum", "average_gradient"}),
             (O.Adadelta(), {"accumulated_grad", "accumulated_delta_var"})]
    for opt, names in cases:
        opt.apply_gradients([(np.ones(2), w)])
        assert set(opt.slots[id(w)]) == names, type(opt).__name__
    opt = O.Adagrad()
    opt.apply_gradients([(np.full(2, 2.0), w)])
    np.testing.assert_allclose(opt.get_slot(w, "accumulator"), 0.1 + 4.0)


def test_learning_rate_schedule_callable():
    w = nb.Tensor(np.zeros(1), requires_grad=True)
    opt = O.SGD(learning_rate=lambda it: 1.0 / (it + 1))
    for _ in range(3):
        opt.apply_gradients([(np.ones(1), w)])
    np.testing.assert_allclose(w.data, [-(1 + 1 / 2 + 1 / 3)])


# ------------------------------------------------------------ argument checks
@pytest.mark.parametrize("kwargs", [dict(clipnorm=1.0, clipvalue=1.0), dict(clipnorm=1.0, global_clipnorm=1.0),
                                    dict(clipvalue=1.0, global_clipnorm=1.0),
                                    dict(clipnorm=1.0, clipvalue=1.0, global_clipnorm=1.0)])
def test_more_than_one_clip_option_is_an_error(kwargs):
    for cls in (O.SGD, O.Adam, O.RMSprop, O.Adagrad, O.Adadelta):
        with pytest.raises(ValueError, match="only one of"):
            cls(**kwargs)


@pytest.mark.parametrize("momentum", [-0.1, 1.5])
def test_momentum_outside_unit_interval_is_an_error(momentum):
    with pytest.raises(ValueError, match="momentum"):
        O.SGD(momentum=momentum)
    with pytest.raises(ValueError, match="momentum"):
        O.RMSprop(momentum=momentum)


def test_bad_values_are_errors():
    with pytest.raises(ValueError, match="learning_rate"):
        O.SGD(learning_rate=0)
    with pytest.raises(ValueError, match="clipnorm"):
        O.Adam(clipnorm=-1.0)
    w = nb.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        O.SGD().apply_gradients([(np.ones(2), w)])
    with pytest.raises(TypeError, match="Tensor"):
        O.SGD().apply_gradients([(np.ones(2), np.ones(2))])


def test_optimizer_names_any_case():
    for name, cls in [("sgd", O.SGD), ("SGD", O.SGD), ("Adam", O.Adam), ("adam", O.Adam), ("RMSprop", O.RMSprop),
                      ("rmsprop", O.RMSprop), ("Adagrad", O.Adagrad), ("adadelta", O.Adadelta)]:
        assert isinstance(O.get(name), cls)
    with pytest.raises(ValueError, match="adam.*sgd"):
        O.get("adamw_typo")


def test_keras_defaults():
    assert O.SGD().learning_rate == 0.01 and O.SGD().momentum == 0.0 and O.SGD().nesterov is False
    d = O.Adadelta()
    assert (d.learning_rate, d.rho, d.epsilon) == (0.001, 0.95, 1e-7)
    a = O.Adam()
    assert (a.learning_rate, a.beta_1, a.beta_2, a.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    r = O.RMSprop()
    assert (r.learning_rate, r.rho, r.momentum, r.epsilon, r.centered) == (0.001, 0.9, 0.0, 1e-7, False)
    g = O.Adagrad()
    assert (g.learning_rate, g.initial_accumulator_value, g.epsilon) == (0.001, 0.1, 1e-7)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_split_across_threads_gives_the_serial_bits(amsgrad):
    """Weights of 2^18+ elements are updated as two flat halves on two threads: same result."""
    import numbanet as nb
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((520, 512)).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) for _ in range(3)]
    results = []
    for threads in (1, 2):
        nb.utils.set_num_threads(threads)
        try:
            opt, w = nb.optimizers.Adam(0.01, amsgrad=amsgrad), nb.Tensor(w0.copy())
            for g in grads:
                opt.apply_gradients([(g, w)])
            results.append(w.data)
        finally:
            nb.utils.set_num_threads(1)
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], w0)
