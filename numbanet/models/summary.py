"""``model.summary()``: each layer, its output shape and parameter count, and totals (Keras 3's table)."""
from __future__ import annotations

from ..layers.base import fmt_shape


def _size(n_params, dtype_bytes=4):
    b = n_params * dtype_bytes
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:.2f} {unit}"
        b /= 1024


def _shape_text(layer):
    shape = layer.output_shape
    if shape is None:
        return "?"
    if shape and isinstance(shape[0], tuple):
        return ", ".join(fmt_shape(s) for s in shape)
    return fmt_shape(shape)


def _require_built(model):
    """A model's table needs its shapes and weights: say how to build it when it has none yet."""
    if model.built:
        return
    raise ValueError(
        f"{model.name}: summary() needs the model built, and it is not: its layers have no input shape yet, "
        f"so they have no weights, output shapes or parameter counts to show. Build it first, in one of "
        f"these ways: model.build((None, F)), the shape of a batch of inputs with None for the batch size "
        f"and F features per sample, e.g. model.build((None, 1)); give the first layer its input shape, "
        f"e.g. Dense(10, input_shape=(1,)); start a Sequential with Input(shape=(1,)); or call the model "
        f"once on a batch of data, e.g. model(x[:1]).")


def print_summary(model, print_fn=print):
    _require_built(model)
    rows = [(f"{layer.name} ({type(layer).__name__})", _shape_text(layer), f"{layer.count_params():,}")
            for layer in model.layers]
    widths = [max(31, *(len(r[0]) + 2 for r in rows)) if rows else 31, 24, 15]
    widths[1] = max(widths[1], *(len(r[1]) + 2 for r in rows)) if rows else widths[1]

    def line(left, mid, right, fill="━"):
        return left + mid.join(fill * w for w in widths) + right

    def row(a, b, c, bar="│"):
        return f"{bar} {a:<{widths[0] - 2}} {bar} {b:<{widths[1] - 2}} {bar} {c:>{widths[2] - 2}} {bar}"

    out = [f'Model: "{model.name}"', line("┏", "┳", "┓"),
           row("Layer (type)", "Output Shape", "Param #", "┃"), line("┡", "╇", "┩")]
    for i, r in enumerate(rows):
        out.append(row(*r))
        if i < len(rows) - 1:
            out.append(line("├", "┼", "┤", "─"))
    out.append(line("└", "┴", "┘", "─"))
    weights = model.weights
    total = sum(w.size for w in weights)
    trainable = sum(w.size for w in weights if w.requires_grad)
    itemsize = weights[0].dtype.itemsize if weights else 4
    out += [f" Total params: {total:,} ({_size(total, itemsize)})",
            f" Trainable params: {trainable:,} ({_size(trainable, itemsize)})",
            f" Non-trainable params: {total - trainable:,} ({_size(total - trainable, itemsize)})"]
    for text in out:
        print_fn(text)
