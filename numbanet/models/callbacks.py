"""Callbacks: hooks the training loop calls at the start and end of training,
epochs and batches. ``logs`` is the dict of figures so far (``loss``, metrics,
``val_*``)."""
from __future__ import annotations

import collections.abc
import csv
import inspect
import math
import os
import warnings

import numpy as np

from ..utils import check_number


class Callback:
    def __init__(self):
        self.model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None): ...

    def on_train_batch_end(self, batch, logs=None): ...


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]`` is a list, one value per epoch."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _mode_better(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return np.greater if mode == "max" else np.less, mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights=True`` the weights of the best epoch are put back
    when training ends, as Keras 3 does (whether or not it stopped early).
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.baseline, self.restore_best_weights, self.start_from_epoch = baseline, restore_best_weights, start_from_epoch
        self.better, self.mode = _mode_better(mode, monitor)
        self.min_delta = abs(min_delta) if self.mode == "max" else -abs(min_delta)

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = self.baseline if self.baseline is not None else (-np.inf if self.mode == "max" else np.inf)
        self.best_weights = None

    def _improves(self, current, reference):
        return self.better(current - self.min_delta, reference)

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: monitored value {self.monitor!r} is not in the logs "
                          f"(available: {', '.join(logs or {})})", RuntimeWarning, stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class ModelCheckpoint(Callback):
    """Save the weights after each epoch (or only when ``monitor`` improves).

    ``filepath`` may hold format fields, e.g. ``"w-{epoch:02d}-{val_loss:.3f}.npz"``.
    Files are written atomically (see ``Model.save_weights``).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto",
                 save_weights_only=True):
        super().__init__()
        self.filepath, self.monitor, self.verbose, self.save_best_only = str(filepath), monitor, verbose, save_best_only
        self.better, self.mode = _mode_better(mode, monitor)
        self.best = -np.inf if self.mode == "max" else np.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                raise ValueError(f"ModelCheckpoint: monitored value {self.monitor!r} is not in the logs "
                                 f"(available: {sorted(logs)})")
            if not self.better(current, self.best):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        self.model.save_weights(path)


class EpochProgressBar(Callback):
    """One progress bar over all epochs (for long runs of tiny models, where a bar per
    epoch would print thousands of lines), plus a kept line every ``every`` epochs."""

    def __init__(self, epochs, every=None):
        super().__init__()
        from .progress import ProgressBar
        self.bar = ProgressBar(epochs, verbose=1, interval=0.1, unit="epoch")
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        keep = self.every and (epoch + 1) % self.every == 0 and epoch + 1 < self.bar.total
        if keep:
            self.bar.last_draw = 0.0  # draw this epoch whatever the redraw interval
        self.bar.update(epoch + 1, logs or {})
        if keep:
            self.bar.stream.write("\n")
            self.bar.last_len = 0

    def on_train_end(self, logs=None):
        self.bar.stream.write("\n")
        self.bar.stream.flush()


# ------------------------------------------------------------------ learning-rate callbacks, CSV log
def _current_rate(model):
    return float(model.optimizer.learning_rate)


class LearningRateScheduler(Callback):
    """At the start of each epoch set the learning rate to ``schedule(epoch, lr)``.

    ``epoch`` counts from 0 and ``lr`` is the optimizer's current rate; a
    ``schedule(epoch)`` of one argument is called with the epoch alone. The result
    must be a float (Python or NumPy), as Keras requires. At each epoch's end the
    rate is written to the logs as ``learning_rate`` (so ``history.history`` has it).
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function schedule(epoch, lr) -> lr, "
                            f"got the {type(schedule).__name__} {schedule!r}")
        self.schedule, self.verbose = schedule, verbose
        self._two_args = _takes_two_arguments(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        lr = _current_rate(self.model)
        new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        if isinstance(new, (bool, np.bool_)) or not isinstance(new, (float, np.floating)):
            raise ValueError(f"LearningRateScheduler: the schedule must return a float, got the "
                             f"{type(new).__name__} {new!r} for epoch {epoch} (lr {lr}); return e.g. float(...)")
        if not float(new) > 0:
            raise ValueError(f"LearningRateScheduler: the schedule returned the learning rate {float(new)} for "
                             f"epoch {epoch}; a learning rate must be > 0")
        self.model.optimizer.learning_rate = float(new)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {new}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _current_rate(self.model)


def _takes_two_arguments(fn):
    """Whether ``fn(epoch, lr)`` is a valid call (else ``fn(epoch)`` is used, Keras's older form)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):   # a builtin without a signature: try the two-argument form
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


_UP_METRICS = ("accuracy", "acc", "auc", "precision", "recall")
_DOWN_METRICS = ("mse", "mae", "mean_squared_error", "mean_absolute_error", "crossentropy")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving, Keras 3's rule.

    At each epoch's end: the current rate goes into the logs as ``learning_rate``;
    then, if a cooldown is running it counts down (and the wait restarts); a value
    better than the best by more than ``min_delta`` becomes the best and resets the
    wait; otherwise, outside a cooldown, the wait grows, and when it reaches
    ``patience`` the rate becomes ``max(lr * factor, min_lr)`` (only if lr > min_lr),
    the wait restarts and a cooldown of ``cooldown`` epochs begins.

    ``mode="auto"`` minimises losses and errors and maximises accuracies; for other
    names pass ``mode="min"`` or ``"max"``.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        owner = "ReduceLROnPlateau"
        if not isinstance(monitor, str):
            raise TypeError(f"{owner}: monitor must be a name such as 'val_loss', got {monitor!r}")
        check_number(owner, "factor", factor)
        if not 0 < factor < 1:
            raise ValueError(f"{owner}: factor must be in (0, 1) (the new rate is lr * factor), got factor={factor}"
                             + ("; to raise the rate use a LearningRateScheduler" if factor >= 1 else ""))
        check_number(owner, "patience", patience, integer=True, at_least=0)
        check_number(owner, "cooldown", cooldown, integer=True, at_least=0)
        check_number(owner, "min_lr", min_lr, at_least=0)
        check_number(owner, "min_delta", min_delta)
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.mode, self.min_delta, self.cooldown, self.min_lr = mode, abs(min_delta), cooldown, min_lr
        self.monitor_op = None
        self._reset()

    def _reset(self):
        self.best, self.cooldown_counter, self.wait = None, 0, 0

    def _set_monitor_op(self):
        mode = self.mode
        if mode == "auto":
            name = self.monitor.removeprefix("val_")
            if name.endswith("loss") or name in _DOWN_METRICS or name.endswith(_DOWN_METRICS):
                mode = "min"
            elif name in _UP_METRICS or name.endswith(_UP_METRICS):
                mode = "max"
            else:
                raise ValueError(f"ReduceLROnPlateau: cannot tell whether {self.monitor!r} should fall or rise; "
                                 f"pass mode='min' or mode='max'")
        self.monitor_op = np.less if mode == "min" else np.greater
        self.signed_delta = -self.min_delta if mode == "min" else self.min_delta

    def _is_improvement(self, current):
        return self.best is None or bool(self.monitor_op(current - self.signed_delta, self.best))

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = _current_rate(self.model)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: the monitored value {self.monitor!r} is not in the logs "
                          f"(available: {', '.join(logs)})", RuntimeWarning, stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self, epoch):
        old = _current_rate(self.model)
        if not old > self.min_lr:
            return False
        new = max(old * self.factor, self.min_lr)
        self.model.optimizer.learning_rate = new
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
        return True


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file, as Keras 3 does.

    The columns are ``epoch`` (from 0) and the sorted names of the first epoch's
    logs; when those hold no ``val_*`` name, a ``val_`` column is added for each
    (filled with ``NA``, as Keras writes them). ``append=True`` continues an
    existing file (without a second header when it is not empty).
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"CSVLogger: filename must be a path, got the {type(filename).__name__} {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.filename, self.sep, self.append = os.fspath(filename), separator, _check_bool("CSVLogger", "append",
                                                                                          append)
        self.keys, self.writer, self.csv_file, self.append_header = None, None, None, True

    def on_train_begin(self, logs=None):
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as f:
                self.append_header = not f.readline()
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w")
        self.keys, self.writer = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(v):
            if isinstance(v, str):
                return v
            if isinstance(v, collections.abc.Iterable) and not (isinstance(v, np.ndarray) and v.ndim == 0):
                return f'"[{", ".join(map(str, v))}]"'
            return v

        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            dialect = type("CSVLoggerDialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, handle_value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _check_bool(owner, arg, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {arg} must be True or False, got the {type(value).__name__} {value!r}")
    return bool(value)
