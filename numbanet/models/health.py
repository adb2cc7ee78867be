"""``GradientHealth``: a callback that watches the gradients while a model trains.

Per epoch it records, for every trainable weight w (and for every layer, its weights together):

* the gradient norm ||g|| = ||dL/dw||_2 of each training batch, as the mean over the
  epoch's batches and the last batch's value (the raw gradient of the loss, before any
  clipping by the optimizer);
* the update ratio ||w_after - w_before|| / ||w_before|| across each optimizer step,
  mean and last (NaN for a step where ||w_before|| = 0, e.g. a zero-initialised bias
  before its first step; the mean skips those);

and, on a *probe batch* (x, y) given to the constructor, after each epoch's training
(weights as they are then, layers in inference mode: no dropout, so the probe draws no
random numbers and training is the same with or without the callback):

* the dead-ReLU fraction of each layer whose activation is relu: the share of its
  units (features along the last axis) that are 0 for every sample (and every position)
  of the probe batch;
* for each recurrent layer (SimpleRNN, LSTM, GRU) the gradient norm per time step,
  mean over the probe batch of ||dL/dh_t||_2, h_t (N, U) the state after step t in the
  order the layer processes time. dL/dh_t is the ``dh`` carried through
  backpropagation through time (the gradient of the output y_t plus what comes back
  from step t+1), written out by the tier's ``*_backward`` when the probe attaches an
  array to the layer's graph node (``Function.record_dh``); training steps never do.

``probe_loss="last"`` takes the probe's loss on the last time step only
(``loss(y[:, -1], y_pred[:, -1])``): then ||dL/dh_t|| is how much of the last step's
error reaches step t, the curve that shows a vanishing gradient.

Shapes: probe x as the model takes it (N, ...), y as the loss takes it; a recurrent
layer's dh (N, T, U).
"""
from __future__ import annotations

import math

import numpy as np

from ..engine.gru import GRU
from ..engine.lstm import LSTM
from ..engine.recurrent import SimpleRNN
from ..engine.tensor import _topological_order
from .callbacks import Callback

RECURRENT_NODES = (SimpleRNN, LSTM, GRU)   # the graph nodes whose BPTT can write out dL/dh_t

_WEIGHT_KEYS = ("grad_norm", "grad_norm_last", "update_ratio", "update_ratio_last")


def _norm(a):
    """||a||_2 over all elements, summed in float64."""
    a = np.asarray(a, dtype=np.float64).ravel()
    return math.sqrt(float(a @ a))


def _layer_of(weight, k):
    """The layer part of a weight's name ("lstm_1/kernel" -> "lstm_1")."""
    name = weight.name or f"weight_{k}"
    return name.rsplit("/", 1)[0] if "/" in name else name


def _all_layers(model):
    """Every layer under ``model``, depth first (a nested model's own layers included)."""
    out, stack = [], list(reversed(model.layers))
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(reversed(getattr(layer, "layers", None) or []))
    return out


class _Running:
    """One weight's (or layer's) figures over an epoch's batches: sums for the means, and the last values."""

    def __init__(self):
        self.grad_sum, self.grad_n, self.grad_last = 0.0, 0, math.nan
        self.ratio_sum, self.ratio_n, self.ratio_last = 0.0, 0, math.nan

    def add(self, g2, dw2, w2):
        """One step: ||g||^2, ||w_after - w_before||^2 and ||w_before||^2 (the last two None if unknown)."""
        self.grad_last = math.sqrt(g2)
        self.grad_sum += self.grad_last
        self.grad_n += 1
        self.ratio_last = math.sqrt(dw2 / w2) if w2 else math.nan      # no ratio for w_before = 0 or unknown
        if w2:
            self.ratio_sum += self.ratio_last
            self.ratio_n += 1

    def summary(self):
        return {"grad_norm": self.grad_sum / self.grad_n if self.grad_n else math.nan,
                "grad_norm_last": self.grad_last,
                "update_ratio": self.ratio_sum / self.ratio_n if self.ratio_n else math.nan,
                "update_ratio_last": self.ratio_last}


class GradientHealth(Callback):
    """Record gradient norms, update ratios, dead ReLUs and per-time-step gradients (module docstring).

    Arguments:
        probe: None, or a tuple (x, y): the batch for the dead-ReLU fraction and the
            per-time-step gradient norms. Without it only the training-batch figures
            (gradient norms, update ratios) are recorded.
        probe_loss: "all" (the model's loss on every output, as in training) or "last"
            (the loss on the last time step of a sequence output only).

    After ``fit``: ``records`` is a list with one dict per epoch::

        {"epoch": 0,
         "weights": {"lstm/kernel": {"grad_norm": .., "grad_norm_last": ..,
                                     "update_ratio": .., "update_ratio_last": ..}, ...},
         "layers": {"lstm": {the same four keys, over the layer's weights together}, ...},
         "dead_relu": {"dense": 0.25, ...},            # probe only
         "dh_norm": {"lstm": [T floats], ...}}         # probe only

    and ``history`` the same figures as lists over the epochs:
    ``history["grad_norm"]["lstm/kernel"]`` (likewise every key of a weight's record),
    ``history["layer_grad_norm"]["lstm"]`` (and ``layer_grad_norm_last``,
    ``layer_update_ratio``, ``layer_update_ratio_last``), ``history["dead_relu"]["dense"]``,
    ``history["dh_norm"]["lstm"]`` (a list of T-long lists). ``plot(path=None)`` draws them.
    """

    def __init__(self, probe=None, probe_loss="all"):
        super().__init__()
        if probe is not None and not (isinstance(probe, (tuple, list)) and len(probe) == 2):
            size = f" of {len(probe)} items" if isinstance(probe, (tuple, list)) else ""
            raise TypeError(f"GradientHealth: probe must be None or a tuple (x, y) of one batch, got a "
                            f"{type(probe).__name__}{size}")
        if probe_loss not in ("all", "last"):
            raise ValueError(f"GradientHealth: probe_loss must be 'all' or 'last', got {probe_loss!r}")
        self.probe, self.probe_loss = probe, probe_loss
        self.records, self.history = [], {}

    # ------------------------------------------------------- training batches
    def on_train_begin(self, logs=None):
        self.records, self.history = [], {}
        self._weights, self._names, self._layers = [], [], {}

    def _collect_weights(self):
        """The trainable weights, their names, and {layer: weight positions} (a model builds on its first batch)."""
        self._weights = list(self.model.trainable_weights)
        self._names = [w.name or f"weight_{k}" for k, w in enumerate(self._weights)]
        self._layers = {}
        for k, w in enumerate(self._weights):
            self._layers.setdefault(_layer_of(w, k), []).append(k)

    def on_epoch_begin(self, epoch, logs=None):
        self._running = {}   # weight or layer name -> _Running, this epoch's batches

    def on_train_batch_begin(self, batch, logs=None):
        if not self._weights:
            self._collect_weights()
        self._before = [w.data.copy() for w in self._weights]

    def on_train_batch_end(self, batch, logs=None):
        if not self._weights:      # the model built its weights in this batch's forward: no "before" copy
            self._collect_weights()
            self._before = [None] * len(self._weights)
        squares = {}   # weight position -> (||g||^2, ||w_after - w_before||^2 or None, ||w_before||^2 or None)
        for k, (w, before) in enumerate(zip(self._weights, self._before)):
            if w.grad is None:
                continue
            if before is None:
                squares[k] = (_norm(w.grad) ** 2, None, None)
            else:
                squares[k] = (_norm(w.grad) ** 2, _norm(np.asarray(w.data, np.float64) - before) ** 2,
                              _norm(before) ** 2)
            self._running.setdefault(self._names[k], _Running()).add(*squares[k])
        for layer, ks in self._layers.items():
            parts = [squares[k] for k in ks if k in squares]
            if parts:
                known = all(p[1] is not None for p in parts)
                self._running.setdefault(layer, _Running()).add(
                    sum(p[0] for p in parts), sum(p[1] for p in parts) if known else None,
                    sum(p[2] for p in parts) if known else None)
        self._before = None

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch,
                  "weights": {name: self._running.get(name, _Running()).summary() for name in self._names},
                  "layers": {layer: self._running.get(layer, _Running()).summary() for layer in self._layers}}
        if self.probe is not None:
            record.update(self.measure_probe())
        self.records.append(record)
        self._extend_history(record)

    def _extend_history(self, record):
        h = self.history
        for name, figures in record["weights"].items():
            for key in _WEIGHT_KEYS:
                h.setdefault(key, {}).setdefault(name, []).append(figures[key])
        for layer, figures in record["layers"].items():
            for key in _WEIGHT_KEYS:
                h.setdefault("layer_" + key, {}).setdefault(layer, []).append(figures[key])
        for key in ("dead_relu", "dh_norm"):
            for layer, value in record.get(key, {}).items():
                h.setdefault(key, {}).setdefault(layer, []).append(value)

    # ------------------------------------------------------------ probe batch
    def measure_probe(self, model=None):
        """{"dead_relu": {layer: fraction}, "dh_norm": {layer: [T floats]}} on the probe batch, now.

        One forward (inference mode) and one backward of the probe's loss; the weights'
        ``.grad`` are put back as they were, the weights are not changed. ``model``
        defaults to the model being trained.
        """
        model = self.model if model is None else model
        if self.probe is None:
            raise ValueError("GradientHealth.measure_probe: no probe batch; construct the callback with "
                             "GradientHealth(probe=(x, y))")
        if model is None:
            raise ValueError("GradientHealth.measure_probe: no model; pass one, or use the callback in fit()")
        x, y = self.probe
        weights = model.trainable_weights
        grads = [w.grad for w in weights]
        relu_layers = [layer for layer in _all_layers(model) if self._is_relu(layer)]
        outputs = {}
        try:
            for layer in relu_layers:
                self._capture(layer, outputs)
            y_pred = model(x, training=False)
        finally:
            for layer in relu_layers:
                layer.__dict__.pop("call", None)
        y = np.asarray(y)
        if self.probe_loss == "last":
            if y_pred.ndim < 3:
                raise ValueError(f"GradientHealth: probe_loss='last' needs a sequence output (batch, time, ...), "
                                 f"but {model.name} gives shape {y_pred.shape}; use probe_loss='all'")
            y_pred, y = y_pred[:, -1], y[:, -1]
        loss = model.compute_loss(y, y_pred)
        recorded = {}
        for fn in _topological_order(loss) if loss.creator is not None else []:
            if isinstance(fn, RECURRENT_NODES) and fn.inputs[0] is not None:
                N, T = fn.inputs[0].shape[:2]
                fn.record_dh = np.zeros((N, T, fn.inputs[2].shape[0]), fn.inputs[2].dtype)
                name = fn.layer or type(fn).__name__
                while name in recorded:
                    name += "'"
                recorded[name] = fn.record_dh
        try:
            for w in weights:
                w.grad = None
            if loss.requires_grad:
                loss.backward()
        finally:
            for w, g in zip(weights, grads):
                w.grad = g
        dead = {name: float(np.all(out.reshape(-1, out.shape[-1]) == 0, axis=0).mean())
                for name, out in outputs.items()}
        dh_norm = {name: [float(v) for v in np.sqrt(np.square(dh, dtype=np.float64).sum(axis=2)).mean(axis=0)]
                   for name, dh in recorded.items()}
        return {"dead_relu": dead, "dh_norm": dh_norm}

    @staticmethod
    def _is_relu(layer):
        from .. import activations
        return getattr(layer, "activation", None) is activations.relu

    @staticmethod
    def _capture(layer, outputs):
        """Shadow ``layer.call`` for one probe pass, keeping its output array in ``outputs[layer.name]``."""
        call = layer.call

        def capturing_call(*args, **kwargs):
            y = call(*args, **kwargs)
            outputs[layer.name] = np.asarray(getattr(y, "data", y))
            return y

        layer.__dict__["call"] = capturing_call

    # -------------------------------------------------------------- picture
    def plot(self, path=None):
        """A Figure of four panels (and a PNG at ``path`` when given):

        gradient norm per layer over the epochs (mean over each epoch's batches, log scale);
        update / weight norm ratio per layer (log scale); dead-ReLU fraction per relu layer
        on the probe batch; ||dL/dh_t|| per time step for each recurrent layer on the probe
        batch as log10 (the norms may span tens of decades), after the last epoch (solid)
        and after the first (dashed, when they differ).
        """
        from .. import plot as nbplot
        if not self.records:
            raise ValueError("GradientHealth.plot: nothing recorded yet; pass the callback to "
                             "model.fit(..., callbacks=[health]) first")
        fig = nbplot.new_figure((11, 8))
        axes = [fig.add_subplot(2, 2, k + 1) for k in range(4)]
        epochs = [r["epoch"] + 1 for r in self.records]
        self._plot_over_epochs(axes[0], epochs, self.history.get("layer_grad_norm", {}),
                               "gradient norm ||dL/dw|| per layer\n(mean over the epoch's batches)", log=True)
        self._plot_over_epochs(axes[1], epochs, self.history.get("layer_update_ratio", {}),
                               "update ratio ||w_after - w_before|| / ||w_before||\n(mean over the epoch's steps)",
                               log=True)
        no_probe = "no probe batch: GradientHealth(probe=(x, y)) records this"
        dead = self.history.get("dead_relu", {})
        self._plot_over_epochs(axes[2], epochs, dead, "dead-ReLU fraction on the probe batch\n"
                               "(units 0 for every sample)", log=False,
                               empty=no_probe if self.probe is None else "no relu layer in the model")
        if dead:
            axes[2].set_ylim(-0.02, 1.02)
        self._plot_time_steps(axes[3], no_probe)
        for ax in axes:
            nbplot.plain_tick_labels(ax)
        fig.suptitle(f"gradient health of {getattr(self.model, 'name', 'the model')}")
        fig.tight_layout()
        return nbplot.save_figure(fig, path)

    @staticmethod
    def _plot_over_epochs(ax, epochs, series, title, log, empty="nothing recorded"):
        from matplotlib.ticker import MaxNLocator
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        drawn = False
        for name, values in series.items():
            values = np.asarray(values, dtype=float)
            if log and not (values > 0).any():
                continue
            ax.plot(epochs, values, marker="o", markersize=3, label=name)
            drawn = True
        if not drawn:
            ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, fontsize=9)
            return
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)

    def _plot_time_steps(self, ax, no_probe):
        where = "every step" if self.probe_loss == "all" else "the last step only"
        ax.set_title(f"||dL/dh_t|| per time step on the probe batch\n(loss on {where}; mean over the batch)",
                     fontsize=10)
        ax.set_xlabel("time step t (processing order)")
        ax.set_ylabel("log10 ||dL/dh_t||")
        series = self.history.get("dh_norm", {})
        if not series:
            ax.text(0.5, 0.5, no_probe if self.probe is None else "no recurrent layer in the model",
                    ha="center", va="center", transform=ax.transAxes, fontsize=9)
            return
        last, first = self.records[-1]["epoch"] + 1, self.records[0]["epoch"] + 1
        for k, (name, curves) in enumerate(series.items()):
            color = f"C{k}"
            steps = np.arange(1, len(curves[-1]) + 1)
            with np.errstate(divide="ignore"):     # log10(0) = -inf: matplotlib leaves the point out
                ax.plot(steps, np.log10(curves[-1]), color=color, marker="o", markersize=3,
                        label=f"{name}, epoch {last}")
                if len(curves) > 1:
                    ax.plot(steps, np.log10(curves[0]), color=color, linestyle="--", alpha=0.6,
                            label=f"{name}, epoch {first}")
        ax.legend(fontsize=8)
