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

A functional model of several inputs or outputs takes x as a list (or a dict
by input name) and y as a list (or a dict by output name); its loss is
``L = sum_i w_i * L_i(y_i, y_pred_i)`` over the outputs (``compile_utils``), and
the logs hold ``loss`` (L plus the regularization penalties ``model.losses``, as
in Keras 3's fit and evaluate), ``<output>_loss`` (each unweighted L_i, when more than
one output has a loss) and ``<output>_<metric>``, as Keras 3 names them.
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
from ..fast import workspace
from ..layers.base import mask_of
from . import compile_utils, data_checks
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


def _arrays(y):
    """A model's output(s) as ndarray(s): a Tensor's data, or a list of them for several outputs."""
    return [t.data for t in y] if isinstance(y, (list, tuple)) else y.data


def _take(data, idx):
    """The samples ``idx`` of an array, or of each array of a list (None stays None)."""
    if isinstance(data, list):
        return [None if a is None else a[idx] for a in data]
    return data[idx]


def _take_batch(data, idx):
    """``_take`` for one training batch: a shuffled batch of ``POOL_MIN_BYTES`` or more is
    gathered into an array of the workspace pool (``np.take(..., out=)``), which the next
    step gets again once nothing holds this one, so fit does not page-fault fresh batch
    arrays in every step (``fast/workspace.py`` says why); a slice stays a view."""
    if isinstance(data, list):
        return [None if a is None else _take_batch(a, idx) for a in data]
    if isinstance(idx, slice) or not isinstance(data, np.ndarray):
        return data[idx]
    shape = (len(idx),) + data.shape[1:]
    if len(idx) * (data.nbytes // max(len(data), 1)) < workspace.POOL_MIN_BYTES:
        return data[idx]
    return np.take(data, idx, axis=0, out=workspace.scratch("fit.batch", shape, data.dtype))


def _overrides(cb, hook):
    """Whether callback ``cb``'s method ``hook`` does something: not the base Callback's empty one."""
    method = getattr(cb, hook)
    return getattr(method, "__func__", None) is not getattr(Callback, hook)


def _count(x):
    """The number of samples in x (an array, or a list of arrays of equal length)."""
    return len(x[0]) if isinstance(x, list) else len(x)


class Trainer:
    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self._output_losses = None   # per output: Loss or None (compile_utils)
        self._loss_weights = None    # per output: float
        self._output_metrics = None  # per output: [(history name, function)]
        self.stop_training = False
        self.history = None

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """Choose the optimizer, loss and metrics (names or objects); may be called again.

        For a model of several outputs, ``loss``, ``loss_weights`` and ``metrics`` may be
        given per output, as lists in output order or dicts by output name (see
        ``compile_utils``); one loss applies to every output.
        """
        if loss is None:
            raise ValueError(f"{self.name}: compile() needs a loss")
        owner = f"{self.name}.compile"
        names = self._compile_output_names()
        optimizer = optimizers_mod.get(optimizer)
        output_losses = compile_utils.compile_losses(owner, loss, names)
        loss_weights = compile_utils.compile_loss_weights(owner, loss_weights, names)
        output_metrics = compile_utils.compile_metrics(owner, metrics, names, output_losses)
        self.optimizer = optimizer
        self._output_losses, self._loss_weights, self._output_metrics = output_losses, loss_weights, output_metrics
        self.loss = output_losses[0] if len(names) == 1 else output_losses
        self.compiled_metrics = output_metrics[0] if len(names) == 1 else [p for ps in output_metrics for p in ps]

    def _compile_output_names(self):
        """The names that ``compile``'s dicts are keyed by: the layers making the outputs, as Keras."""
        names = getattr(self, "output_names", None)
        if names:
            return list(names)
        stack = getattr(self, "_stack", None)
        return [stack[-1].name if stack else self.name]

    def _require_compiled(self, what):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"{self.name}: call compile(optimizer, loss) before {what}()")

    # ------------------------------------------------------------- data checks
    def _prepare_data(self, x, y, what, sample_weight=None, needs_y=True):
        return data_checks.prepare_data(self, x, y, what, sample_weight, needs_y)

    # -------------------------------------------------------------------- step
    def compute_loss(self, y, y_pred, sample_weight=None):
        """The training loss, a scalar Tensor: ``sum_i w_i * L_i(y_i, y_pred_i)`` over the outputs."""
        return self._loss_parts(y, y_pred, sample_weight)[0]

    def _loss_parts(self, y, y_pred, sample_weight=None):
        """(the weighted total, {"<output>_loss": unweighted L_i}) for one batch.

        The per-output entries exist, as in Keras's logs, only when more than one output has a loss.
        """
        if len(self._output_losses) == 1:
            loss = self.loss(y, y_pred, sample_weight=sample_weight, mask=mask_of(y_pred))
            w = self._loss_weights[0]
            return self._plus_penalties(loss if w == 1.0 else loss * w), {}
        total, parts = None, {}
        active = sum(loss is not None for loss in self._output_losses)
        for name, loss, w, t, p in zip(self.output_names, self._output_losses, self._loss_weights, y, y_pred):
            if loss is None:
                continue
            value = loss(t, p, sample_weight=sample_weight, mask=mask_of(p))
            if active > 1:
                parts[f"{name}_loss"] = value
            term = value if w == 1.0 else value * w
            total = term if total is None else total + term
        return self._plus_penalties(total), parts

    def _plus_penalties(self, loss):
        """``loss + sum(self.losses)``: the regularization penalties enter the loss, as in Keras's fit and evaluate."""
        for penalty in self.losses:
            loss = loss + penalty
        return loss

    def train_step(self, x, y, sample_weight=None):
        """One optimisation step; returns (loss value, predictions as ndarray, or a list of them)."""
        loss, y_pred, _ = self._train_step(x, y, sample_weight)
        return loss, y_pred

    def _train_step(self, x, y, sample_weight=None):
        """One optimisation step; (loss value, predictions, {"<output>_loss": value})."""
        for w in self.trainable_weights:
            w.grad = None
        y_pred = self(x, training=True)
        loss, parts = self._loss_parts(y, y_pred, sample_weight)
        loss.backward()
        self.optimizer.step(self.trainable_weights)   # read after the forward, which may have built them
        return float(loss.data), _arrays(y_pred), {k: float(v.data) for k, v in parts.items()}

    def _metric_sums(self, y, y_pred, totals, n):
        if len(self._output_metrics) == 1:
            y, y_pred = [y], [y_pred]
        for name, metrics, t, p in zip(self._compile_output_names(), self._output_metrics, y, y_pred):
            if metrics and t is None:
                raise ValueError(f"{self.name}: metrics were compiled for output {name!r}, but y has no targets "
                                 f"for it")
            for mname, fn in metrics:
                totals[mname] = totals.get(mname, 0.0) + float(np.mean(fn(t, p))) * n

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
            n_train = int(_count(x) * (1 - validation_split))
            if n_train == 0 or n_train == _count(x):
                raise ValueError(f"{self.name}.fit: validation_split={validation_split} leaves "
                                 f"{n_train} of {_count(x)} samples for training")
            validation_data = (_take(x, slice(n_train, None)), _take(y, slice(n_train, None)))
            x, y = _take(x, slice(None, n_train)), _take(y, slice(None, n_train))
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
        n = _count(x)
        steps = math.ceil(n / batch_size)
        # the per-batch hooks that do something (the base Callback's are empty): only these are
        # called, and the running logs are made per batch only when a hook or the bar reads them
        batch_begin = [cb.on_train_batch_begin for cb in cbs if _overrides(cb, "on_train_batch_begin")]
        batch_end = [cb.on_train_batch_end for cb in cbs if _overrides(cb, "on_train_batch_end")]
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
                xb, yb = _take_batch(x, idx), _take_batch(y, idx)
                swb = sample_weight[idx] if sample_weight is not None else None
                for hook in batch_begin:
                    hook(step)
                loss, y_pred, parts = self._train_step(xb, yb, swb)
                nb = _count(xb)
                seen += nb
                totals["loss"] += loss * nb
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0.0) + v * nb
                if self.compiled_metrics:
                    self._metric_sums(yb, y_pred, totals, nb)
                if batch_end or bar.due(step + 1):
                    logs = {k: v / seen for k, v in totals.items()}
                    for hook in batch_end:
                        hook(step, {**logs, "loss": loss})
                    bar.update(step + 1, logs)
                if not math.isfinite(loss):
                    warnings.warn(f"{self.name}.fit: the loss became {loss} at epoch {epoch + 1}, batch {step + 1}; "
                                  f"training stopped (lower the learning rate, or clip gradients)",
                                  RuntimeWarning, stacklevel=2)
                    self.stop_training = True
                if self.stop_training:
                    break
            if seen:
                logs = {k: v / seen for k, v in totals.items()}
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
        totals, seen, n = {"loss": 0.0}, 0, _count(x)
        with no_grad():
            for start in range(0, n, batch_size):
                sl = slice(start, start + batch_size)
                xb, yb = _take(x, sl), _take(y, sl)
                y_pred = self(xb, training=False)
                sw = sample_weight[sl] if sample_weight is not None else None
                loss, parts = self._loss_parts(yb, y_pred, sw)
                nb = _count(xb)
                totals["loss"] += float(loss.data) * nb
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0.0) + float(v.data) * nb
                self._metric_sums(yb, _arrays(y_pred), totals, nb)
                seen += nb
        return {k: v / seen for k, v in totals.items()}

    def evaluate(self, x=None, y=None, batch_size=32, verbose=0, sample_weight=None, return_dict=False):
        """Loss (and metrics) on (x, y): a float, or ``[loss, *metrics]`` when metrics were compiled.

        With several outputs the list is Keras 3's: the loss, each output's loss in output
        order, then the metrics sorted by name (``cls_accuracy`` before ``reg_mae``).
        """
        self._require_compiled("evaluate")
        batch_size, verbose = _check_scalars(f"{self.name}.evaluate", batch_size, verbose)
        x, y, sample_weight = self._prepare_data(x, y, "evaluate", sample_weight)
        logs = self._evaluate_arrays(x, y, batch_size or 32, sample_weight)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        if len(self._output_losses) > 1:
            losses = ["loss"] + [f"{n}_loss" for n in self.output_names if f"{n}_loss" in logs]
            return [logs[k] for k in losses] + [logs[k] for k in sorted(logs) if k not in losses]
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    # ----------------------------------------------------------------- predict
    def predict(self, x, batch_size=32, verbose=0):
        """Outputs for ``x`` as an ndarray (a list of them for several outputs), in batches, no graph."""
        batch_size, verbose = _check_scalars(f"{self.name}.predict", batch_size, verbose)
        x, _, _ = self._prepare_data(x, None, "predict", needs_y=False)
        outs = []
        with no_grad():
            for start in range(0, _count(x), batch_size or 32):
                y = self(_take(x, slice(start, start + (batch_size or 32))), training=False)
                outs.append(_arrays(y))
        if isinstance(outs[0], list):
            return [np.concatenate(parts, axis=0) for parts in zip(*outs)]
        return np.concatenate(outs, axis=0)
