"""The optimizer lab, the initializer lab, and the demo pictures that show test figures and restored epochs.

Every number a picture shows is compared with a computation written here: the Keras
update rules in NumPy with the analytic gradient of each test function, a NumPy forward
pass of the lab's networks with their own weights, np.histogram of those activations.
Tolerances are rounding-error bounds (tests/bounds.py).
"""
import types

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import numbanet as nb  # noqa: E402
from numbanet.demos import init as init_lab  # noqa: E402
from numbanet.demos import optimizers as opt_lab  # noqa: E402

from bounds import LIBM_ULP, assert_within, elementwise_bound, matmul_bound  # noqa: E402

EPS = np.finfo(np.float64).eps


# ------------------------------------------------------------------------------ optimizer lab
def rosenbrock_np(p):
    x, y = p[..., 0], p[..., 1]
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def saddle_np(p):
    return p[..., 0] ** 2 - p[..., 1] ** 2


def grad_np(name, p):
    """(gradient (2,), bound on |autograd's - this|) of the test function at p (2,).

    The bound: each of about 10 roundings is relative to the largest intermediate,
    2(1 + |x|) + 400|x|(|y| + x^2) for d/dx of Rosenbrock's (y - x^2 cancels), etc.
    """
    x, y = p
    if name == "rosenbrock":
        g = np.array([-2 * (1 - x) - 400 * x * (y - x ** 2), 200 * (y - x ** 2)])
        magnitude = np.array([2 * (1 + abs(x)) + 400 * abs(x) * (abs(y) + x * x), 200 * (abs(y) + x * x)])
    else:
        g = np.array([2 * x, -2 * y])
        magnitude = np.abs(g)
    return g, elementwise_bound(magnitude, 10)


@pytest.fixture(scope="module")
def lab():
    return opt_lab.run_lab(nb, steps=60)


@pytest.mark.usefixtures("tier")
def test_first_steps_are_keras_update_rules():
    problem = opt_lab.PROBLEMS["rosenbrock"]
    p0 = np.array(problem.start)
    g, gb = grad_np("rosenbrock", p0)
    # SGD(momentum=0.9), Keras: m = momentum * m - lr * g;  w = w + m   (m starts at 0)
    lr = 0.001
    r = opt_lab.run(nb, nb.optimizers.SGD(lr, momentum=0.9), problem, steps=1)
    m = 0.9 * 0.0 - lr * g
    assert_within(r.points[1], p0 + m, lr * gb + elementwise_bound(np.abs(p0) + np.abs(m), 3), "momentum step 1")
    # Adam, Keras: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); alpha = lr sqrt(1 - b2^t) / (1 - b1^t);
    # w -= alpha m / (sqrt(v) + eps)
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    r = opt_lab.run(nb, nb.optimizers.Adam(lr), problem, steps=1)
    m, v = (1 - b1) * g, (1 - b2) * g * g
    alpha = lr * np.sqrt(1 - b2) / (1 - b1)
    step = alpha * m / (np.sqrt(v) + eps)                      # ~ lr * sign(g): g's own error cancels
    assert_within(r.points[1], p0 - step, elementwise_bound(np.abs(p0) + np.abs(step), 12), "adam step 1")
    assert_within(r.slots["m"][0], m, (1 - b1) * gb + elementwise_bound(np.abs(m), 2), "adam m after step 1")
    # RMSprop on the saddle, Keras: v = rho v + (1 - rho) g^2;  w -= lr g / sqrt(v + eps)
    problem = opt_lab.PROBLEMS["saddle"]
    p0 = np.array(problem.start)
    g, gb = grad_np("saddle", p0)
    lr, rho = 0.01, 0.9
    r = opt_lab.run(nb, nb.optimizers.RMSprop(lr), problem, steps=1)
    v = (1 - rho) * g * g
    step = lr * g / np.sqrt(v + 1e-7)
    assert_within(r.points[1], p0 - step, elementwise_bound(np.abs(p0) + np.abs(step), 12), "rmsprop step 1")


def test_every_step_follows_the_update_rule_from_the_recorded_slots(lab):
    """Each recorded step k from the recorded point and slots at k-1, the gradient computed here."""
    for name in ("rosenbrock", "saddle"):
        runs, rates = lab[name], opt_lab.LEARNING_RATES[name]
        for label in ("Momentum", "Adagrad", "Adam"):
            r, lr = runs[label], rates[label]
            assert r.learning_rate == lr
            S = len(r.points) - 1
            assert S >= 20, (name, label, S)
            for k in range(1, S + 1):
                p, p_new = r.points[k - 1], r.points[k]
                g, gb = grad_np(name, p)
                if label == "Momentum":
                    m_old = r.slots["momentum"][k - 2] if k > 1 else np.zeros(2)
                    m = r.slots["momentum"][k - 1]
                    assert_within(m, 0.9 * m_old - lr * g,
                                  lr * gb + elementwise_bound(np.abs(m_old) + lr * np.abs(g), 3), f"{name} m {k}")
                    assert_within(p_new, p + m, elementwise_bound(np.abs(p) + np.abs(m), 1), f"{name} w {k}")
                elif label == "Adagrad":
                    a_old = r.slots["accumulator"][k - 2] if k > 1 else np.full(2, 0.1)
                    a = r.slots["accumulator"][k - 1]
                    assert_within(a, a_old + g * g, 2 * np.abs(g) * gb + elementwise_bound(a_old + g * g, 2),
                                  f"{name} accumulator {k}")
                    step = lr * g / np.sqrt(a + 1e-7)
                    assert_within(p_new, p - step, lr * gb / np.sqrt(a) + elementwise_bound(np.abs(p) + np.abs(step), 6),
                                  f"{name} adagrad w {k}")
                else:
                    m_old = r.slots["m"][k - 2] if k > 1 else np.zeros(2)
                    v_old = r.slots["v"][k - 2] if k > 1 else np.zeros(2)
                    m, v = r.slots["m"][k - 1], r.slots["v"][k - 1]
                    assert_within(m, m_old + (g - m_old) * 0.1,
                                  0.1 * gb + elementwise_bound(np.abs(m_old) + np.abs(g), 3), f"{name} adam m {k}")
                    assert_within(v, v_old + (g * g - v_old) * 0.001,
                                  0.002 * np.abs(g) * gb + elementwise_bound(v_old + g * g, 4), f"{name} adam v {k}")
                    alpha = lr * np.sqrt(1 - 0.999 ** k) / (1 - 0.9 ** k)
                    step = alpha * m / (np.sqrt(v) + 1e-7)
                    assert_within(p_new, p - step, elementwise_bound(np.abs(p) + np.abs(step), 12), f"{name} adam w {k}")


def test_slots_are_read_from_the_optimizer():
    problem = opt_lab.PROBLEMS["rosenbrock"]
    for opt in (nb.optimizers.Adadelta(5.0), nb.optimizers.RMSprop(0.01), nb.optimizers.SGD(0.002)):
        r = opt_lab.run(nb, opt, problem, steps=7)
        (stored,) = opt.slots.values()                               # the one weight's slots
        assert opt.iterations == 7 and sorted(r.slots) == sorted(stored)  # plain SGD: none
        for name, values in r.slots.items():
            assert values.shape == (7, 2)
            np.testing.assert_array_equal(values[-1], stored[name])      # the last record is the stored slot


def test_saddle_runs_stop_on_leaving_the_box(lab):
    for label, r in lab["saddle"].items():
        inside = np.abs(r.points).max(axis=1) <= 1.5
        if r.left_at is None:
            assert inside.all() and len(r.points) == 61
        else:
            assert r.left_at == len(r.points) - 1 and not inside[-1] and inside[:-1].all(), label


def test_trajectory_picture_has_one_line_per_optimizer_with_its_points(lab):
    fig = opt_lab.trajectories_figure(nb, lab)
    for name, f in (("rosenbrock", rosenbrock_np), ("saddle", saddle_np)):
        contour_ax = next(ax for ax in fig.axes if ax.get_title().startswith(f"{name}: f ="))
        loss_ax = next(ax for ax in fig.axes if ax.get_title() == f"{name}: loss per step")
        lines = [l for l in contour_ax.get_lines() if (l.get_gid() or "").startswith("trajectory/")]
        assert sorted(l.get_gid() for l in lines) == sorted(f"trajectory/{name}/{o}" for o in opt_lab.OPTIMIZERS)
        for line in lines:
            label = line.get_gid().split("/")[-1]
            r = lab[name][label]
            np.testing.assert_array_equal(line.get_xydata(), r.points)
            assert line.get_label().startswith(f"{label} lr={opt_lab.LEARNING_RATES[name][label]:g}")
            loss = next(l for l in loss_ax.get_lines() if l.get_gid() == f"loss/{name}/{label}")
            np.testing.assert_array_equal(loss.get_xdata(), np.arange(len(r.points)))
            expected = f(r.points)                                   # f at each recorded point, in NumPy
            x, y = np.abs(r.points[:, 0]), np.abs(r.points[:, 1])
            magnitude = (1 + x) ** 2 + 100 * (y + x * x) ** 2 if name == "rosenbrock" else x * x + y * y
            assert_within(loss.get_ydata(), expected, elementwise_bound(magnitude, 8), f"{name} {label} loss")
        assert loss_ax.get_yscale() == ("log" if name == "rosenbrock" else "linear")


def test_slots_picture_shows_each_slot_per_step(lab):
    for name, runs in lab.items():
        fig = opt_lab.slots_figure(nb, runs, name)
        lines = {l.get_gid(): l for ax in fig.axes for l in ax.get_lines() if l.get_gid()}
        expected = {f"slot/{label}/{slot}/{axis}" for label, r in runs.items() for slot in r.slots for axis in "xy"}
        assert set(lines) == expected
        assert {g.split("/")[2] for g in expected} == {"momentum", "accumulator", "velocity", "accumulated_grad",
                                                       "accumulated_delta_var", "m", "v"}
        assert len(fig.axes) == 8                                    # one panel per (optimizer, slot)
        for gid, line in lines.items():
            _, label, slot, axis = gid.split("/")
            values = runs[label].slots[slot][:, "xy".index(axis)]
            np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(values) + 1))
            np.testing.assert_array_equal(line.get_ydata(), values)
        assert "SGD: no slots" in fig._suptitle.get_text()


def test_optimizers_demo_command_writes_its_pictures(tmp_path, capsys):
    out = opt_lab.main(["--steps", "15", "--out", str(tmp_path)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["optimizers_slots_rosenbrock.png", "optimizers_slots_saddle.png", "optimizers_trajectories.png"]
    text = capsys.readouterr().out
    r = out["results"]["rosenbrock"]["Adam"]
    assert f"rosenbrock  Adam" in text and f"{r.points[-1, 0]:.4f}" in text
    with pytest.raises(SystemExit):
        opt_lab.main(["--steps", "0"])
    with pytest.raises(ValueError, match="unknown optimizer 'Lion'"):
        opt_lab.make_optimizer(nb, "Lion", 0.1)


# ---------------------------------------------------------------------------- initializer lab
def act_np(name, z):
    return {"sigmoid": lambda: 1 / (1 + np.exp(-z)), "tanh": lambda: np.tanh(z),
            "relu": lambda: np.maximum(z, 0)}[name]()


def layer_references(x, config, with_z=False):
    """Each layer's output computed here from the layer's input (the lab's previous output):
    [(reference (N, U), bound on |lab - reference|), ...], with the pre-activation z (N, U)
    as a third item when ``with_z``."""
    out, h = [], x
    for layer, lab_out in zip(config.layers, config.activations):
        W, b = layer.get_weights()                                   # (U_in, U), (U,)
        z = h @ W + b
        ref = act_np(config.activation, z)
        bound = matmul_bound(h, W, b)                                # the activations are 1-Lipschitz
        if config.activation != "relu":
            bound = bound + elementwise_bound(1.0, LIBM_ULP + 3)     # |value| <= 1, exp/tanh within LIBM_ULP
        out.append((ref, bound, z) if with_z else (ref, bound))
        h = lab_out
    return out


@pytest.fixture(scope="module")
def init_run():
    return init_lab.run_lab(nb, n_layers=5, units=100, samples=300, seed=3)


@pytest.mark.usefixtures("tier")
def test_lab_activations_equal_a_numpy_forward_pass():
    x, configs = init_lab.run_lab(nb, n_layers=5, units=100, samples=120, seed=5)
    assert x.shape == (120, 100) and len(configs) == 15
    assert {(c.activation, c.initializer) for c in configs} == {(a, i) for a in init_lab.ACTIVATIONS
                                                                for i in init_lab.INITIALIZERS}
    for c in configs:
        assert all(layer.get_weights()[1].tolist() == [0.0] * 100 for layer in c.layers)   # zero biases
        for l, ((ref, bound), got) in enumerate(zip(layer_references(x, c), c.activations)):
            assert_within(got, ref, bound, f"{c.activation} {c.initializer} layer {l + 1}")


def test_the_initializers_draw_the_stated_variances(init_run):
    _, configs = init_run
    expected_std = {"normal std 1": 1.0, "normal std 0.01": 0.01, "Glorot normal": np.sqrt(2 / 200),
                    "He normal": np.sqrt(2 / 100), "LeCun normal": np.sqrt(1 / 100)}
    for c in configs:
        W = np.concatenate([layer.get_weights()[0].ravel() for layer in c.layers])   # 5 * 10,000 draws
        # the std of 50,000 draws is within 3% of the true one (its relative sd is about 0.3%)
        assert abs(W.std() / expected_std[c.initializer] - 1) < 0.03, (c.initializer, W.std())


def test_histograms_show_the_activations(init_run):
    x, configs = init_run
    for activation in init_lab.ACTIVATIONS:
        fig = init_lab.histograms_figure(nb, configs, activation)
        panels = {ax.get_gid(): ax for ax in fig.axes}
        rows = [c for c in configs if c.activation == activation]
        assert len(panels) == len(rows) * 5
        for c in rows:
            refs = layer_references(x, c, with_z=True)
            top = max(float(ref.max()) for ref, _, _ in refs)
            for layer, (ref, bound, z) in enumerate(refs, start=1):
                ax = panels[f"hist/{activation}/{c.initializer}/{layer}"]
                heights = np.array([p.get_height() for p in ax.patches])
                edges = np.array([p.get_x() for p in ax.patches] + [ax.patches[-1].get_x() + ax.patches[-1].get_width()])
                low, high = {"sigmoid": (0, 1), "tanh": (-1, 1), "relu": (0, top)}[activation]
                span = high - low
                np.testing.assert_allclose(edges, np.linspace(low, high, len(heights) + 1), rtol=0,
                                           atol=1e-12 * span + float(bound.max()))
                values = ref[ref > 0] if activation == "relu" else ref.ravel()
                counts, _ = np.histogram(values, edges)
                # a value within its rounding bound of an edge may fall on either side of it; for relu
                # that includes the top edge (the lab's largest value), and a value whose pre-activation
                # is within the bound of 0 may be 0 or positive in the lab
                inner = edges[1:] if activation == "relu" else edges[1:-1]
                near = np.abs(ref[..., None] - inner).min(axis=-1) <= bound
                if activation == "relu":
                    near |= np.abs(z) <= bound
                assert np.abs(heights - counts).sum() <= 2 * near.sum(), (c.initializer, layer)
                std_text = next(t.get_text() for t in ax.texts if t.get_text().startswith("std "))
                assert float(std_text.split()[1]) == pytest.approx(ref.std(), rel=1e-2)
                if activation == "relu":
                    assert f"{np.mean(ref == 0):.0%} zeros" in std_text


def test_qualitative_facts_of_the_classic_picture(init_run):
    x, configs = init_run
    stds = {(c.activation, c.initializer): [ref.std() for ref, _ in layer_references(x, c)] for c in configs}
    # tanh, std 0.01: each layer scales the spread by about sqrt(100) * 0.01 = 0.1 (tanh'(0) = 1),
    # so four layers after the first it is ~1e-4 of the first's; 1e-2 leaves a factor 100 of room
    s = stds[("tanh", "normal std 0.01")]
    assert s[-1] < 1e-2 * s[0] and all(b < a for a, b in zip(s, s[1:]))
    # He + relu keeps the second moment per layer; the std of 300x100 activations drifts by a few % a layer
    s = stds[("relu", "He normal")]
    assert all(0.5 < v / s[0] < 2 for v in s)
    # std 1 with relu: the spread grows by about sqrt(100 / 2) ~ 7 a layer (7^4 ~ 2,400 over four)
    s = stds[("relu", "normal std 1")]
    assert s[-1] > 100 * s[0]
    # std 1 with tanh saturates: most outputs within 0.05 of -1 or 1 in every layer
    ref = layer_references(x, next(c for c in configs if c.activation == "tanh" and c.initializer == "normal std 1"))
    assert all(np.mean(np.abs(r) > 0.95) > 0.5 for r, _ in ref)


def test_init_demo_prints_the_std_table_and_writes_three_pictures(tmp_path, capsys):
    out = init_lab.main(["--layers", "5", "--samples", "100", "--seed", "2", "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["init_relu.png", "init_sigmoid.png", "init_tanh.png"]
    text = capsys.readouterr().out
    rows = {}
    for line in text.splitlines():
        for c in out["configs"]:
            head = f"{c.activation:<10} {c.initializer:<16}"
            if line.startswith(head):
                rows[(c.activation, c.initializer)] = [float(v) for v in line[len(head):].split()]
    assert len(rows) == 15
    for c in out["configs"]:
        expected = [ref.std() for ref, _ in layer_references(out["x"], c)]
        np.testing.assert_allclose(rows[(c.activation, c.initializer)], expected, rtol=1e-3)   # 4 digits printed
    with pytest.raises(SystemExit):
        init_lab.main(["--layers", "0"])


# ------------------------------------------------------- demo pictures: test figures, restored epochs
@pytest.fixture
def captured(monkeypatch):
    """Every Figure that nb.plot.plot_history returns during the test."""
    figures = []
    original = nb.plot.plot_history

    def recording(*args, **kwargs):
        fig = original(*args, **kwargs)
        figures.append(fig)
        return fig

    monkeypatch.setattr(nb.plot, "plot_history", recording)
    return figures


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_iris_picture_shows_test_accuracy_and_the_restored_epoch(tmp_path, captured):
    from numbanet.demos import iris
    out = iris.main(["--epochs", "60", "--patience", "3", "--verbose", "0", "--out", str(tmp_path)])
    assert (tmp_path / "iris.png").stat().st_size > 0
    val = out["history"]["val_loss"]
    assert out["best_epoch"] == int(np.argmin(val)) + 1                # EarlyStopping keeps the first minimum
    assert round(out["accuracy"] * 30, 6) == int(round(out["accuracy"] * 30))   # k of the 30 test flowers
    (fig,) = captured
    loss_ax, acc_ax = fig.axes
    assert f"test accuracy {out['accuracy']:.4g}" in _legend(acc_ax)
    assert f"restored best epoch {out['best_epoch']}" in _legend(acc_ax) and f"restored best epoch {out['best_epoch']}" in _legend(loss_ax)
    test_line = next(l for l in acc_ax.get_lines() if l.get_label().startswith("test accuracy"))
    np.testing.assert_array_equal(test_line.get_ydata(), [out["accuracy"]] * 2)
    dots = sorted(float(l.get_ydata()[0]) for l in loss_ax.get_lines() if l.get_marker() == "o")
    assert dots == sorted([out["history"]["loss"][out["best_epoch"] - 1], min(val)])


def test_cnn_loss_picture_has_the_curves_and_test_figures(tmp_path, captured):
    from numbanet.demos import cnn
    nb.utils.set_random_seed(0)
    model = cnn.build_model(nb)
    x = np.random.default_rng(0).random((30, 28, 28, 1)).astype(np.float32)
    y = np.arange(30) % 10
    history = {"loss": [1.2, 0.6, 0.4], "accuracy": [0.6, 0.8, 0.9]}
    with nb.kernels("reference"):
        paths = cnn.write_pictures(nb, model, x, y, str(tmp_path), history, test={"loss": 0.45, "accuracy": 0.88})
    assert [p.split("/")[-1] for p in paths] == ["cnn_filters.png", "cnn_feature_maps.png", "cnn_predictions.png",
                                                  "cnn_loss.png"]
    assert (tmp_path / "cnn_loss.png").stat().st_size > 0
    (fig,) = captured
    for ax, name, test in zip(fig.axes, ("loss", "accuracy"), (0.45, 0.88)):
        curve = next(l for l in ax.get_lines() if l.get_label() == name)
        np.testing.assert_array_equal(curve.get_ydata(), history[name])
        assert f"test {name} {test:.4g}" in _legend(ax)


def test_lyrics_picture_shows_the_restored_epoch_and_held_out_accuracy(tmp_path, captured):
    from numbanet.demos import lyrics
    V = 5
    x = np.array([[2, 3, 4, 0], [2, 4, 3, 0], [2, 3, 0, 0], [2, 4, 4, 3]])
    y = np.array([[3, 4, 1, 0], [4, 3, 1, 0], [3, 1, 0, 0], [4, 4, 3, 1]])
    guesses = np.array([[3, 3, 3, 3], [4, 4, 3, 3]])              # the model's argmax for the last two rows

    class Model:
        def predict(self, x_val):
            assert np.array_equal(x_val, x[2:])                   # validation_split=0.5 holds out the last half
            return np.eye(V)[guesses]                             # (2, 4, V) logits, argmax = guesses

    # real targets of the held-out rows: [3, 1] and [4, 4, 3, 1]; right: 3 | 4, 4, 3  -> 4 of 6
    assert lyrics.held_out_accuracy(Model(), x, y, 0.5) == pytest.approx(4 / 6)
    stop = nb.callbacks.EarlyStopping(restore_best_weights=True)
    stop.best_weights, stop.best_epoch = [np.zeros(1)], 1               # as left by a fit that restored epoch 2
    history = {"loss": [2.0, 1.5, 1.4], "val_loss": [2.1, 1.8, 1.9]}
    args = types.SimpleNamespace(validation_split=0.5, out=str(tmp_path))
    path = lyrics.write_picture(nb, Model(), history, x, y, args, V, [stop])
    assert path.endswith("lyrics_loss.png") and (tmp_path / "lyrics_loss.png").stat().st_size > 0
    (fig,) = captured
    legend = _legend(fig.axes[0])
    assert "restored best epoch 2" in legend
    assert "held-out next-word accuracy 0.667 (the weights of epoch 2)" in legend
