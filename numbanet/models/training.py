"""compile / fit / evaluate / predict: the training loop shared by every model.

One training step on a mini-batch (x, y):

    clear the gradients of the trainable weights
    y_pred = model(x, training=True)          # forward, recording the graph
    L = loss(y, y_pred)                        # scalar Tensor
    L.backward()                               # gradients into each weight's .grad
    optimizer.step(weights)                    # in-place update

``fit`` shuffles the sample order every epoch (from numbanet's seeded
generator), reports the running mean of the loss and metrics weighted by batch
size, validates at each epoch's end, and stops on a NaN/inf loss with a warning.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from .. import utils
from ..engine import Tensor, no_grad
from ..layers.base import mask_of
from . import data_checks
from .callbacks import Callback, History
from .progress import ProgressBar


def _check_scalars(owner, batch_size=None, verbose=0, epochs=0, validation_split=0.0, shuffle=True,
                   initial_epoch=0):
    """Check the scalar arguments of fit / evaluate / predict before any data is touched.

    batch_size        None (32) or an integer >= 1
    verbose           0, 1, 2, "auto" (1) or a bool (False = 0, True = 1, as Keras code writes it)
    epochs            an integer >= 0 (0 trains nothing, as in Keras)
    initial_epoch     an integer >= 0
    validation_split  a number in [0, 1) (0: no split)
    shuffle           True or False

    A string or a bool where a number belongs is a TypeError, a number out of range
    a ValueError, each naming ``owner`` (e.g. "sequential.fit") and the argument.
    Returns the batch size and verbosity to use: (32 if batch_size is None, 1 for "auto").
    """
    if batch_size is not None:
        utils.check_number(owner, "batch_size", batch_size, integer=True, at_least=1)
    utils.check_number(owner, "epochs", epochs, integer=True, at_least=0)
    utils.check_number(owner, "initial_epoch", initial_epoch, integer=True, at_least=0)
    utils.check_number(owner, "validation_split", validation_split, at_least=0, below=1)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"{owner}: shuffle must be True or False, got the {type(shuffle).__name__} {shuffle!r}")
    if isinstance(verbose, str) and verbose != "auto":
        fix = f"; write verbose={verbose.strip()}, without quotes" if verbose.strip() in ("0", "1", "2") else ""
        raise TypeError(f"{owner}: verbose must be 0, 1, 2 or 'auto', got the str {verbose!r}{fix}")
    if verbose == "auto":
        verbose = 1
    elif not isinstance(verbose, (bool, np.bool_)):
        utils.check_number(owner, "verbose", verbose, integer=True)
        if verbose not in (0, 1, 2):
            raise ValueError(f"{owner}: verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return (32 if batch_size is None else int(batch_size)), int(verbose)


class Trainer:
    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self.stop_training = False
        self.history = None

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer, loss and metrics (names or objects); may be called again."""
        if loss is None:
            raise ValueError(f"{self.name}: compile() needs a loss")
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        self.compiled_metrics = [metrics_mod.get(m, self.loss) for m in (metrics or [])]

    def _require_compiled(self, what):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"{self.name}: call compile(optimizer, loss) before {what}()")

    # ------------------------------------------------------------- data checks
    def _prepare_data(self, x, y, what, sample_weight=None, needs_y=True):
        return data_checks.prepare_data(self, x, y, what, sample_weight, needs_y)

    # -------------------------------------------------------------------- step
    def compute_loss(self, y, y_pred, sample_weight=None):
        return self.loss(y, y_pred, sample_weight=sample_weight, mask=mask_of(y_pred))

    def train_step(self, x, y, sample_weight=None):
        """One optimisation step; returns (loss value, predictions as ndarray)."""
        weights = self.trainable_weights
        for w in weights:
            w.grad = None
        y_pred = self(x, training=True)
        loss = self.compute_loss(y, y_pred, sample_weight)
        loss.backward()
        self.optimizer.step(weights)
        return float(loss.data), y_pred.data

    def _metric_sums(self, y, y_pred, totals, n):
        for name, fn in self.compiled_metrics:
            totals[name] = totals.get(name, 0.0) + float(np.mean(fn(y, y_pred))) * n

    # --------------------------------------------------------------------- fit
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose=1, validation_data=None,
            validation_split=0.0, shuffle=True, callbacks=None, sample_weight=None, initial_epoch=0):
        """Train for ``epochs`` passes over (x, y); returns a ``History``.

        ``validation_split`` holds out the *last* fraction of the samples (taken
        before any shuffling, as Keras does).
        """
        self._require_compiled("fit")
        batch_size, verbose = _check_scalars(f"{self.name}.fit", batch_size, verbose, epochs, validation_split,
                                             shuffle, initial_epoch)
        x, y, sample_weight = self._prepare_data(x, y, "fit", sample_weight)
        if validation_data is None and validation_split:
            n_train = int(len(x) * (1 - validation_split))
            if n_train == 0 or n_train == len(x):
                raise ValueError(f"{self.name}.fit: validation_split={validation_split} leaves "
                                 f"{n_train} of {len(x)} samples for training")
            validation_data = (x[n_train:], y[n_train:])
            x, y = x[:n_train], y[:n_train]
            if sample_weight is not None:
                sample_weight = sample_weight[:n_train]
        if validation_data is not None:
            vx, vy = data_checks.prepare_validation(self, validation_data, x, y)

        history = History()
        cbs = list(callbacks or []) + [history]   # History last, as Keras: it records what callbacks add
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise TypeError(f"{self.name}.fit: callbacks must be Callback objects, got {type(cb).__name__}")
            cb.set_model(self)
        self.history = history
        self.stop_training = False
        n, steps = len(x), math.ceil(len(x) / batch_size)
        logs = {}                                  # epochs=0 (or initial_epoch >= epochs) trains nothing
        for cb in cbs:
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar = ProgressBar(steps, verbose)
            order = utils.rng().permutation(n) if shuffle else None
            totals, seen, logs = {"loss": 0.0}, 0, {}
            for step in range(steps):
                idx = order[step * batch_size:(step + 1) * batch_size] if shuffle else slice(step * batch_size, (step + 1) * batch_size)
                xb, yb = x[idx], y[idx]
                swb = sample_weight[idx] if sample_weight is not None else None
                for cb in cbs:
                    cb.on_train_batch_begin(step)
                loss, y_pred = self.train_step(xb, yb, swb)
                nb = len(xb)
                seen += nb
                totals["loss"] += loss * nb
                if self.compiled_metrics:
                    self._metric_sums(yb, y_pred, totals, nb)
                logs = {k: v / seen for k, v in totals.items()}
                for cb in cbs:
                    cb.on_train_batch_end(step, {**logs, "loss": loss})
                bar.update(step + 1, logs)
                if not math.isfinite(loss):
                    warnings.warn(f"{self.name}.fit: the loss became {loss} at epoch {epoch + 1}, batch {step + 1}; "
                                  f"training stopped (lower the learning rate, or clip gradients)",
                                  RuntimeWarning, stacklevel=2)
                    self.stop_training = True
                if self.stop_training:
                    break
            if validation_data is not None:
                val = self._evaluate_arrays(vx, vy, batch_size)
                logs.update({"val_" + k: v for k, v in val.items()})
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            bar.finish(logs)
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end(logs)
        return history

    # ---------------------------------------------------------------- evaluate
    def _evaluate_arrays(self, x, y, batch_size, sample_weight=None):
        totals, seen = {"loss": 0.0}, 0
        with no_grad():
            for start in range(0, len(x), batch_size):
                sl = slice(start, start + batch_size)
                y_pred = self(x[sl], training=False)
                sw = sample_weight[sl] if sample_weight is not None else None
                loss = float(self.compute_loss(y[sl], y_pred, sw).data)
                nb = len(x[sl])
                totals["loss"] += loss * nb
                self._metric_sums(y[sl], y_pred.data, totals, nb)
                seen += nb
        return {k: v / seen for k, v in totals.items()}

    def evaluate(self, x=None, y=None, batch_size=32, verbose=0, sample_weight=None, return_dict=False):
        """Loss (and metrics) on (x, y): a float, or ``[loss, *metrics]`` when metrics were compiled."""
        self._require_compiled("evaluate")
        batch_size, verbose = _check_scalars(f"{self.name}.evaluate", batch_size, verbose)
        x, y, sample_weight = self._prepare_data(x, y, "evaluate", sample_weight)
        logs = self._evaluate_arrays(x, y, batch_size or 32, sample_weight)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    # ----------------------------------------------------------------- predict
    def predict(self, x, batch_size=32, verbose=0):
        """Outputs for ``x`` as an ndarray, computed in batches without recording a graph."""
        batch_size, verbose = _check_scalars(f"{self.name}.predict", batch_size, verbose)
        x, _, _ = self._prepare_data(x, None, "predict", needs_y=False)
        outs = []
        with no_grad():
            for start in range(0, len(x), batch_size or 32):
                y = self(x[start:start + (batch_size or 32)], training=False)
                outs.append(y.data)
        return np.concatenate(outs, axis=0)
