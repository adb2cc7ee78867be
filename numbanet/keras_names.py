"""Errors that help when a Keras name is not (yet) in numbanet.

A learner porting Keras code writes ``nb.layers.LSTM``, ``nb.optimizers.Nadam``
or ``compile(optimizer="nadam")``. Where numbanet lacks the name, the error says
that Keras has it and names the nearest thing numbanet has, from the tables
below; a name that is neither here nor in Keras gets ``difflib``'s close matches
("did you mean Dense?"). Every entry is consulted only after the real lookup has
failed, so an entry stops firing the moment numbanet gains the name.

* ``missing_attribute(module_name, name)`` builds the ``KerasNameError`` (an
  ``AttributeError``, so ``hasattr`` stays False) that a module's
  ``__getattr__`` raises.
* ``lookup(kind, name, table)`` is ``utils.one_of`` for the ``get()`` functions
  of activations, initializers, losses and optimizers, with the Keras note
  added to its ValueError.

Table values are ``(nearest, note)``: ``nearest`` is a path inside numbanet
(``"layers.SimpleRNN"``, ``"text.Tokenizer"``; a string name for the string
tables), or None where numbanet has nothing close; ``note`` says how to use it.
"""
from __future__ import annotations

import difflib
import sys

from .utils import one_of

# ------------------------------------------------------------ numbanet.layers
_RECURRENT = ("layers.LSTM", "the whole-sequence layer; SimpleRNN and GRU take the same call")
_POOL_MAX = ("layers.MaxPooling2D", "per depth slice, with the same pool_size, strides and padding")
_MERGE = (None, "write the merge in a subclassed Model's call(): a + b, a * b, "
          "nb.functional.concatenate([a, b], axis=-1)")
_NORMALIZE = ("layers.BatchNormalization", "normalizes each feature over the batch instead")

LAYERS = {
    "RNN": _RECURRENT, "SimpleRNNCell": _RECURRENT, "LSTMCell": _RECURRENT, "GRUCell": _RECURRENT,
    "ConvLSTM2D": _RECURRENT,
    "Conv3D": ("layers.Conv2D", "convolve each depth slice with Conv2D"),
    "SeparableConv2D": ("layers.Conv2D", "a full convolution, with more weights"),
    "DepthwiseConv2D": ("layers.Conv2D", "a full convolution, with more weights"),
    "Convolution2D": ("layers.Conv2D", "the same layer under its short name"),
    "Conv1DTranspose": ("layers.Conv2DTranspose", "on (N, 1, T, C), kernel (1, k)"),
    "Conv3DTranspose": ("layers.Conv2DTranspose", "per depth slice"),
    "MaxPooling3D": _POOL_MAX, "MaxPool2D": ("layers.MaxPooling2D", "the same layer under its long name"),
    "AveragePooling3D": ("layers.AveragePooling2D", "per depth slice"),
    "UpSampling1D": ("layers.UpSampling2D", "on (N, 1, T, C) with size (1, k)"),
    "UpSampling3D": ("layers.UpSampling2D", "per depth slice"),
    "ZeroPadding2D": ("layers.Conv2D", "padding='same' pads inside the convolution"),
    "LayerNormalization": _NORMALIZE, "GroupNormalization": _NORMALIZE,
    "UnitNormalization": _NORMALIZE, "RMSNormalization": _NORMALIZE,
    "Normalization": (None, "standardize the data with NumPy before fit: (x - x.mean(0)) / x.std(0)"),
    "Rescaling": (None, "scale the data with NumPy before fit, e.g. x / 255"),
    "TimeDistributed": ("layers.Dense", "Dense acts on the last axis of any input, so Dense(u) on (N, T, D) "
                        "is TimeDistributed(Dense(u))"),
    "ELU": ("layers.Activation", "Activation('elu')"),
    "PReLU": ("layers.LeakyReLU", "a fixed slope instead of a learned one"),
    "Identity": ("layers.Activation", "Activation('linear')"),
    "SpatialDropout1D": ("layers.Dropout", "drops single values rather than whole channels"),
    "SpatialDropout2D": ("layers.Dropout", "drops single values rather than whole channels"),
    "GaussianDropout": ("layers.Dropout", "Bernoulli instead of Gaussian noise"),
    "GaussianNoise": ("layers.Dropout", "Bernoulli instead of Gaussian noise"),
    "AlphaDropout": ("layers.Dropout", "plain dropout"),
    "Masking": ("layers.Embedding", "Embedding(..., mask_zero=True) makes the padding mask from id 0"),
    "TextVectorization": ("text.Tokenizer", "fit_on_texts, then texts_to_sequences and text.pad_sequences"),
    "StringLookup": ("text.Tokenizer", "word -> id with word_index"),
    "Lambda": ("models.Model", "subclass Model and write the computation in call()"),
    "Add": _MERGE, "Subtract": _MERGE, "Multiply": _MERGE, "Average": _MERGE, "Concatenate": _MERGE,
    "Maximum": _MERGE, "Minimum": _MERGE, "Dot": _MERGE,
    "RepeatVector": (None, "stack copies in a subclassed Model: nb.functional.stack([h] * n, axis=1)"),
    "Permute": (None, "transpose in a subclassed Model: x.transpose(0, 2, 1)"),
    "Attention": (None, "no attention layer yet"), "MultiHeadAttention": (None, "no attention layer yet"),
}

# ------------------------------------------------------- numbanet.optimizers
_ADAM = ("optimizers.Adam", "the adaptive-moment optimizer these extend")
OPTIMIZERS = {
    "Lion": _ADAM, "Lamb": _ADAM, "Adafactor": _ADAM, "Muon": _ADAM,
    "Ftrl": ("optimizers.Adagrad", "per-weight learning rates from accumulated squared gradients"),
    "LossScaleOptimizer": (None, "numbanet trains in float32 or float64, so no loss scaling is needed"),
}

# ---------------------------------------------- names given as strings to get()
STRINGS = {
    "optimizer": {
        "lion": ("adam", "an adaptive optimizer"), "muon": ("adam", "an adaptive optimizer"),
        "adafactor": ("adam", "an adaptive optimizer"),
        "ftrl": ("adagrad", "per-weight learning rates from accumulated squared gradients"),
    },
    "activation": {
        "relu6": ("relu", "relu without the cap at 6"),
        "mish": ("swish", "another smooth relu"), "hard_silu": ("swish", "the smooth curve it approximates"),
        "hard_swish": ("swish", "the smooth curve it approximates"),
        "celu": ("elu", "elu with alpha 1"),
        "log_sigmoid": ("sigmoid", "take the log of it in the loss"),
        "hard_tanh": ("tanh", "the smooth curve it approximates"),
        "log_softmax": ("softmax", "or a loss with from_logits=True, which applies log_softmax itself"),
    },
    "loss": {
        "huber": ("mse", "squared error everywhere (Huber is linear beyond delta)"),
        "log_cosh": ("mse", "log cosh is about x^2 / 2 near 0"),
        "mean_absolute_percentage_error": ("mae", "absolute error, not relative"),
        "mean_squared_logarithmic_error": ("mse", "on np.log1p of the targets and predictions"),
        "kl_divergence": ("categorical_crossentropy", "equal up to the entropy of the targets"),
        "poisson": ("mse", "for counts"),
        "hinge": ("binary_crossentropy", "the probabilistic loss for two classes"),
        "squared_hinge": ("binary_crossentropy", "the probabilistic loss for two classes"),
        "categorical_hinge": ("categorical_crossentropy", "the probabilistic loss for several classes"),
        "binary_focal_crossentropy": ("binary_crossentropy", "without the focal weighting"),
        "categorical_focal_crossentropy": ("categorical_crossentropy", "without the focal weighting"),
        "cosine_similarity": ("mse", "on L2-normalized vectors it ranks the same way"),
        "dice": ("binary_crossentropy", "per-pixel, for segmentation masks"),
    },
    "initializer": {
        "truncated_normal": ("random_normal", "untruncated; the *_normal variance-scaling ones do truncate"),
        "variance_scaling": ("glorot_normal", "or he_normal / lecun_normal: fixed variance-scaling modes"),
        "identity": ("orthogonal", "an orthogonal matrix, of which the identity is one"),
    },
}

MODULE_TABLES = {"numbanet.layers": LAYERS, "numbanet.optimizers": OPTIMIZERS}


class KerasNameError(AttributeError):
    """A name numbanet lacks, with what Keras calls it and the nearest numbanet equivalent.

    An ``AttributeError``, so ``hasattr(nb.layers, "LSTM")`` stays False where it is missing.
    """


def _nearest_text(nearest, note, qualify):
    if nearest is None:
        return f"numbanet has no equivalent yet: {note}"
    return f"nearest in numbanet: {qualify(nearest)} ({note})"


def _close(name, candidates):
    """Up to three of ``candidates`` that ``name`` looks like a slip of (case ignored): difflib's ratio >= 0.6."""
    by_lower = {c.lower(): c for c in candidates}
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]


def _public_names(namespace):
    """The classes and functions numbanet defines in ``namespace`` (not imported modules or NumPy)."""
    return [n for n, v in namespace.items() if not n.startswith("_") and callable(v)
            and getattr(v, "__module__", "").startswith("numbanet")]


def explain_attribute(module_name, name):
    """Why ``module_name`` has no ``name``, or None when it has it (checked first) or nothing useful is known."""
    module = sys.modules.get(module_name)
    present = vars(module) if module is not None else {}
    if name in present:
        return None
    table = MODULE_TABLES.get(module_name, {})
    if name in table:
        nearest, note = table[name]
        return f"{module_name} has no {name} (Keras has it); " + _nearest_text(
            nearest, note, lambda path: "nb." + path)
    matches = _close(name, _public_names(present))
    if matches:
        return f"{module_name} has no {name}; did you mean {' or '.join(matches)}?"
    return None


def missing_attribute(module_name, name) -> AttributeError:
    """The error a module's ``__getattr__`` raises for ``name`` (return it, then raise it)."""
    if name.startswith("__"):   # Python's own probes (__path__, __wrapped__, ...): the plain error
        return AttributeError(f"module {module_name!r} has no attribute {name!r}")
    text = explain_attribute(module_name, name)
    if text is None:
        return AttributeError(f"module {module_name!r} has no attribute {name!r}")
    return KerasNameError(text)


def explain_string(kind, name, table):
    """The sentence added to "unknown <kind> <name>" for a string that is not in ``table``."""
    key = name.lower()
    entry = STRINGS.get(kind, {}).get(key)
    if entry is not None and key not in table:
        nearest, note = entry
        return f"; Keras has {name!r} and numbanet does not yet; " + _nearest_text(nearest, note, repr)
    matches = _close(key, [k for k in table if isinstance(k, str)])
    return f"; did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


def lookup(kind, name, table):
    """``utils.one_of(kind, name, table)``, its ValueError extended with ``explain_string``."""
    try:
        return one_of(kind, name, table)
    except ValueError as err:
        raise ValueError(f"{err}{explain_string(kind, name, table)}") from None
