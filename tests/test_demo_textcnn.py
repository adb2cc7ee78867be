"""The textcnn demo: its CC0 data, its model's shapes, a short run that must beat chance, and its picture."""
import os

import numpy as np
import pytest

pytest.importorskip("olipy")

from numbanet.demos import DEMOS, textcnn  # noqa: E402


def test_registered_as_a_demo():
    assert DEMOS["textcnn"] == "numbanet.demos.textcnn"


def test_corpus_has_four_line_collections_and_is_balanced():
    corpus = textcnn.load_corpus()
    assert tuple(corpus) == textcnn.CLASSES
    assert corpus["sonnet"][0] == "From fairest creatures we desire increase,"
    assert all(len(lines) > 400 and all(isinstance(s, str) and s.strip() for s in lines) for lines in corpus.values())
    lines, labels = textcnn.balanced(corpus, np.random.default_rng(0))
    counts = np.bincount(labels, minlength=4)
    assert (counts == min(len(v) for v in corpus.values())).all()
    sonnet_lines = set(corpus["sonnet"])
    assert all((line in sonnet_lines) for line, label in zip(lines, labels) if label == 0)


def test_model_shapes_follow_the_pipeline():
    import numbanet as nb
    model = textcnn.build_model(nb, vocab=50, embed_dim=6, filters=5, kernel_size=3, seq_len=10)
    shapes = [layer.output_shape for layer in model.layers]
    assert shapes == [(None, 10, 6), (None, 8, 5), (None, 5), (None, 4)]
    assert [type(layer).__name__ for layer in model.layers] == ["Embedding", "Conv1D", "GlobalMaxPooling1D", "Dense"]


def test_short_run_beats_chance_and_draws_its_curves(tmp_path, capsys):
    result = textcnn.main(["--epochs", "3", "--verbose", "0", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"test accuracy {result['accuracy']:.3f} (chance 0.25)" in out
    assert result["accuracy"] > 0.5, f"4 balanced classes: chance is 0.25, got {result['accuracy']}"
    assert os.path.isfile(result["png"]) and result["png"].endswith("textcnn_loss.png")
    hist = result["history"]
    assert hist["loss"][-1] < hist["loss"][0]
    loss_ax, acc_ax = result["figure"].axes[:2]       # the Figure the demo wrote to the PNG
    curves = {line.get_label(): line.get_ydata() for line in loss_ax.get_lines()}
    np.testing.assert_allclose(curves["loss"], hist["loss"])
    np.testing.assert_allclose(curves["val_loss"], hist["val_loss"])
    test_lines = [line for line in acc_ax.get_lines() if line.get_label().startswith("test accuracy")]
    assert len(test_lines) == 1 and np.allclose(test_lines[0].get_ydata(), result["accuracy"])


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--test-split", "1.5"], "--test-split must be in (0, 1)"),
    (["--kernel-size", "20", "--seq-len", "8"], "--kernel-size 20 must not exceed --seq-len 8"),
])
def test_bad_options_are_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        textcnn.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
