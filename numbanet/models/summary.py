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


def _calls(model):
    """A functional model's layer calls as [(layer, parents)], each call once (a tuple output is one call)."""
    calls, seen = [], set()
    for layer, parents, _ in model._nodes:
        key = (id(layer), tuple(id(p) for p in parents))
        if key not in seen:
            seen.add(key)
            calls.append((layer, parents))
    return calls


def _sequential_like(model):
    """Whether a functional model is one chain (one input, each layer called once, on the previous
    call's output): Keras then prints three columns; otherwise it adds "Connected to"."""
    if getattr(model, "_nodes", None) is None:
        return True
    if len(model._input_symbols) > 1:
        return False
    previous, layers = None, set()
    for layer, parents in _calls(model):
        x = parents[0]
        follows = x is model._input_symbols[0] if previous is None else (x.layer, x.parents) == previous
        if id(layer) in layers or len(parents) != 1 or not follows:
            return False
        layers.add(id(layer))
        previous = (layer, parents)
    return True


def _connections(model):
    """Keras's "Connected to" text per layer: ``<inbound layer>[<its call>][<tensor index>]`` for each call."""
    out = {}
    for layer, parents in _calls(model):
        text = ", ".join(f"{p.layer.name}[{p.node_index}][{p.index or 0}]" for p in parents)
        out[id(layer)] = f"{out[id(layer)]}, {text}" if id(layer) in out else text
    return out


def print_summary(model, print_fn=print):
    _require_built(model)
    connected = None if _sequential_like(model) else _connections(model)
    rows = [(f"{layer.name} ({type(layer).__name__})", _shape_text(layer), f"{layer.count_params():,}")
            + (() if connected is None else (connected.get(id(layer), "-"),))
            for layer in model.layers]
    widths = [max(31, *(len(r[0]) + 2 for r in rows)) if rows else 31, 24, 15]
    widths[1] = max(widths[1], *(len(r[1]) + 2 for r in rows)) if rows else widths[1]
    if connected is not None:
        widths.append(max(20, *(len(r[3]) + 2 for r in rows)))
    align = ["<", "<", ">", "<"]

    def line(left, mid, right, fill="━"):
        return left + mid.join(fill * w for w in widths) + right

    def row(*cells, bar="│"):
        return bar + bar.join(f" {c:{a}{w - 2}} " for c, a, w in zip(cells, align, widths)) + bar

    header = ("Layer (type)", "Output Shape", "Param #") + (() if connected is None else ("Connected to",))
    out = [f'Model: "{model.name}"', line("┏", "┳", "┓"),
           row(*header, bar="┃"), line("┡", "╇", "┩")]
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
