"""nb.plot_graph: one box per graph node and per leaf, parameters marked apart from data, labelled
with the op and the output shape, rows by depth from the output; a CNN's graph and an RNN's."""
import matplotlib
import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

import numbanet as nb

L = nb.layers
KINDS = ("op", "parameter", "data")


def _walk(y):
    """(functions, leaves, uses) behind y, found here by following creator / inputs."""
    functions, leaves, uses, stack = {}, {}, 0, [y.creator]
    while stack:
        fn = stack.pop()
        if id(fn) in functions:
            continue
        functions[id(fn)] = fn
        for x in fn.inputs:
            if x is None:
                continue
            uses += 1
            if x.creator is None:
                leaves[id(x)] = x
            else:
                stack.append(x.creator)
    return list(functions.values()), list(leaves.values()), uses


def _boxes(fig, kind):
    return [p for p in fig.axes[0].patches if p.get_gid() == kind]


def _op_name(fn):
    return type(fn.loss).__name__ if hasattr(fn, "loss") else type(fn).__name__


def _shape_text(shape):
    return "(" + ",".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _check(fig, loss, model):
    functions, leaves, uses = _walk(loss)
    params = [x for x in leaves if x.requires_grad]
    assert len(_boxes(fig, "op")) == len(functions)
    assert len(_boxes(fig, "parameter")) == len(params) == len(model.trainable_weights)
    assert len(_boxes(fig, "data")) == len(leaves) - len(params)
    assert len(_boxes(fig, "edge")) == uses
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == len(functions) + len(leaves)
    for fn in functions:                          # op and output shape in one label
        assert any(t.startswith(_op_name(fn) + "\n" + _shape_text(fn.out_shape)) for t in texts), _op_name(fn)
    for w in model.trainable_weights:             # parameters by their layer/weight names
        assert f"{w.name}\n{_shape_text(w.shape)}" in texts
    ys = {kind: [b.get_y() for b in _boxes(fig, kind)] for kind in KINDS}
    top = max(y for kind in KINDS for y in ys[kind])
    bold = [b for b in _boxes(fig, "op") if b.get_linewidth() > 1.5]
    assert len(bold) == 1 and bold[0].get_y() == top     # the output alone, on the top row
    return ys


def test_cnn_graph_has_a_box_per_node_and_parameter_and_the_input_at_the_bottom(tmp_path):
    nb.utils.set_random_seed(0)
    model = nb.Sequential([nb.Input((8, 8, 1)), L.Conv2D(4, 3, padding="same", activation="relu"),
                           L.MaxPooling2D(2), L.Conv2D(2, 3), L.Flatten(), L.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    with nb.fusion(False):                        # one node per layer (the fused pair: test_fusion.py)
        loss = model.compute_loss(np.array([0, 2]), model(np.ones((2, 8, 8, 1), "float32"), training=True))
    backend = matplotlib.get_backend()
    path = tmp_path / "cnn_graph.png"
    fig = nb.plot_graph(loss, path)
    assert isinstance(fig, Figure) and matplotlib.get_backend() == backend
    ys = _check(fig, loss, model)
    assert len(ys["data"]) == 1 and ys["data"][0] == min(y for kind in KINDS for y in ys[kind])
    # 8 rows: loss, softmax, linear, reshape, conv, pool, conv, input
    assert len({round(y, 6) for kind in KINDS for y in ys[kind]}) == 8
    image = matplotlib.image.imread(path)[..., :3]
    orange = np.array([0xf9, 0xcb, 0x9c]) / 255                # the parameters' colour is in the picture
    assert np.any(np.all(np.abs(image - orange) < 2 / 255, axis=-1))


@pytest.mark.usefixtures("tier")
def test_rnn_graph_of_embedding_simple_rnn_dense_with_the_mask():
    nb.utils.set_random_seed(1)
    model = nb.Sequential([nb.Input((5,)), L.Embedding(20, 4, mask_zero=True), L.SimpleRNN(6, return_sequences=True),
                           L.SimpleRNN(3), L.Dense(2)])
    model.compile("adam", "mse")
    ids = np.array([[3, 4, 5, 0, 0], [7, 1, 2, 9, 11]])
    loss = model.compute_loss(np.zeros((2, 2)), model(ids, training=True))
    fig = nb.plot_graph(loss)
    _check(fig, loss, model)
    texts = "\n".join(t.get_text() for t in fig.axes[0].texts)
    assert texts.count("SimpleRNN") == 2 and "Embedding\n(2,5,4)" in texts


def test_repeated_inputs_get_one_arrow_per_use_and_a_plain_function_works():
    x = nb.Tensor(np.ones((2, 3)), requires_grad=True)
    h = x.tanh()
    y = (h * h + h).sum()
    fig = nb.plot_graph(y)
    functions, leaves, uses = _walk(y)
    # Tanh(x), Mul(h, h), Add(hh, h), Sum: 4 ops, one leaf, 1 + 2 + 2 + 1 uses
    assert (len(functions), len(leaves), uses) == (4, 1, 6)
    assert len(_boxes(fig, "op")) == 4 and len(_boxes(fig, "edge")) == 6
    assert [t.get_text() for t in fig.axes[0].texts].count("leaf\n(2,3)") == 1


def test_bad_input():
    with pytest.raises(TypeError, match="plot_graph: expected the Tensor"):
        nb.plot_graph(np.ones(3))
    with pytest.raises(ValueError, match="no recorded graph"):
        nb.plot_graph(nb.Tensor(np.ones(3), requires_grad=True))
    with nb.no_grad():
        y = nb.Tensor(np.ones(3), requires_grad=True) * 2
    with pytest.raises(ValueError, match="no recorded graph"):
        nb.plot_graph(y)
