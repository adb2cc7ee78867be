"""The lyrics demo: corpus loading, bad corpora, and a tiny end-to-end run."""
import os

import numpy as np
import pytest

from numbanet import text
from numbanet.demos import lyrics


def test_glob_matching_nothing_is_a_clear_error(tmp_path, capsys):
    pattern = str(tmp_path / "nothing-here-*.txt")
    with pytest.raises(ValueError, match="matched no files") as info:
        lyrics.load_lines(pattern)
    assert pattern in str(info.value)
    with pytest.raises(SystemExit) as exit_info:
        lyrics.main(["--corpus", pattern, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "matched no files" in err and pattern in err


def test_empty_corpus_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "b.txt").write_text("\n   \n\t\n")
    with pytest.raises(ValueError, match="corpus is empty"):
        lyrics.load_lines(str(tmp_path / "*.txt"))
    with pytest.raises(SystemExit):
        lyrics.main(["--corpus", str(tmp_path / "*.txt")])
    assert "corpus is empty" in capsys.readouterr().err
    (tmp_path / "c.txt").write_text("#### ----\n")  # symbols only: nothing left after cleaning
    lines, _ = lyrics.load_lines(str(tmp_path / "*.txt"))
    with pytest.raises(ValueError, match="corpus is empty"):
        lyrics.make_pairs(lines, 100, 8, text)


def test_default_corpus_is_the_sonnets():
    pytest.importorskip("olipy")
    lines, where = lyrics.load_lines(None)
    assert len(lines) > 2000 and lines[0] == "From fairest creatures we desire increase,"


def test_pairs_are_shifted_by_one_word():
    tok, x, y = lyrics.make_pairs(["The cat sat.", "A dog sat on the mat!"], 50, 6, text)
    assert x.shape == y.shape == (2, 6) and x.dtype == np.int32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert tok.sequences_to_texts(x[:1]) == ["<start> the cat sat . <end>"]  # 0 is dropped (no oov in ids < 2)
    assert y[0, 4] == tok.word_index["<end>"] and y[0, 5] == 0  # post-padding after <end>


def test_tiny_end_to_end_run(tmp_path, capsys):
    corpus = tmp_path / "song.txt"
    corpus.write_text("\n".join(["la la la, the night is long", "the night is young and so are we",
                                 "sing la la la all night long", "we are young, the night is ours"] * 6))
    result = lyrics.main(["--corpus", str(corpus), "--epochs", "2", "--units", "8", "--embed-dim", "4",
                          "--vocab", "30", "--seq-len", "6", "--seeds", "the night,zzz", "--verbose", "0",
                          "--out", str(tmp_path / "out"), "--validation-split", "0.25"])
    assert os.path.isfile(result["png"])
    assert len(result["history"]["loss"]) >= 1 and "val_loss" in result["history"]
    assert np.isfinite(result["history"]["loss"]).all()
    seed, greedy, sampled = result["samples"][0]
    assert greedy.startswith("the night") and sampled.startswith("the night")
    assert result["samples"][1][1].startswith("<unk>")  # an unknown seed word reads as <unk>
    out = capsys.readouterr().out
    assert "greedy" in out and "val_loss" in out


def test_bad_arguments(capsys):
    for argv in (["--epochs", "0"], ["--vocab", "3"], ["--validation-split", "0"]):
        with pytest.raises(SystemExit):
            lyrics.main(argv)
