"""The workloads in PyTorch (CPU), with its idiomatic loop: zero_grad, forward, loss, backward, step.

Images are NCHW (torch's native layout) with the same sizes as the NHWC arrays of
the other frameworks. Initialisation is set explicitly to Keras's defaults:
xavier_uniform_ (= glorot_uniform) kernels, zero biases (both of nn.RNN's biases),
orthogonal_ recurrent weights, uniform_(-0.05, 0.05) embeddings. "same" 3x3
convolutions pad 1; "same" 2x2 pooling is ``ceil_mode=True`` (the extra row/column
at the bottom/right, as TensorFlow pads). Adam and Adadelta get Keras's epsilon 1e-7.
"""
from __future__ import annotations

import numpy as np

FRAMEWORK = "torch"


def version():
    import torch
    return f"torch {torch.__version__}"



def build_model(spec, seed=0):
    import torch
    from torch import nn
    torch.manual_seed(seed)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    mods = []
    shape = spec["input"]
    images = len(shape) == 3
    if images:
        shape = (shape[2], shape[0], shape[1])              # (H, W, C) -> (C, H, W)
    for layer in spec["layers"]:
        kind = layer[0]
        if kind == "dense":
            mods.append(nn.Linear(shape[-1], layer[1]))
            shape = shape[:-1] + (layer[1],)
            if layer[2]:
                mods.append(act[layer[2]]())
        elif kind in ("conv", "convT"):
            C, H, W = shape
            k, pad = layer[2], layer[4]
            if kind == "conv":
                mods.append(nn.Conv2d(C, layer[1], k, padding=(k // 2 if pad == "same" else 0)))
                H, W = (H, W) if pad == "same" else (H - k + 1, W - k + 1)
            else:
                assert pad == "valid"
                mods.append(nn.ConvTranspose2d(C, layer[1], k))
                H, W = H + k - 1, W + k - 1
            shape = (layer[1], H, W)
            if layer[3]:
                mods.append(act[layer[3]]())
        elif kind == "pool":
            C, H, W = shape
            s, same = layer[1], layer[2] == "same"
            mods.append(nn.MaxPool2d(s, ceil_mode=same))
            shape = (C, -(-H // s), -(-W // s)) if same else (C, H // s, W // s)
        elif kind == "up":
            C, H, W = shape
            mods.append(nn.Upsample(scale_factor=layer[1], mode="nearest"))
            shape = (C, H * layer[1], W * layer[1])
        elif kind == "flatten":
            mods.append(nn.Flatten())
            shape = (int(np.prod(shape)),)
        elif kind == "embed":
            mods.append(nn.Embedding(layer[1], layer[2]))
            shape = shape + (layer[2],)
        elif kind == "rnn":
            mods.append(_RNN(shape[-1], layer[1]))
            shape = shape[:-1] + (layer[1],)
        elif kind == "lstm":
            mods.append(_RNN(shape[-1], layer[1], cell="lstm"))
            shape = shape[:-1] + (layer[1],)
        else:
            raise ValueError(kind)
    model = nn.Sequential(*mods)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.uniform_(m.weight, -0.05, 0.05)
            elif isinstance(m, (nn.RNN, nn.LSTM)):
                # Keras inits the whole (in, 4U) kernel and (U, 4U) recurrent kernel as one
                # matrix each; torch's weights are their transposes, gates i, f, g, o as Keras's
                nn.init.xavier_uniform_(m.weight_ih_l0)
                nn.init.orthogonal_(m.weight_hh_l0)
                nn.init.zeros_(m.bias_ih_l0)
                nn.init.zeros_(m.bias_hh_l0)
                if isinstance(m, nn.LSTM):                 # Keras's unit_forget_bias
                    U = m.hidden_size
                    m.bias_ih_l0[U:2 * U] = 1.0
    name, lr = spec["optimizer"]
    params = model.parameters()
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=lr),
           "adam": lambda: torch.optim.Adam(params, lr=lr, eps=1e-7),
           "adadelta": lambda: torch.optim.Adadelta(params, lr=lr, rho=0.95, eps=1e-7)}[name]()
    loss_fn = {"mse": nn.MSELoss(), "bce": nn.BCELoss(), "sparse_ce_logits": nn.CrossEntropyLoss()}[spec["loss"]]
    return model, opt, loss_fn, images


def _RNN(D, U, cell="rnn"):
    import torch
    from torch import nn

    class RNN(nn.Module):
        """nn.RNN / nn.LSTM returning just the output sequence (batch_first), so it fits in nn.Sequential."""

        def __init__(self):
            super().__init__()
            self.rnn = (nn.LSTM(D, U, batch_first=True) if cell == "lstm"
                        else nn.RNN(D, U, nonlinearity="tanh", batch_first=True))

        def forward(self, x):
            return self.rnn(x)[0]
    return RNN()


def _tensors(spec, x, y, images):
    import torch
    X = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if images else x)
    Y = torch.from_numpy(np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if images and y.ndim == 4 else y)
    return X, Y


def _step_fn(spec, model, opt, loss_fn):
    def step(xb, yb):
        opt.zero_grad()
        out = model(xb)
        if spec["data"] == "tokens":                       # (N, T, V) logits vs (N, T) ids
            loss = loss_fn(out.reshape(-1, out.shape[-1]), yb.reshape(-1))
        else:
            loss = loss_fn(out, yb)
        loss.backward()
        opt.step()
        return loss
    return step


def build(spec, x, y, variant="torch"):
    import torch
    model, opt, loss_fn, images = build_model(spec)
    X, Y = _tensors(spec, x, y, images)
    step = _step_fn(spec, model, opt, loss_fn)
    batch, n = spec["batch"], len(x)
    model.train()

    def run(epochs):
        loss = None
        for _ in range(epochs):
            order = torch.randperm(n)
            for start in range(0, n, batch):
                idx = order[start:start + batch]
                loss = step(X[idx], Y[idx])
        return float(loss)
    return run


def first_step(spec, x, y):
    model, opt, loss_fn, images = build_model(spec)
    X, Y = _tensors(spec, x[:spec["batch"]], y[:spec["batch"]], images)
    step = _step_fn(spec, model, opt, loss_fn)
    return model, (lambda: float(step(X, Y)))
