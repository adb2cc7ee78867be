"""The lyrics demo with each cell (--cell lstm|gru|simple): the model, the probe windows,
the gradient pictures and what they contain, and its new options' errors."""
import numpy as np
import pytest
from matplotlib.figure import Figure

import numbanet as nb
from numbanet import text
from numbanet.demos import lyrics

SONG = ["la la la, the night is long", "the night is young and so are we", "sing la la la all night long",
        "we are young, the night is ours", "shall i compare thee to a summer's day",
        "thou art more lovely and more temperate"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "song.txt"
    path.write_text("\n".join(SONG * 5))
    return str(path)


def _tiny(corpus, out, *extra):
    return ["--corpus", corpus, "--epochs", "3", "--units", "6", "--embed-dim", "4", "--vocab", "40",
            "--seq-len", "6", "--probe-steps", "9", "--seeds", "the night", "--verbose", "0", "--patience", "0",
            "--validation-split", "0.2", "--out", str(out), *extra]


@pytest.mark.parametrize("cell, layer", [("lstm", nb.layers.LSTM), ("gru", nb.layers.GRU),
                                         ("simple", nb.layers.SimpleRNN)])
def test_build_model_stacks_two_sequence_layers_of_the_cell(cell, layer):
    model = lyrics.build_model(nb, 30, 4, 5, 0.0, cell)
    out = model(np.array([[2, 3, 4, 0]]))
    assert out.shape == (1, 4, 30)
    rnns = [l for l in model.layers if isinstance(l, (nb.layers.LSTM, nb.layers.GRU, nb.layers.SimpleRNN))]
    assert [type(l) for l in rnns] == [layer, layer] and all(l.return_sequences for l in rnns)
    gates = {"lstm": 4, "gru": 3, "simple": 1}[cell]
    assert rnns[0].get_weights()[1].shape == (5, gates * 5)      # recurrent kernel (U, G*U)


def test_the_default_cell_is_lstm_as_the_learners_wrote_it():
    _, args = lyrics.parse_args([])
    assert args.cell == "lstm"
    model = lyrics.build_model(nb, 10, 3, 2)
    assert isinstance(model.rnn1, nb.layers.LSTM) and isinstance(model.rnn2, nb.layers.LSTM)


def test_probe_windows_are_consecutive_words_of_the_running_text():
    tokenizer, _, _ = lyrics.make_pairs(SONG, 100, 8, text)
    x, y = lyrics.probe_windows(SONG, tokenizer, text, 7, 5, np.random.default_rng(0))
    stream = np.concatenate(tokenizer.texts_to_sequences(lyrics.clean_lines(SONG, text)))
    assert x.shape == y.shape == (5, 7) and (x > 0).all()        # no padding anywhere
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    for row in x:                                                # each window is a slice of the stream
        starts = [s for s in range(len(stream) - 7 + 1) if (stream[s:s + 7] == row).all()]
        assert starts
    short = ["one two"]                                          # "<start> one two <end>": 4 ids
    tok, _, _ = lyrics.make_pairs(short, 10, 4, text)
    x, y = lyrics.probe_windows(short, tok, text, 50, 32, np.random.default_rng(0))
    assert x.shape == (1, 3)                                     # shrunk to what the text holds


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_each_cell_trains_and_draws_its_gradient_pictures(cell, corpus, tmp_path):
    result = lyrics.main(_tiny(corpus, tmp_path, "--cell", cell, "--compare-epochs", "1"))
    loss = result["history"]["loss"]
    assert np.isfinite(loss).all() and loss[-1] < loss[0]
    for key in ("png", "health_png", "gradients_png"):
        assert (tmp_path / result[key].split("/")[-1]).stat().st_size > 0
    curves = result["gradient_curves"]
    assert list(curves) == ["simple", "lstm"] + (["gru"] if cell == "gru" else [])
    for name, (before, after) in curves.items():
        assert len(before) == 2 and len(after) == 2              # both recurrent layers, before and after
        assert all(len(c) == 9 and np.isfinite(c).all() for c in list(before.values()) + list(after.values()))
    # the chosen cell's figures are the main run's: after 1 epoch = its GradientHealth record of epoch 1
    assert curves[cell][1] == result["health"].records[0]["dh_norm"]


def test_the_gradient_picture_holds_the_measured_curves(corpus, tmp_path, monkeypatch):
    figures = []
    real = nb.plot.save_figure

    def keep(fig, path=None):
        figures.append((fig, path))
        return real(fig, path)

    monkeypatch.setattr(nb.plot, "save_figure", keep)
    result = lyrics.main(_tiny(corpus, tmp_path, "--compare-epochs", "2"))
    (fig,) = [f for f, p in figures if p and p.endswith("lyrics_gradients.png")]
    assert isinstance(fig, Figure)
    before_ax, after_ax = fig.axes
    assert "before" in before_ax.get_title() and "after 2 epoch" in after_ax.get_title()
    for ax, which in ((before_ax, 0), (after_ax, 1)):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert len(lines) == 4                                   # SimpleRNN and LSTM, upper and lower layer
        for cell, label in (("simple", "SimpleRNN"), ("lstm", "LSTM")):
            (lower, low), (upper, up) = result["gradient_curves"][cell][which].items()
            for where, name, curve in (("upper", upper, up), ("lower", lower, low)):
                line = lines[f"{label}, {where} layer ({name})"]
                want = np.log10(np.asarray(curve) / curve[-1])  # each curve relative to its last step
                np.testing.assert_allclose(line.get_ydata(), want, rtol=0, atol=1e-12)
                np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 10))
                assert line.get_ydata()[-1] == 0


def test_before_training_curves_are_those_of_a_fresh_model_of_the_same_seed(corpus, tmp_path):
    result = lyrics.main(_tiny(corpus, tmp_path, "--compare-epochs", "0", "--cell", "simple"))
    curves = result["gradient_curves"]
    assert all(after is None for _, after in curves.values())
    lines, _ = lyrics.load_lines(corpus)
    tokenizer, x, _ = lyrics.make_pairs(lines, 40, 6, text)
    probe = lyrics.probe_windows(lines, tokenizer, text, 9, 32, np.random.default_rng(1))
    for cell in ("simple", "lstm"):
        nb.utils.set_random_seed(1)
        args = lyrics.parse_args(_tiny(corpus, tmp_path))[1]
        model = lyrics.compiled_model(nb, result["vocab"], args, cell)
        model(x[:1])
        fresh = nb.callbacks.GradientHealth(probe=probe, probe_loss="last").measure_probe(model)["dh_norm"]
        assert list(fresh.values()) == list(curves[cell][0].values())   # layer names differ: counters


@pytest.mark.parametrize("argv, message", [
    (["--cell", "lstm2"], "invalid choice: 'lstm2'"),
    (["--probe-steps", "0"], "--probe-steps must be a positive integer"),
    (["--compare-epochs", "-1"], "--compare-epochs must be 0 or more"),
])
def test_bad_options_are_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        lyrics.main(argv)
    assert message in capsys.readouterr().err


def test_build_model_rejects_an_unknown_cell():
    with pytest.raises(ValueError, match=r"cell must be one of \['gru', 'lstm', 'simple'\], got 'rnn'"):
        lyrics.build_model(nb, 10, 3, 2, cell="rnn")
