"""BatchNormalization (Keras 3's names, defaults, weights and update rule)."""
from __future__ import annotations

import numpy as np

from .. import utils
from ..engine import functional as F
from .base import Layer, fmt_shape


class BatchNormalization(Layer):
    """Normalize each channel (the ``axis``) over the batch, then scale and shift it.

    Training (``fit``, or a call with ``training=True``, on a trainable layer) uses the
    batch's statistics over every axis but ``axis`` (M values per channel) and updates the
    moving ones, as Keras does::

        mean = (1/M) sum x,   var = (1/M) sum (x - mean)^2           (biased variance)
        y    = gamma (x - mean) / sqrt(var + epsilon) + beta
        moving_mean     = moving_mean * momentum + mean * (1 - momentum)
        moving_variance = moving_variance * momentum + var * (1 - momentum)

    Inference (``evaluate``, ``predict``, ``model(x)``, or a frozen layer,
    ``trainable=False``) uses the moving statistics::

        y = gamma (x - moving_mean) / sqrt(moving_variance + epsilon) + beta

    Shape: any input of rank >= 2 with C = input_shape[axis] channels -> the same shape
    (Dense outputs (N, C), conv maps (N, H, W, C), or channels on another axis).
    Attributes, in Keras's weight order: gamma (C,) from ``gamma_initializer`` (ones) if
    ``scale``, beta (C,) from ``beta_initializer`` (zeros) if ``center`` (both trainable);
    moving_mean (C,) (zeros) and moving_variance (C,) (ones), non-trainable: no gradient,
    no optimizer step, but in ``weights``, ``get_weights`` and weight files.

    ``gamma_regularizer=``, ``beta_regularizer=``, ``activity_regularizer=``: penalties in
    ``losses`` (``numbanet.regularizers``). The constraint and renorm arguments are accepted
    with their defaults (None, False), so Keras configurations load; other values are refused.
    """

    regularized_weights = {"gamma": "gamma_regularizer", "beta": "beta_regularizer"}

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_constraint=None, gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{self.name}: axis must be an integer (the channel axis, e.g. -1), got {axis!r}")
        self.axis = int(axis)
        if self.axis == 0:
            raise ValueError(f"{self.name}: axis 0 is the batch axis; give the channel axis, e.g. -1 (the last)")
        self.momentum = float(utils.check_number(self.name, "momentum", momentum, at_least=0, at_most=1))
        self.epsilon = float(utils.check_number(self.name, "epsilon", epsilon, above=0))
        for arg, value in (("center", center), ("scale", scale), ("renorm", renorm), ("synchronized", synchronized)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{self.name}: {arg} must be True or False, got {value!r}")
        self.center, self.scale, self.synchronized = bool(center), bool(scale), bool(synchronized)
        self.beta_initializer = self.check_initializer("beta_initializer", beta_initializer)
        self.gamma_initializer = self.check_initializer("gamma_initializer", gamma_initializer)
        self.moving_mean_initializer = self.check_initializer("moving_mean_initializer", moving_mean_initializer)
        self.moving_variance_initializer = self.check_initializer("moving_variance_initializer",
                                                                  moving_variance_initializer)
        for arg, value in (("beta_constraint", beta_constraint), ("gamma_constraint", gamma_constraint)):
            if value is not None:
                raise ValueError(f"{self.name}: {arg} is not supported by numbanet's BatchNormalization; "
                                 f"leave it None, got {value!r}")
        if renorm:
            raise ValueError(f"{self.name}: renorm=True (batch renormalization) is not supported; leave it False")
        self.beta_constraint = self.gamma_constraint = None
        self.renorm, self.renorm_clipping = False, renorm_clipping
        self.renorm_momentum = float(utils.check_number(self.name, "renorm_momentum", renorm_momentum))
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def validate_input_shape(self, input_shape):
        rank = len(input_shape)
        if rank < 2:
            raise ValueError(f"{self.name}: expected an input of rank >= 2 (batch, ..., channels), got shape "
                             f"{fmt_shape(input_shape)}")
        if not -rank < self.axis < rank:
            raise ValueError(f"{self.name}: axis={self.axis} must name a non-batch axis of the input of shape "
                             f"{fmt_shape(input_shape)}: an axis from 1 to {rank - 1} (or -1 to {1 - rank})")
        C = input_shape[self.axis]
        if self.built and C != self.moving_mean.shape[0]:
            raise ValueError(f"{self.name}: the layer was built for {self.moving_mean.shape[0]} channels on axis "
                             f"{self.axis}, got input of shape {fmt_shape(input_shape)}")

    def build(self, input_shape):
        C = input_shape[self.axis]
        if C is None:
            raise ValueError(f"{self.name}: the channel axis {self.axis} of the input must have a known size, "
                             f"got {fmt_shape(input_shape)}")
        if self.scale:
            self.gamma = self.add_weight("gamma", (C,), self.gamma_initializer)
        if self.center:
            self.beta = self.add_weight("beta", (C,), self.beta_initializer)
        self.moving_mean = self.add_weight("moving_mean", (C,), self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (C,), self.moving_variance_initializer,
                                               trainable=False)

    def call(self, x, training=False, mask=None):
        if not (training and self.trainable):
            return F.batch_normalization(x, self.moving_mean, self.moving_variance, self.axis,
                                         self.beta, self.gamma, self.epsilon)
        if mask is not None:
            raise ValueError(f"{self.name}: the input carries a padding mask (from Embedding(mask_zero=True)); "
                             f"numbanet's BatchNormalization does not compute masked batch statistics. "
                             f"Normalize unmasked inputs, or train without mask_zero")
        if x.size == 0:
            raise ValueError(f"{self.name}: training mode needs at least one value per channel to take the "
                             f"batch's statistics, got an input of shape {tuple(x.shape)}")
        y, mean, var = F.batch_norm(x, self.gamma, self.beta, self.axis, self.epsilon)
        self._update_moving(self.moving_mean, mean)
        self._update_moving(self.moving_variance, var)
        return y

    def _update_moving(self, moving, batch):
        """moving <- moving * momentum + batch * (1 - momentum), in place (Keras's rule)."""
        data = moving.data
        np.multiply(data, self.momentum, out=data)
        data += (batch * (1.0 - self.momentum)).astype(data.dtype, copy=False)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "beta_initializer": self.beta_initializer,
                "gamma_initializer": self.gamma_initializer,
                "moving_mean_initializer": self.moving_mean_initializer,
                "moving_variance_initializer": self.moving_variance_initializer,
                "beta_constraint": None,
                "gamma_constraint": None, "renorm": False, "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum, "synchronized": self.synchronized}
