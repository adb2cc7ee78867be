"""The workloads in TensorFlow / Keras 3, two ways: ``model.fit`` and a ``tf.function`` train step.

Keras defaults give the same initialisation as numbanet (glorot_uniform kernels,
zero biases, orthogonal recurrent kernels, uniform(-0.05, 0.05) embeddings). On a
CPU-only machine Keras 3 resolves ``jit_compile="auto"`` to False, so neither
variant uses XLA (as a user gets it by default).
"""
from __future__ import annotations

import numpy as np

FRAMEWORK = "tensorflow"


def version():
    import tensorflow as tf
    import keras
    return f"tensorflow {tf.__version__}, keras {keras.__version__}"


def build_model(spec, seed=0):
    import keras
    from keras import layers as L
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(spec["input"], dtype="int64" if spec["data"] == "tokens" else "float32")])
    for layer in spec["layers"]:
        kind = layer[0]
        if kind == "dense":
            model.add(L.Dense(layer[1], activation=layer[2]))
        elif kind == "conv":
            model.add(L.Conv2D(layer[1], layer[2], activation=layer[3], padding=layer[4]))
        elif kind == "convT":
            model.add(L.Conv2DTranspose(layer[1], layer[2], activation=layer[3], padding=layer[4]))
        elif kind == "pool":
            model.add(L.MaxPooling2D(layer[1], padding=layer[2]))
        elif kind == "up":
            model.add(L.UpSampling2D(layer[1]))
        elif kind == "flatten":
            model.add(L.Flatten())
        elif kind == "embed":
            model.add(L.Embedding(layer[1], layer[2]))
        elif kind == "rnn":
            model.add(L.SimpleRNN(layer[1], return_sequences=True))
        elif kind == "lstm":
            model.add(L.LSTM(layer[1], return_sequences=True))
        else:
            raise ValueError(kind)
    name, lr = spec["optimizer"]
    opt = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
           "adadelta": keras.optimizers.Adadelta}[name](learning_rate=lr)
    loss = {"mse": keras.losses.MeanSquaredError(), "bce": keras.losses.BinaryCrossentropy(),
            "sparse_ce_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}[spec["loss"]]
    return model, opt, loss


def build(spec, x, y, variant="tf-fit"):
    import tensorflow as tf
    model, opt, loss_fn = build_model(spec)
    batch = spec["batch"]
    if variant == "tf-fit":
        model.compile(optimizer=opt, loss=loss_fn)

        def run(epochs):
            history = model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)
            return float(history.history["loss"][-1])
        return run

    train_step = make_train_step(model, opt, loss_fn)
    X, Y = tf.constant(x), tf.constant(y)
    rng = np.random.default_rng(0)
    n = len(x)

    def run(epochs):
        loss = None
        for _ in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, batch):
                idx = tf.constant(order[start:start + batch])
                loss = train_step(tf.gather(X, idx), tf.gather(Y, idx))
        return float(loss)
    return run


def make_train_step(model, opt, loss_fn):
    import tensorflow as tf

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return train_step


def first_step(spec, x, y):
    import tensorflow as tf
    model, opt, loss_fn = build_model(spec)
    step = make_train_step(model, opt, loss_fn)
    b = spec["batch"]
    xb, yb = tf.constant(x[:b]), tf.constant(y[:b])
    return model, (lambda: float(step(xb, yb)))
