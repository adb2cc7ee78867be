"""The workloads in numbanet: ``Sequential`` + ``compile`` + ``fit``, as a user writes them."""
from __future__ import annotations

import numpy as np

FRAMEWORK = "numbanet"


def version():
    import numbanet
    return numbanet.__version__


def build_model(spec, seed=0):
    import numbanet as nb
    L = nb.layers
    nb.utils.set_random_seed(seed)
    layers = [nb.Input(spec["input"])]
    for layer in spec["layers"]:
        kind = layer[0]
        if kind == "dense":
            layers.append(L.Dense(layer[1], activation=layer[2]))
        elif kind == "conv":
            layers.append(L.Conv2D(layer[1], layer[2], activation=layer[3], padding=layer[4]))
        elif kind == "convT":
            layers.append(L.Conv2DTranspose(layer[1], layer[2], activation=layer[3], padding=layer[4]))
        elif kind == "pool":
            layers.append(L.MaxPooling2D(layer[1], padding=layer[2]))
        elif kind == "up":
            layers.append(L.UpSampling2D(layer[1]))
        elif kind == "flatten":
            layers.append(L.Flatten())
        elif kind == "embed":
            layers.append(L.Embedding(layer[1], layer[2]))
        elif kind == "rnn":
            layers.append(L.SimpleRNN(layer[1], return_sequences=True))
        elif kind == "lstm":
            layers.append(L.LSTM(layer[1], return_sequences=True))
        else:
            raise ValueError(kind)
    model = nb.Sequential(layers)
    name, lr = spec["optimizer"]
    opt = {"sgd": nb.optimizers.SGD, "adam": nb.optimizers.Adam, "adadelta": nb.optimizers.Adadelta}[name]
    loss = {"mse": "mse", "bce": "binary_crossentropy",
            "sparse_ce_logits": nb.losses.SparseCategoricalCrossentropy(from_logits=True)}[spec["loss"]]
    model.compile(optimizer=opt(learning_rate=lr), loss=loss)
    return model


def build(spec, x, y, variant="numbanet"):
    model = build_model(spec)

    def run(epochs):
        history = model.fit(x, y, batch_size=spec["batch"], epochs=epochs, verbose=0, shuffle=True)
        return float(history.history["loss"][-1])

    run.model = model
    return run


def first_step(spec, x, y):
    """Build and run ONE training step (the cold-start measurement)."""
    model = build_model(spec)
    b = spec["batch"]
    return model, (lambda: model.train_step(x[:b], y[:b])[0])
