"""The workloads, written once as data: every framework builds its model from these specs.

A layer spec is a tuple, interpreted the same way by ``workloads/numbanet_impl.py``,
``tf_impl.py`` and ``torch_impl.py``:

    ("dense", units, activation)
    ("conv", filters, kernel, activation, padding)            Conv2D, stride 1
    ("convT", filters, kernel, activation, padding)           Conv2DTranspose, stride 1
    ("pool", size, padding)                                   MaxPooling2D, strides = size
    ("up", size)                                              UpSampling2D, nearest
    ("flatten",)
    ("embed", input_dim, output_dim)                          Embedding
    ("rnn", units)                                            SimpleRNN(tanh, return_sequences=True)
    ("lstm", units)                                           LSTM(tanh/sigmoid, return_sequences=True)

Initialisation everywhere (Keras defaults, set explicitly in torch): glorot_uniform
kernels, zero biases, orthogonal recurrent kernels, uniform(-0.05, 0.05) embeddings;
LSTM biases are Keras's ``unit_forget_bias`` (ones in the forget block, zeros elsewhere).
All arrays are float32; images are NHWC (torch gets the same tensors as NCHW, its
idiomatic layout).

W4 (the Conv2DTranspose autoencoder) is defined here (numbanet/demos/autoencoder.py
did not exist when this was written). Its encoder uses "valid" convolutions and its
decoder mirrors them with "valid" transposed convolutions, which grow each side by
kernel-1 = 2 pixels, ending at 28x28x1:

    28 -conv16-> 26 -pool-> 13 -conv8-> 11 -pool-> 5 -conv4-> 3
     3 -convT4-> 5 -up-> 10 -convT8-> 12 -up-> 24 -convT16-> 26 -convT1(sigmoid)-> 28
"""
from __future__ import annotations

import numpy as np

# name -> spec. "steps": batches per epoch of the fixed synthetic data set (--steps overrides,
# except for W1 whose data set is fixed at 100 samples). "max_repeats" caps --repeats for the
# heavy W5L (several seconds per step per framework on two cores).
WORKLOADS = {
    "W1": dict(
        title="Dense(10,tanh)-Dense(10,tanh)-Dense(1), sine 100x1, batch 20, SGD 0.01, mse",
        input=(1,), data="sine", batch=20, steps=5, fixed_steps=True,
        layers=[("dense", 10, "tanh"), ("dense", 10, "tanh"), ("dense", 1, None)],
        optimizer=("sgd", 0.01), loss="mse"),
    "W2-sgd": dict(
        title="LeNet-like CNN 28x28x1, batch 64, SGD 0.01, sparse CE (logits)",
        input=(28, 28, 1), data="classes10", batch=64, steps=8,
        layers=[("conv", 32, 3, "relu", "valid"), ("pool", 2, "valid"),
                ("conv", 64, 3, "relu", "valid"), ("pool", 2, "valid"),
                ("flatten",), ("dense", 128, "relu"), ("dense", 10, None)],
        optimizer=("sgd", 0.01), loss="sparse_ce_logits"),
    "W2-adam": dict(
        title="LeNet-like CNN 28x28x1, batch 64, Adam 0.001, sparse CE (logits)",
        input=(28, 28, 1), data="classes10", batch=64, steps=8,
        layers=[("conv", 32, 3, "relu", "valid"), ("pool", 2, "valid"),
                ("conv", 64, 3, "relu", "valid"), ("pool", 2, "valid"),
                ("flatten",), ("dense", 128, "relu"), ("dense", 10, None)],
        optimizer=("adam", 0.001), loss="sparse_ce_logits"),
    "W3": dict(
        title="UpSampling2D conv autoencoder 28x28x1, batch 256, Adadelta, binary CE",
        input=(28, 28, 1), data="autoencoder", batch=256, steps=4,
        layers=[("conv", 16, 3, "relu", "same"), ("pool", 2, "same"),
                ("conv", 8, 3, "relu", "same"), ("pool", 2, "same"),
                ("conv", 4, 3, "relu", "same"), ("pool", 2, "same"),
                ("conv", 4, 3, "relu", "same"), ("up", 2),
                ("conv", 8, 3, "relu", "same"), ("up", 2),
                ("conv", 16, 3, "relu", "valid"), ("up", 2),
                ("conv", 1, 3, "sigmoid", "same")],
        optimizer=("adadelta", 0.001), loss="bce"),
    "W4": dict(
        title="Conv2DTranspose autoencoder 28x28x1 (valid convs), batch 256, Adadelta, binary CE",
        input=(28, 28, 1), data="autoencoder", batch=256, steps=4,
        layers=[("conv", 16, 3, "relu", "valid"), ("pool", 2, "valid"),
                ("conv", 8, 3, "relu", "valid"), ("pool", 2, "valid"),
                ("conv", 4, 3, "relu", "valid"),
                ("convT", 4, 3, "relu", "valid"), ("up", 2),
                ("convT", 8, 3, "relu", "valid"), ("up", 2),
                ("convT", 16, 3, "relu", "valid"),
                ("convT", 1, 3, "sigmoid", "valid")],
        optimizer=("adadelta", 0.001), loss="bce"),
    "W5": dict(
        title="Embedding(2000,256)-SimpleRNN(256,seq)-Dense(2000), 20 tokens, batch 64, Adam, sparse CE (logits)",
        input=(20,), data="tokens", vocab=2000, batch=64, steps=8,
        layers=[("embed", 2000, 256), ("rnn", 256), ("dense", 2000, None)],
        optimizer=("adam", 0.001), loss="sparse_ce_logits"),
    "W5L": dict(
        title="Embedding(7001,256)-SimpleRNN(1024,seq)-Dense(7001), 20 tokens, batch 256, Adam, sparse CE (logits)",
        input=(20,), data="tokens", vocab=7001, batch=256, steps=1, max_repeats=5,
        layers=[("embed", 7001, 256), ("rnn", 1024), ("dense", 7001, None)],
        optimizer=("adam", 0.001), loss="sparse_ce_logits"),
    "W6": dict(
        title="Embedding(2000,256)-LSTM(256,seq)-LSTM(256,seq)-Dense(2000), 20 tokens, batch 64, Adam, sparse CE (logits)",
        input=(20,), data="tokens", vocab=2000, batch=64, steps=8,
        layers=[("embed", 2000, 256), ("lstm", 256), ("lstm", 256), ("dense", 2000, None)],
        optimizer=("adam", 0.001), loss="sparse_ce_logits"),
    # the learners' lyric generator: two LSTM(1024) over a 7001-word vocabulary
    "W6L": dict(
        title="Embedding(7001,256)-LSTM(1024,seq)-LSTM(1024,seq)-Dense(7001), 20 tokens, batch 256, Adam, sparse CE (logits)",
        input=(20,), data="tokens", vocab=7001, batch=256, steps=1, max_repeats=3,
        layers=[("embed", 7001, 256), ("lstm", 1024), ("lstm", 1024), ("dense", 7001, None)],
        optimizer=("adam", 0.001), loss="sparse_ce_logits"),
}

# what each framework runs; a variant is one subprocess
VARIANTS = ("numbanet", "tf-fit", "tf-function", "torch")
PEER_OF = {"tf-fit": "tensorflow", "tf-function": "tensorflow", "torch": "torch", "numbanet": "numbanet"}


def expand(names):
    """'W2' selects W2-sgd and W2-adam; 'all' every workload; unknown names raise."""
    out = []
    for name in names:
        if name == "all":
            out.extend(WORKLOADS)
            continue
        hits = [w for w in WORKLOADS if w == name or w.split("-")[0] == name]
        if not hits:
            raise SystemExit(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)} (or W2, all)")
        out.extend(hits)
    return list(dict.fromkeys(out))


def steps_per_epoch(spec, steps=None):
    return spec["steps"] if (steps is None or spec.get("fixed_steps")) else int(steps)


def make_data(spec, steps=None, seed=0):
    """The fixed synthetic data set (x, y) of one workload, float32 / int64, NHWC images."""
    rng = np.random.default_rng(seed)
    n = spec["batch"] * steps_per_epoch(spec, steps)
    kind = spec["data"]
    if kind == "sine":
        x = np.linspace(0, 2 * np.pi, n, dtype=np.float32).reshape(n, 1)
        return x, np.sin(x).astype(np.float32)
    if kind == "classes10":
        x = rng.random((n,) + spec["input"], dtype=np.float32)
        return x, rng.integers(0, 10, n).astype(np.int64)
    if kind == "autoencoder":
        x = rng.random((n,) + spec["input"], dtype=np.float32)
        return x, x.copy()
    if kind == "tokens":
        V, T = spec["vocab"], spec["input"][0]
        return rng.integers(0, V, (n, T)).astype(np.int64), rng.integers(0, V, (n, T)).astype(np.int64)
    raise ValueError(kind)


def step_flops(spec):
    """Multiply-add FLOPs (2 per MAC) of one training step's matrix products: forward x 3."""
    shape = spec["input"]
    macs = 0
    for layer in spec["layers"]:
        kind = layer[0]
        if kind == "dense":
            fan_in = shape[-1]
            rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            macs += rows * fan_in * layer[1]
            shape = shape[:-1] + (layer[1],)
        elif kind in ("conv", "convT"):
            H, W, C = shape
            F_, k, pad = layer[1], layer[2], layer[4]
            if kind == "conv":
                OH, OW = (H, W) if pad == "same" else (H - k + 1, W - k + 1)
                macs += OH * OW * k * k * C * F_
            else:
                OH, OW = (H, W) if pad == "same" else (H + k - 1, W + k - 1)
                macs += H * W * k * k * C * F_
            shape = (OH, OW, F_)
        elif kind == "pool":
            H, W, C = shape
            s = layer[1]
            shape = ((-(-H // s), -(-W // s), C) if layer[2] == "same" else (H // s, W // s, C))
        elif kind == "up":
            H, W, C = shape
            shape = (H * layer[1], W * layer[1], C)
        elif kind == "flatten":
            shape = (int(np.prod(shape)),)
        elif kind == "embed":
            shape = shape + (layer[2],)
        elif kind == "rnn":
            T, D = shape
            macs += T * (D + layer[1]) * layer[1]
            shape = (T, layer[1])
        elif kind == "lstm":                               # four gates: i, f, c, o
            T, D = shape
            macs += T * (D + layer[1]) * 4 * layer[1]
            shape = (T, layer[1])
    return 2 * 3 * macs * spec["batch"]
