"""The per-step caches of the training loop stay exact: what they hold is recomputed after every
change that could alter it (layers/base.py STRUCTURE), and the shortcuts of a step give the
same numbers as the long way.

Each cached result is compared with an independent computation: the uncached layer walk
(``_flatten_layers``), the weights listed by hand, or plain NumPy for the values.
"""
import numpy as np
import pytest

import numbanet as nb
from numbanet.layers import Dense, Dropout
from numbanet.layers import base
from numbanet.models.callbacks import Callback
from numbanet.models.progress import ProgressBar


def by_hand(*layers):
    """The trainable weights of ``layers`` in Keras's order, listed by hand: kernel, then bias."""
    return [w for layer in layers for w in (layer.kernel, layer.bias) if w.requires_grad]


def same(a, b):
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def xy(n=8, d=3, u=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((n, u)).astype(np.float32)


# ------------------------------------------------------------ trainable weights and layer trees
def test_trainable_weights_follow_add_and_pop():
    first = Dense(4, activation="tanh", input_shape=(3,))
    model = nb.Sequential([first])
    assert same(model.trainable_weights, by_hand(first))
    second = Dense(2)
    model.add(second)
    assert same(model.trainable_weights, by_hand(first, second))
    assert same(model.layers, [first, second])
    model.pop()
    assert same(model.trainable_weights, by_hand(first))
    assert same(base.flat_layers(model), base._flatten_layers(model))


def test_the_layer_tree_follows_add_and_pop_before_any_build():
    model = nb.Sequential([Dense(4)])
    assert same(base.flat_layers(model), [model, model.layers[0]])
    extra = Dense(2)
    model.add(extra)
    assert same(base.flat_layers(model), base._flatten_layers(model)) and base.flat_layers(model)[-1] is extra
    model.pop()
    assert same(base.flat_layers(model), base._flatten_layers(model)) and extra not in base.flat_layers(model)


def test_trainable_weights_appear_when_the_first_call_builds_them():
    model = nb.Sequential([Dense(4), Dense(2)])
    assert model.trainable_weights == []           # nothing built yet
    x, _ = xy()
    model(x)
    assert same(model.trainable_weights, by_hand(*model.layers))
    assert len(model.trainable_weights) == 4


def test_trainable_toggles_are_seen_at_once():
    x, y = xy()
    model = nb.Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(2)])
    model.compile(optimizer=nb.optimizers.SGD(0.1), loss="mse")
    first, second = model.layers
    assert same(model.trainable_weights, by_hand(first, second))
    first.trainable = False
    assert same(model.trainable_weights, by_hand(second))
    frozen = first.kernel.data.copy()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.array_equal(first.kernel.data, frozen)          # a frozen layer is left alone
    first.trainable = True
    assert same(model.trainable_weights, by_hand(first, second))
    second.bias.requires_grad = False                         # a flag set on the weight itself
    assert same(model.trainable_weights, [first.kernel, first.bias, second.kernel])


def test_a_layer_assigned_to_a_subclassed_model_after_its_first_call_is_tracked():
    class Net(nb.Model):
        def __init__(self):
            super().__init__()
            self.hidden = Dense(4, activation="tanh")
            self.head = Dense(2)
            self.extra = None

        def call(self, x):
            x = self.hidden(x)
            if self.extra is not None:
                x = self.extra(x)
            return self.head(x)

    x, _ = xy()
    net = Net()
    net(x)
    assert same(net.trainable_weights, by_hand(net.hidden, net.head))
    net.extra = Dense(4)
    net(x)
    assert same(net.trainable_weights, by_hand(net.hidden, net.head, net.extra))
    assert same(base.flat_layers(net), base._flatten_layers(net))


def test_a_regularizer_set_after_build_enters_losses():
    x, _ = xy()
    model = nb.Sequential([Dense(4, input_shape=(3,)), Dense(2)])
    model(x)
    assert model.losses == []
    layer = model.layers[1]
    layer.kernel_regularizer = nb.regularizers.L2(0.1)
    (penalty,) = model.losses
    W = layer.kernel.data.astype(np.float64)
    assert abs(float(penalty.data) - 0.1 * float((W * W).sum())) <= 1e-6 * (1 + 0.1 * float((W * W).sum()))
    layer.kernel.requires_grad = False                       # frozen weights carry no penalty
    assert model.losses == []


def test_activity_penalties_are_those_of_the_latest_call():
    rng = np.random.default_rng(1)
    model = nb.Sequential([Dense(3, activity_regularizer=nb.regularizers.L1(0.5), input_shape=(2,))])
    for n in (4, 6):
        x = rng.standard_normal((n, 2)).astype(np.float32)
        y = model(x)
        (penalty,) = model.losses
        want = 0.5 * np.abs(y.data.astype(np.float64)).sum() / n
        assert abs(float(penalty.data) - want) <= 1e-6 * (1 + want)


def test_copies_and_pickles_carry_no_caches():
    import copy
    import pickle
    x, y = xy()
    model = nb.Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(2)])
    model.compile(optimizer=nb.optimizers.SGD(0.1), loss="mse")
    model.train_step(x, y)
    assert "_structure_cache" in model.__dict__ and "_accepted" in model.layers[0].__dict__
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert "_structure_cache" not in twin.__dict__
        assert all("_accepted" not in layer.__dict__ for layer in twin.layers)
        assert same(twin.trainable_weights, by_hand(*twin.layers))
        assert not any(w is v for w in twin.trainable_weights for v in model.trainable_weights)
        twin.add(Dense(1))
        assert same(twin.trainable_weights, by_hand(*twin.layers))
        assert same(model.trainable_weights, by_hand(*model.layers))


# ------------------------------------------------------------ input checks that are skipped
def test_a_changed_input_shape_is_checked_again():
    layer = Dense(2)
    x = nb.Tensor(np.ones((5, 3), np.float32))
    layer(x)
    layer(x)                                                  # the remembered kind of input
    with pytest.raises(ValueError, match="expected last axis of size 3"):
        layer(nb.Tensor(np.ones((5, 4), np.float32)))
    with pytest.raises(ValueError, match="expected last axis of size 3"):
        layer(np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match="batch axis"):
        layer(nb.Tensor(np.float32(1.0)))


def test_a_changed_attribute_is_checked_again():
    layer = nb.layers.Softmax(axis=-1)
    x = np.ones((2, 3), np.float32)
    layer(x)
    layer(x)
    layer.axis = 5                                            # a public attribute: checked anew
    with pytest.raises(ValueError, match="axis 5 is out of range"):
        layer(x)


def test_an_array_input_is_wrapped_and_cast_as_before():
    layer = Dense(2)
    x64 = np.ones((5, 3), np.float64)
    for _ in range(2):                                        # first call builds, second is remembered
        assert layer(x64).dtype == np.float32
        y = layer(x64.astype(np.float32))
        assert isinstance(y, nb.Tensor) and y.dtype == np.float32
    ids = nb.layers.Embedding(10, 4)
    for _ in range(2):
        assert ids(np.array([[1, 2]])).shape == (1, 2, 4)


def test_a_training_step_leaves_the_structure_unchanged():
    """Once built, a step changes no structure, so the caches hold from step to step."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 5, 3)).astype(np.float32)
    y = rng.standard_normal((8, 2)).astype(np.float32)
    model = nb.Sequential([nb.layers.LSTM(4, return_sequences=True, input_shape=(5, 3)),
                           nb.layers.BatchNormalization(), Dropout(0.2), nb.layers.Flatten(),
                           Dense(2, kernel_regularizer=nb.regularizers.L2(0.01))])
    model.compile(optimizer="adam", loss="mse")
    model.train_step(x, y)
    version = base.STRUCTURE[0]
    for _ in range(3):
        model.train_step(x, y)
    assert base.STRUCTURE[0] == version


# ------------------------------------------------------------ the optimizer's pass over all weights
OPTIMIZERS = [
    lambda: nb.optimizers.SGD(0.05),
    lambda: nb.optimizers.SGD(0.05, momentum=0.9),
    lambda: nb.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: nb.optimizers.SGD(0.05, weight_decay=0.01),
    lambda: nb.optimizers.Adam(0.01),
    lambda: nb.optimizers.RMSprop(0.01),
    lambda: nb.optimizers.Adagrad(0.05),
    lambda: nb.optimizers.Adadelta(1.0),
    lambda: nb.optimizers.Nadam(0.01),
    lambda: nb.optimizers.Adamax(0.01),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_update_many_gives_the_bits_of_one_update_per_weight(make, dtype):
    rng = np.random.default_rng(3)
    shapes = [(3, 4), (4,), (4, 1), (1,)]
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    fused = [nb.Tensor(a.copy(), requires_grad=True) for a in start]
    single = [nb.Tensor(a.copy(), requires_grad=True) for a in start]
    opt_fused, opt_single = make(), make()
    for step in grads:
        for w, g in zip(fused, step):
            w.grad = g.copy()
        opt_fused.step(fused)
        lr = opt_single.current_learning_rate()                 # the per-weight way, one update each
        opt_single.begin_step()
        for w, g in zip(single, step):
            state = opt_single._slots_of(w)
            if opt_single.weight_decay:
                nb.engine.tiers.current.weight_decay_update(w.data, w.dtype.type(lr), opt_single.weight_decay)
            opt_single.update(w.data, g.copy(), state, w.dtype.type(lr))
        opt_single.iterations += 1
    for a, b in zip(fused, single):
        assert a.dtype == dtype and np.array_equal(a.data, b.data)


def test_plain_sgd_is_w_minus_lr_g_in_the_weight_dtype():
    rng = np.random.default_rng(4)
    w32 = rng.standard_normal((5, 3)).astype(np.float32)
    g32 = rng.standard_normal((5, 3)).astype(np.float32)
    w = nb.Tensor(w32.copy(), requires_grad=True)
    w.grad = g32
    nb.optimizers.SGD(0.01).step([w])
    assert np.array_equal(w.data, w32 - np.float32(0.01) * g32)


# ------------------------------------------------------------ the fit loop
def test_batch_hooks_run_only_where_defined_and_see_the_running_logs():
    seen = []

    class Record(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, dict(logs)))

    assigned = []
    plain = Callback()
    plain.on_train_batch_begin = lambda batch, logs=None: assigned.append(batch)   # set on the instance
    x, y = xy(n=10)
    model = nb.Sequential([Dense(2, input_shape=(3,))])
    model.compile(optimizer=nb.optimizers.SGD(0.01), loss="mse")
    w0 = [a.copy() for a in model.get_weights()]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[Record(), plain])
    assert [b for b, _ in seen] == [0, 1, 2] and assigned == [0, 1, 2]
    # the batch losses, recomputed in NumPy from the weights before each batch (SGD replayed)
    W, b = (a.astype(np.float64) for a in w0)
    total, count = 0.0, 0
    for (batch, logs), sl in zip(seen, (slice(0, 4), slice(4, 8), slice(8, 10))):
        xb, yb = x[sl].astype(np.float64), y[sl].astype(np.float64)
        err = xb @ W + b - yb
        loss = float((err ** 2).mean())
        total, count = total + loss * len(xb), count + len(xb)
        assert abs(logs["loss"] - loss) <= 1e-5 * (1 + loss)
        g = 2 * err / err.size
        W, b = W - 0.01 * (xb.T @ g), b - 0.01 * g.sum(0)
    assert abs(history.history["loss"][0] - total / count) <= 1e-5 * (1 + total / count)


def test_the_progress_bar_draws_at_most_every_interval(capsys):
    bar = ProgressBar(100, verbose=1, interval=3600.0)
    bar.last_draw = float("-inf")                            # nothing drawn yet
    assert bar.due(1)
    bar.update(1, {"loss": 1.0})
    assert not bar.due(2) and bar.due(100)                   # the last step always draws
    assert not ProgressBar(100, verbose=0).due(100) and not ProgressBar(100, verbose=2).due(100)
    x, y = xy(n=40)
    model = nb.Sequential([Dense(2, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "10/10" in out and f"loss: {history.history['loss'][0]:.4f}" in out


# ------------------------------------------------------------ the backward walk
def test_leaf_gradients_are_their_own_arrays():
    rng = np.random.default_rng(5)
    x = nb.Tensor(rng.standard_normal((6, 3)).astype(np.float32), requires_grad=True)
    layer = Dense(4, activation="tanh")
    y = layer(x)
    y.sum().backward()
    grads = [x.grad, layer.kernel.grad, layer.bias.grad]
    for i, a in enumerate(grads):
        for b in grads[i + 1:]:
            assert not np.shares_memory(a, b)
        for saved in (x.data, layer.kernel.data, y.data):
            assert not np.shares_memory(a, saved)
    yd = y.data.astype(np.float64)
    gz = 1 - yd * yd                                          # d tanh / dz, from y
    assert np.allclose(layer.kernel.grad, x.data.astype(np.float64).T @ gz, rtol=1e-5, atol=1e-5)
    a = nb.Tensor(np.ones(3, np.float32), requires_grad=True)
    b = nb.Tensor(np.ones(3, np.float32), requires_grad=True)
    (a + b).sum().backward()                                   # Add hands gy to both: copied for each
    assert not np.shares_memory(a.grad, b.grad)
