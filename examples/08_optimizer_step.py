"""Lesson 8: one Adam step by hand, against nb.optimizers.Adam and against a training step.

Run:  python examples/08_optimizer_step.py     (read alongside numbanet/optimizers.py)

Adam keeps two arrays per weight, m (a running mean of the gradient) and v (of
its square), and divides one by the root of the other, so every weight moves by
about the learning rate whatever the scale of its gradient. In Keras's form,
the one numbanet follows, step t (counted from 1) with gradient g is

    m     <- beta_1 m + (1 - beta_1) g
    v     <- beta_2 v + (1 - beta_2) g^2
    alpha =  lr sqrt(1 - beta_2^t) / (1 - beta_1^t)          the bias corrections, folded
    w     <- w - alpha m / (sqrt(v) + epsilon)

The paper (Kingma and Ba, 2015) writes the corrections on m and v instead,
w <- w - lr m_hat / (sqrt(v_hat) + epsilon), m_hat = m / (1 - beta_1^t),
v_hat = v / (1 - beta_2^t); that is the same step with epsilon scaled by
sqrt(1 - beta_2^t), so the two differ by a hair while v is small.

A training step is: zero the gradients, forward, loss, backward(), then this
update for every weight (``models/training.py``: ``train_step``).
"""
import numpy as np

import numbanet as nb

EPS = np.finfo(np.float64).eps


def adam_by_hand(w, grads, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras's Adam over the gradients ``grads`` (a list, one per step) from w: (w, m, v, step sizes)."""
    w, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
    steps = []
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        step = alpha * m / (np.sqrt(v) + epsilon)
        w = w - step
        steps.append(step)
    return w, m, v, steps


def adam_bound(w, steps):
    """Bound on |w_a - w_b| for two computations of the same Adam steps from the same w.

    Each step's size is computed with about 20 roundings (m, v, alpha with its powers,
    the root and the division), and m and v carry the relative error of every earlier
    step: step t is within 20 t eps of its exact value. Subtracting it from w rounds
    once more, relative to |w|. Both computations err: a factor 2.
    """
    bound = np.zeros_like(w)
    for t, step in enumerate(steps, start=1):
        bound += 20 * t * EPS * np.abs(step)
    return 2 * (bound + len(steps) * EPS * (np.abs(w) + sum(np.abs(s) for s in steps)))


rng = np.random.default_rng(8)
w0 = rng.normal(size=(3, 4))
grads = [rng.normal(size=(3, 4)) * scale for scale in (1.0, 0.5, 2.0, 1e-3, 1.0)]
lr = 0.01
w_hand, m_hand, v_hand, steps = adam_by_hand(w0, grads, lr)
bound = adam_bound(w0, steps)
print(f"5 Adam steps by hand on w {w0.shape}, lr {lr}: |w - w0| per element "
      f"{np.abs(w_hand - w0).min():.4f} .. {np.abs(w_hand - w0).max():.4f} (about lr per step, whatever |g|)")

# ---------------------------------------------------------------- nb.optimizers.Adam, both tiers
for tier in ("reference", "fast"):
    with nb.kernels(tier):
        w = nb.Tensor(w0.copy(), requires_grad=True, name="w")
        opt = nb.optimizers.Adam(learning_rate=lr)
        for g in grads:
            opt.apply_gradients([(g, w)])
        err = np.abs(w.data - w_hand)
        assert np.all(err <= bound), f"{tier}: |error| {err.max():.3e}"
        assert opt.iterations == 5 and opt.slot_names() == ["m", "v"]
        # m and v are convex combinations of the gradients (of their squares): each of the 5 updates
        # rounds about 4 times relative to the largest |g| (g^2) seen, on each side
        g_max = max(np.abs(g).max() for g in grads)
        assert np.all(np.abs(opt.get_slot(w, "m") - m_hand) <= 2 * 5 * 4 * EPS * g_max)
        assert np.all(np.abs(opt.get_slot(w, "v") - v_hand) <= 2 * 5 * 4 * EPS * g_max ** 2)
        print(f"  {tier} tier: Adam.apply_gradients x5 gives the same w (max |error| {err.max():.1e}, "
              f"{np.max(err / bound):.2g} x its bound) and the same slots m, v")

# ---------------------------------------------------------------- the paper's form
w_paper, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
gap_bound = np.zeros_like(w0)
for t, g in enumerate(grads, start=1):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    m_hat, v_hat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
    w_paper = w_paper - lr * m_hat / (np.sqrt(v_hat) + 1e-7)
    # the two steps differ only in epsilon: 1e-7 against 1e-7 / sqrt(1 - beta_2^t), so by at most
    # lr |m_hat| (1e-7 / sqrt(1 - beta_2^t) - 1e-7) / v_hat
    gap_bound += lr * np.abs(m_hat) * (1e-7 / np.sqrt(1 - 0.999 ** t) - 1e-7) / v_hat
gap = np.abs(w_paper - w_hand)
assert np.all(gap <= gap_bound + bound), gap.max()
print(f"\nthe paper's form (bias-corrected m_hat, v_hat) differs from Keras's by at most {gap.max():.1e}: "
      f"epsilon sits in another place")

# ---------------------------------------------------------------- inside a training step
nb.utils.set_random_seed(8)                          # the Dense layer's initial weights
x = rng.normal(size=(8, 3))
y = rng.normal(size=(8, 2))
# fit casts x and y to the model's dtype, and each layer computes in its own: float64 for both
model = nb.Sequential([nb.Input((3,)), nb.layers.Dense(2, activation="tanh", dtype="float64")], dtype="float64")
model.compile(optimizer=nb.optimizers.Adam(learning_rate=lr), loss="mse")
before = [w.copy() for w in model.get_weights()]

loss = nb.losses.MeanSquaredError()(y, model(x))     # forward and loss, as fit computes them
loss.backward()
g_kernel, g_bias = (w.grad.copy() for w in model.trainable_weights)
for w in model.trainable_weights:
    w.zero_grad()

history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)   # one batch: one step
for name, w_before, g, w_after in zip(("kernel", "bias"), before, (g_kernel, g_bias), model.get_weights()):
    want, _, _, step = adam_by_hand(w_before, [g], lr)
    err = np.abs(w_after - want)
    # fit's gradient and ours are two computations of the same mse backward: relative difference
    # r <= 2 * 20 roundings * 8 samples * eps. Adam's first step lr g / (|g| + 1e-7 / sqrt(0.001))
    # moves by at most lr * 1e-7 * r / (sqrt(0.001) |g|) when g changes by r |g|.
    r = 2 * 20 * 8 * EPS
    tol = adam_bound(w_before, step) + lr * 1e-7 * r / (np.sqrt(0.001) * np.abs(g))
    assert np.all(err <= tol), (name, err.max())
    print(f"  model.fit, one batch: {name} {w_before.shape} moved by Adam's first step on backward()'s "
          f"gradient (max |error| {err.max():.1e}); loss {history.history['loss'][0]:.4f} = {float(loss.data):.4f}")
# the loss: a mean of 16 squares computed twice the same way, within 2 * 16 roundings of each other
assert abs(history.history["loss"][0] - float(loss.data)) <= 2 * 16 * 4 * EPS * float(loss.data)
print("\nOK 08_optimizer_step: Adam by hand = nb.optimizers.Adam = the step fit takes")
