"""Weight files (``save_weights`` / ``load_weights``, NumPy ``.npz``) and whole-model files (``save`` / ``load_model``).

Weight files: arrays ``w0, w1, ...`` in Keras order, plus ``__names__`` (the
weight names) and ``__format__``. Loading checks the count and every shape
before any weight changes.

Whole-model files (``model.save("m.numbanet")``) are one zip archive:

    numbanet.json   {"format", "numbanet_version", "model": the configuration (``model_config``),
                     "weights": [{"name", "shape", "dtype"}], "compile": the compile settings or null,
                     "optimizer_state": {"iterations", ...} or null}
    weights.npz     w0, w1, ...: every weight, trainable or not, in ``model.weights`` order
    optimizer.npz   "<i>/<slot>": the optimizer's slots of weight i (Adam's m and v, ...)

``nb.models.load_model`` rebuilds the model from its configuration, checks every
weight's count, name and shape against the file, then sets the weights, compiles
with the saved optimizer, loss, loss weights and metrics, and restores the
optimizer's slots and step count, so training resumes exactly where it stopped.
``model.save("m.keras")`` and loading a ``.keras`` file go through ``keras_format``.

Every file is written atomically: under a temporary name in the same folder,
flushed to disk, then renamed over the target (``os.replace``), so a crash
mid-write leaves the old file intact. A load that fails raises before anything
outside the new model changes (numbanet's random generator included).
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from .. import utils

FORMAT = "numbanet-weights-1"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write, suffix=".npz"):
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600); give it a normal file's mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_savez(path, arrays: dict):
    atomic_write(path, lambda f: np.savez(f, **arrays))


class WeightsIO:
    def save_weights(self, filepath):
        """Write every weight to ``filepath`` (.npz), atomically."""
        weights = self.weights
        if not weights:
            raise ValueError(f"{self.name}: the model has no weights yet (build it or call it once first)")
        arrays = {f"w{i}": w.data for i, w in enumerate(weights)}
        arrays["__names__"] = np.array([w.name or "" for w in weights])
        arrays["__format__"] = np.array(FORMAT)
        atomic_savez(filepath, arrays)

    def load_weights(self, filepath):
        """Read weights written by ``save_weights``; the model is unchanged if anything is wrong."""
        path = os.fspath(filepath)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{self.name}.load_weights: no such file {path!r}")
        try:  # np.load raises ValueError for bytes that are neither .npy nor .npz
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            with data:
                if "__format__" not in data.files or str(data["__format__"]) != FORMAT:
                    arrays = None
                else:
                    count = sum(1 for k in data.files if k.startswith("w") and k[1:].isdigit())
                    arrays = [data[f"w{i}"] for i in range(count)]
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, ValueError) as err:
            raise ValueError(f"{self.name}.load_weights: {path!r} is corrupt or not an .npz file ({err})") from None
        if arrays is None:
            raise ValueError(f"{self.name}.load_weights: {path!r} is not a numbanet weight file")
        own = self.weights
        if len(arrays) != len(own):
            raise ValueError(f"{self.name}.load_weights: {path!r} holds {len(arrays)} arrays, "
                             f"the model has {len(own)} weights")
        for i, (w, a) in enumerate(zip(own, arrays)):
            if a.shape != w.shape:
                raise ValueError(f"{self.name}.load_weights: weight {i} ({w.name}) has shape {w.shape}, "
                                 f"the file holds shape {a.shape}")
        self.set_weights(arrays)

    def save(self, filepath, overwrite=True):
        """Write the whole model to one file: ``"m.numbanet"`` (numbanet's format: configuration,
        weights, compile settings, optimizer state) or ``"m.keras"`` (a Keras 3 model file that
        ``keras.models.load_model`` opens). Atomic; ``nb.models.load_model`` reads either."""
        path = os.fspath(filepath)
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{self.name}.save: {path!r} exists and overwrite=False")
        if path.endswith(".keras"):
            from .keras_format import save_keras
            return save_keras(self, path)
        if not path.endswith(MODEL_SUFFIX):
            raise ValueError(f"{self.name}.save: the file name must end in {MODEL_SUFFIX!r} (numbanet's format) or "
                             f"'.keras' (Keras 3's), got {path!r}; save_weights() writes the weights alone")
        save_model(self, path)


# ------------------------------------------------------------------ whole models
MODEL_SUFFIX = ".numbanet"
MODEL_FORMAT = "numbanet-model-1"


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _builtin_metric(fn):
    from .. import metrics as metrics_mod
    return fn is metrics_mod._accuracy_by_shape or any(fn is f for f in metrics_mod._BY_NAME.values())


def compile_to_config(model):
    """The compile settings as JSON: optimizer, one loss / weight / metric list per output."""
    from .. import losses as losses_mod
    from .. import saving
    if model.optimizer is None or model._output_losses is None:
        return None
    names = model._compile_output_names()
    where = f"{model.name}.save: "

    def loss_entry(loss):
        if loss is None:
            return None
        if isinstance(loss, losses_mod.FunctionLoss):
            return saving.to_json(loss.fn, where + "loss: ")
        return saving.serialize(loss, where + "loss: ")

    def metric_entry(output, history_name, fn):
        name = history_name[len(output) + 1:] if len(names) > 1 else history_name
        return name if _builtin_metric(fn) else saving.to_json(fn, where + "metric: ")

    return {"optimizer": saving.serialize(model.optimizer, where + "optimizer: "),
            "loss": [loss_entry(loss) for loss in model._output_losses],
            "loss_weights": list(model._loss_weights),
            "metrics": [[metric_entry(out, m, fn) for m, fn in pairs]
                        for out, pairs in zip(names, model._output_metrics)],
            "output_names": names}


def optimizer_state(model):
    """(JSON state, slot arrays "<weight index>/<slot>") of the compiled model's optimizer.

    The state is the step count and every other number the optimizer keeps outside its
    config (Nadam's running momentum product), so that the next step is the one it would take.
    """
    opt = model.optimizer
    config = opt.get_config()
    extra = {k: v for k, v in vars(opt).items()
             if not k.startswith("_") and k not in config and k not in ("iterations", "slots")
             and isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))}
    state = {"iterations": int(opt.iterations), "attributes": {k: float(v) for k, v in extra.items()}}
    arrays = {}
    for i, w in enumerate(model.weights):
        for slot, a in (opt.slots.get(id(w)) or {}).items():
            arrays[f"{i}/{slot}"] = np.asarray(a)
    return state, arrays


def save_model(model, path):
    """Write ``model`` to ``path`` in numbanet's format (see the module docstring), atomically."""
    from .. import __version__
    from .model_config import model_to_config
    config = model_to_config(model)                 # raises before anything is written
    weights = model.weights
    compiled = compile_to_config(model)
    state, slots = optimizer_state(model) if compiled is not None else (None, {})
    document = {"format": MODEL_FORMAT, "numbanet_version": __version__, "model": config,
                "weights": [{"name": w.name or "", "shape": list(w.shape), "dtype": w.dtype.name} for w in weights],
                "compile": compiled, "optimizer_state": state}
    text = json.dumps(document, indent=1)
    weight_bytes = _npz_bytes({f"w{i}": w.data for i, w in enumerate(weights)})
    slot_bytes = _npz_bytes(slots)

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("numbanet.json", text)
            z.writestr("weights.npz", weight_bytes)
            z.writestr("optimizer.npz", slot_bytes)
    atomic_write(path, write, suffix=MODEL_SUFFIX)


def load_model(filepath, custom_objects=None, compile=True):
    """The model in ``filepath``: numbanet's format or a Keras 3 ``.keras`` file (chosen by content)."""
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_model: no such file {path!r}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"load_model: {path!r} is not a model file: a numbanet (.numbanet) or Keras (.keras) "
                         f"model file is a zip archive ({err})") from None
    with archive:
        members = archive.namelist()
        if "numbanet.json" in members:
            return _load_native(archive, path, custom_objects, compile)
        if "config.json" in members:
            from .keras_format import load_keras
            return load_keras(archive, path, custom_objects, compile)
    raise ValueError(f"load_model: {path!r} is a zip archive but neither a numbanet model file (no numbanet.json) "
                     f"nor a Keras one (no config.json); it holds {members[:5]}")


def _read(archive, path, member):
    try:
        return archive.read(member)
    except KeyError:
        raise ValueError(f"load_model: {path!r} is incomplete: it has no {member}") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
        raise ValueError(f"load_model: {path!r} is corrupt: cannot read {member} ({err})") from None


def _read_npz(archive, path, member):
    raw = _read(archive, path, member)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
        raise ValueError(f"load_model: {path!r} is corrupt: {member} cannot be read ({err})") from None


def _read_json(archive, path, member):
    try:
        return json.loads(_read(archive, path, member))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"load_model: {path!r} is corrupt: {member} is not valid JSON ({err})") from None


class private_random_stream:
    """Inside: numbanet's generator is a throwaway one, so building layers draws nothing from the user's."""

    def __enter__(self):
        self.saved = utils._RNG[0]
        utils._RNG[0] = np.random.default_rng(0)

    def __exit__(self, *exc):
        utils._RNG[0] = self.saved


def _load_native(archive, path, custom_objects, compile):
    from .model_config import check_classes, is_subclassed, model_from_config
    document = _read_json(archive, path, "numbanet.json")
    if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
        raise ValueError(f"load_model: {path!r} is not a numbanet model file of format {MODEL_FORMAT!r} "
                         f"(found {document.get('format') if isinstance(document, dict) else document!r})")
    arrays = _read_npz(archive, path, "weights.npz")
    slots = _read_npz(archive, path, "optimizer.npz") if compile and document.get("compile") else {}
    saved = document["weights"]
    values = [arrays.get(f"w{i}") for i in range(len(saved))]
    if any(v is None for v in values):
        raise ValueError(f"load_model: {path!r} is corrupt: weights.npz holds {len(arrays)} arrays, "
                         f"numbanet.json lists {len(saved)} weights")
    check_classes(document["model"], custom_objects, f"load_model: {path!r}: ")
    with private_random_stream():
        try:
            model = model_from_config(document["model"], custom_objects)
        except (TypeError, ValueError) as err:
            raise type(err)(f"load_model: {path!r}: cannot rebuild the model from its configuration: {err}") from None
        set_checked_weights(model, values, [s["name"] for s in saved], path, by_name=not is_subclassed(model))
        if compile and document.get("compile"):
            compile_from_config(model, document["compile"], custom_objects, path)
            restore_optimizer(model, document.get("optimizer_state") or {}, slots)
    return model


def set_checked_weights(model, values, names, path, by_name=True):
    """Set every weight of ``model`` from ``values`` after checking count, names and shapes (none set on error)."""
    own = model.weights
    if len(values) != len(own):
        raise ValueError(f"load_model: {path!r} holds {len(values)} weights, the rebuilt model "
                         f"{model.name!r} has {len(own)} ({[w.name for w in own]})")
    for w, v, name in zip(own, values, names):
        layer = (w.name or "?").split("/")[0]
        same = (w.name == name) if by_name else (w.name or "").split("/")[-1] == name.split("/")[-1]
        if not same:
            raise ValueError(f"load_model: {path!r}: layer {layer!r} expects weight {w.name!r} here, the file "
                             f"holds {name!r}")
        if tuple(v.shape) != tuple(w.shape):
            raise ValueError(f"load_model: {path!r}: layer {layer!r}, weight {w.name!r} has shape {w.shape}, "
                             f"the file holds shape {tuple(v.shape)}")
    for w, v in zip(own, values):
        w.data = np.array(v, dtype=w.dtype)


def compile_from_config(model, config, custom_objects, path):
    from .. import saving
    where = f"load_model: {path!r}: "
    optimizer = saving.deserialize(config["optimizer"], "optimizer", custom_objects, where + "optimizer: ")

    def loss_of(entry):
        if entry is None or "__function__" in entry:
            return saving.from_json(entry, custom_objects, where + "loss: ")
        return saving.deserialize(entry, "loss", custom_objects, where + "loss: ")

    losses = [loss_of(e) for e in config["loss"]]
    metrics = [[saving.from_json(m, custom_objects, where + "metric: ") for m in ms] for ms in config["metrics"]]
    if len(losses) == 1:
        model.compile(optimizer=optimizer, loss=losses[0], metrics=metrics[0] or None,
                      loss_weights=config["loss_weights"][0])
    else:
        model.compile(optimizer=optimizer, loss=losses, metrics=metrics, loss_weights=config["loss_weights"])


def restore_optimizer(model, state, slots):
    """Put the saved step count, numbers and slots back on the compiled model's optimizer."""
    opt = model.optimizer
    opt.iterations = int(state.get("iterations", 0))
    for k, v in (state.get("attributes") or {}).items():
        setattr(opt, k, v)
    by_weight = {}
    for key, a in slots.items():
        i, slot = key.split("/", 1)
        by_weight.setdefault(int(i), {})[slot] = a
    weights = model.weights
    for i, arrays in sorted(by_weight.items()):
        w = weights[i]
        fresh = opt.create_slots(w.data)
        for slot, a in arrays.items():
            if slot not in fresh or a.shape != w.shape:
                raise ValueError(f"load_model: the optimizer state for weight {w.name!r} has slot {slot!r} of "
                                 f"shape {a.shape}; {type(opt).__name__} keeps {list(fresh)} of shape {w.shape}")
            fresh[slot] = np.array(a, dtype=w.dtype)
        opt.slots[id(w)] = fresh
