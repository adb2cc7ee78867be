"""examples/text_generator.py: the learners' TextGenerator trains on numbanet, and the same
source with TensorFlow's import lines in place of numbanet's runs on tf.keras."""
import difflib
import pathlib
import sys
import types

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "examples" / "text_generator.py"

# numbanet's import lines -> TensorFlow's: the only lines that differ between the two programs
TF_IMPORTS = {
    "import numbanet as keras": "from tensorflow import keras",
    "from numbanet.text import Tokenizer": "from tensorflow.keras.preprocessing.text import Tokenizer",
    "from numbanet.text import pad_sequences": "from tensorflow.keras.preprocessing.sequence import pad_sequences",
}

SONG = ["la la la, the night is long", "the night is young and so are we", "sing la la la all night long",
        "we are young, the night is ours", "shall i compare thee to a summer's day",
        "thou art more lovely and more temperate", "rough winds do shake the darling buds of may",
        "and summer's lease hath all too short a date"]


def _load(name, source):
    module = types.ModuleType(name)
    module.__file__ = str(SCRIPT)
    sys.modules[name] = module
    exec(compile(source, str(SCRIPT), "exec"), module.__dict__)
    return module


def _tf_source():
    """The script with each numbanet import line (code before its comment) swapped for TensorFlow's."""
    out = []
    for line in SCRIPT.read_text().split("\n"):
        code = line.split("#")[0].rstrip()
        out.append(TF_IMPORTS[code] if code in TF_IMPORTS else line)
    return "\n".join(out)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "song.txt"
    path.write_text("\n".join(SONG * 8))                          # 64 lines: 16 batches of 4
    return str(path)


ARGS = ["--epochs", "4", "--batch-size", "4", "--embedding-dim", "8", "--rnn-units", "12", "--next-words", "5"]


def test_numbanet_runs_the_learners_code_and_it_learns(corpus, capsys):
    module = _load("text_generator_nb", SCRIPT.read_text())
    result = module.main(["--corpus", corpus] + ARGS)
    loss = result["loss"]
    vocab = result["vocab_size"]
    # untrained logits are near 0, so the first batch's loss is about log(vocab); training lowers it
    assert abs(loss[0] - np.log(vocab)) < 0.1 * np.log(vocab)
    assert loss[-1] < loss[0] - 0.05 and np.isfinite(loss).all()
    for text in (result["greedy"], result["sampled"]):
        assert text.startswith("shall i compare thee ")
        assert len(text.split(" ")) == 4 + 5                      # one word (maybe "" for id 0) per step
    out = capsys.readouterr().out
    assert "greedy:" in out and "loss:" in out


def test_generate_text_takes_the_last_steps_logits_and_index_word():
    module = _load("text_generator_nb2", SCRIPT.read_text())
    tokenizer = module.Tokenizer()
    tokenizer.fit_on_texts(SONG)
    V = len(tokenizer.word_index) + 1
    seen = []

    class FixedModel:                                             # next word: always id 5 at the last step
        def predict(self, x, verbose=0):
            seen.append(np.array(x))
            logits = np.zeros((1, x.shape[1], V), np.float32)
            logits[0, -1, 5] = 3.0
            logits[0, :-1, 7] = 9.0                               # earlier steps must be ignored
            return logits

    text = module.generate_text(FixedModel(), tokenizer, "the night", 2, temperature=0)
    word = tokenizer.index_word[5]
    assert text == f"the night {word} {word}"
    ids = [tokenizer.word_index["the"], tokenizer.word_index["night"]]
    np.testing.assert_array_equal(seen[0], [[0] * 8 + ids])        # padded in front to SEQ_LENGTH = 10
    np.testing.assert_array_equal(seen[1], [[0] * 7 + ids + [5]])
    np.random.seed(0)                                             # temperature: softmax(z / T) by NumPy
    draws = [module.generate_text(FixedModel(), tokenizer, "", 1, temperature=0.05).split()[0] for _ in range(5)]
    assert draws == [word] * 5                                    # p(id 5) = 1 - (V-1) e^-60: certain


def test_only_the_import_lines_differ_from_the_tensorflow_program():
    ours, theirs = SCRIPT.read_text().split("\n"), _tf_source().split("\n")
    changed = [(a, b) for a, b in zip(ours, theirs) if a != b]
    assert len(ours) == len(theirs) and len(changed) == len(TF_IMPORTS)
    assert all(a.split("#")[0].rstrip() in TF_IMPORTS for a, _ in changed)
    diff = [d for d in difflib.unified_diff(ours, theirs, lineterm="", n=0) if d[:1] in "+-" and d[:3] not in "+++---"]
    assert len(diff) == 2 * len(TF_IMPORTS)


def test_the_same_source_runs_on_tf_keras(tf, corpus):
    ours = _load("text_generator_nb3", SCRIPT.read_text()).main(["--corpus", corpus] + ARGS)
    theirs = _load("text_generator_tf", _tf_source()).main(["--corpus", corpus] + ARGS)
    assert type(theirs["x"]).__module__ == "numpy"
    # the two Tokenizers and pad_sequences make the very same data set ...
    np.testing.assert_array_equal(ours["x"], theirs["x"])
    np.testing.assert_array_equal(ours["y"], theirs["y"])
    assert ours["vocab_size"] == theirs["vocab_size"]
    # ... and the same program trains on both: the loss starts near log(vocab) and falls
    for loss in (ours["loss"], theirs["loss"]):
        assert abs(loss[0] - np.log(ours["vocab_size"])) < 0.1 * np.log(ours["vocab_size"])
        assert loss[-1] < loss[0] - 0.05
    assert theirs["greedy"].startswith("shall i compare thee ") and len(theirs["greedy"].split(" ")) == 9
