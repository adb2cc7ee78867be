"""Optimizers with Keras 3 defaults and update rules, step for step.

Every optimizer updates the weights in place (``w.data``), keeps its per-weight
state ("slots") in ``self.slots[id(w)]``, and counts steps in ``iterations``.
Before the update, gradients are clipped when asked (only one of the three):

  clipvalue        g <- clip(g, -clipvalue, clipvalue)
  clipnorm         g <- g * clipnorm / max(||g||, clipnorm)              (each gradient alone)
  global_clipnorm  g <- g * global_clipnorm / max(||(g_1..g_k)||, global_clipnorm)

With ``weight_decay=`` (any optimizer, as in Keras 3; ``AdamW`` sets it by default),
each weight then decays before the optimizer's own step (decoupled weight decay):

  weight_decay     w <- w - w * weight_decay * lr

``learning_rate`` is a number or a schedule (``numbanet.schedules``, also reached as
``nb.optimizers.schedules``): update number t + 1 uses ``schedule(t)``, t =
``iterations`` before the update, as Keras does.

Each ``update`` is one call of the active tier's update function (``numbanet/reference/
optimizers.py`` has each rule as written in its class docstring; ``numbanet/fast/optimizers.py``
the in-place, thread-split one). Two ways to apply a step: ``apply_gradients(zip(grads, weights))`` as in Keras
(grads are ndarrays), and ``step(weights)``, which uses each Tensor's ``.grad``.
"""
from __future__ import annotations

import re
import sys

import numpy as np

from . import schedules
from .engine import Tensor, tiers
from . import keras_names
from .utils import check_number

# ``from numbanet.optimizers.schedules import ExponentialDecay``, Keras's path, finds the module
sys.modules[__name__ + ".schedules"] = schedules


class SlotError(KeyError):
    """``get_slot`` for a slot the optimizer does not keep: a ``KeyError`` whose text reads plainly."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def _check_flag(owner, arg, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {arg} must be True or False, got the {type(value).__name__} {value!r}")
    return bool(value)


class Optimizer:
    """Base class: clipping, the step counter, slots and the config; subclasses give the update.

    ``get_config()`` returns every constructor argument (the base's and the
    subclass's, listed in its ``_hyper``), so ``type(opt).from_config(opt.get_config())``
    makes an optimizer that takes the same steps (its slots start empty).
    """

    _hyper = ()   # the subclass's own constructor arguments, in signature order

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        owner = type(self).__name__
        given = [k for k, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                ("global_clipnorm", global_clipnorm)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"{owner}: only one of clipnorm, clipvalue and global_clipnorm "
                             f"may be set, got {given}")
        for k in given:
            check_number(owner, k, locals()[k], above=0)
        if weight_decay is not None:
            check_number(owner, "weight_decay", weight_decay, at_least=0)
        if isinstance(learning_rate, dict):   # a serialized schedule, as get_config writes it
            learning_rate = schedules.deserialize(learning_rate)
        if not callable(learning_rate):   # a schedule: lr(iterations) -> float
            check_number(owner, "learning_rate", learning_rate, above=0)  # 0 or less never trains
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{owner}: name must be a str or None, got the {type(name).__name__} {name!r}")
        self._learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self.slots = {}
        self._decay_excluded_ids, self._decay_excluded_pattern = set(), None

    @property
    def learning_rate(self):
        """The rate the next update uses (a float): the number given, or the schedule at ``iterations``.

        Setting it (as Keras's LearningRateScheduler and ReduceLROnPlateau do) takes a
        number > 0 or a new schedule; a number cannot replace a ``LearningRateSchedule``
        given to the constructor (a TypeError, as in Keras).
        """
        return self.current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value):
        owner = type(self).__name__
        if not callable(value):
            if isinstance(self._learning_rate, schedules.LearningRateSchedule):
                raise TypeError(f"{owner}: this optimizer was built with the schedule {self._learning_rate!r} as its "
                                f"learning_rate, so its rate cannot be set to {value!r}; build it with a number "
                                f"learning_rate to set the rate during training")
            check_number(owner, "learning_rate", value, above=0)
        self._learning_rate = value

    # ------------------------------------------------------------------ public
    def apply_gradients(self, grads_and_vars):
        pairs = [(g, w) for g, w in grads_and_vars if g is not None]
        for g, w in pairs:
            if not isinstance(w, Tensor):
                raise TypeError(f"{type(self).__name__}: weights must be Tensors, got {type(w).__name__}")
            if np.shape(g) != w.shape:
                raise ValueError(f"{type(self).__name__}: gradient of shape {np.shape(g)} for weight {w.name} "
                                 f"of shape {w.shape}")
        grads = self._clip([np.asarray(g, dtype=w.dtype) for g, w in pairs])
        self._apply(grads, [w for _, w in pairs])

    def step(self, weights):
        """Apply each weight's ``.grad`` (weights without a gradient are left alone).

        The gradients come from backward(), so they have their weight's shape and
        dtype: the checks of ``apply_gradients`` are skipped (they cost a tenth of
        a tiny model's training step).
        """
        grads, with_grad = [], []
        for w in weights:
            if w.grad is not None:
                grads.append(w.grad)
                with_grad.append(w)
        self._apply(self._clip(grads), with_grad)

    def _apply(self, grads, weights):
        lr = self.current_learning_rate()
        self.begin_step()
        if not self.weight_decay:
            self.update_many(weights, grads, lr)
        else:
            for g, w in zip(grads, weights):
                state = self._slots_of(w)
                if self._decays(w):
                    tiers.current.weight_decay_update(w.data, w.dtype.type(lr), self.weight_decay)
                self.update(w.data, g, state, w.dtype.type(lr))
        self.iterations += 1

    def _slots_of(self, w):
        """The slots of weight ``w``, created at its first update."""
        state = self.slots.get(id(w))
        if state is None:
            state = self.slots[id(w)] = self.create_slots(w.data)
        return state

    def update_many(self, weights, grads, lr):
        """One step of every weight: ``update(w, g, slots, lr)`` for each, lr in the weight's dtype.

        The pass over all the weights of a step; a subclass may do it in fewer calls, as long
        as every weight gets the same bits as from its own ``update`` (SGD without momentum).
        """
        for g, w in zip(grads, weights):
            self.update(w.data, g, self._slots_of(w), w.dtype.type(lr))

    def begin_step(self):
        """Optimizer-wide state updated once per step, before any weight (Nadam's momentum product)."""

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Leave these weights out of the weight decay: the Tensors in ``var_list``, and every
        weight whose name contains one of the strings in ``var_names`` (``["bias"]``).
        Only before the first step, as Keras allows it only before the optimizer is built."""
        owner = type(self).__name__
        if self.iterations:
            raise ValueError(f"{owner}: exclude_from_weight_decay() must be called before the first step "
                             f"(this optimizer has made {self.iterations})")
        names = list(var_names or [])
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"{owner}: var_names must be strings, got the {type(n).__name__} {n!r}")
        self._decay_excluded_ids = {id(w) for w in (var_list or [])}
        self._decay_excluded_pattern = re.compile("|".join(re.escape(n) for n in names)) if names else None

    def _decays(self, w):
        if id(w) in self._decay_excluded_ids:
            return False
        pattern = self._decay_excluded_pattern
        return pattern is None or pattern.search(getattr(w, "name", None) or "") is None

    @staticmethod
    def zero_grad(weights):
        for w in weights:
            w.grad = None

    def current_learning_rate(self):
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else float(lr)

    def slot_names(self):
        """The names of the slots this optimizer keeps per weight, as configured (maybe none)."""
        return list(self.create_slots(np.zeros(1)))

    def get_slot(self, weight, name):
        """The slot ``name`` (an ndarray of the weight's shape) kept for ``weight``.

        Raises ``SlotError`` (a ``KeyError``) naming the valid slot names when this
        optimizer keeps no slot of that name, or has not yet stepped ``weight``.
        """
        owner, valid = type(self).__name__, self.slot_names()
        if name not in valid:
            names = ", ".join(repr(n) for n in valid) if valid else "none (with this configuration)"
            raise SlotError(f"{owner}: no slot {name!r}; this optimizer's slots are: {names}"
                            f"{self._slot_hint(name)}")
        state = self.slots.get(id(weight))
        if state is None:
            label = getattr(weight, "name", None) or type(weight).__name__
            raise SlotError(f"{owner}: no slots yet for weight {label!r}: slots are created at the first step "
                            f"that updates it (fit, apply_gradients or step)")
        return state[name]

    def _slot_hint(self, name):
        """A hint when ``name`` is a slot this optimizer would keep with another setting."""
        return ""

    def get_config(self):
        """Every constructor argument, Keras's names: ``type(self)(**config)`` rebuilds the optimizer."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        config = {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                  "clipnorm": self.clipnorm, "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}
        config.update({k: getattr(self, k) for k in self._hyper})
        return config

    @classmethod
    def from_config(cls, config):
        """A fresh optimizer (no slots, step 0) with the hyperparameters of ``config`` (a serialized
        schedule as ``learning_rate`` is rebuilt)."""
        return cls(**config)

    # --------------------------------------------------------------- internals
    def _clip(self, grads):
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            return [g * (self.clipnorm / max(float(np.sqrt((g * g).sum())), self.clipnorm)) for g in grads]
        if self.global_clipnorm is not None:
            norm = float(np.sqrt(sum(float((g * g).sum()) for g in grads)))
            scale = self.global_clipnorm / max(norm, self.global_clipnorm)
            return [g * scale for g in grads]
        return grads

    def create_slots(self, w):
        return {}

    def update(self, w, g, s, lr):  # pragma: no cover - abstract
        raise NotImplementedError(f"abstract: {type(self).__name__} must define update()")


class SGD(Optimizer):
    """Mini-batch stochastic gradient descent, with optional (Nesterov) momentum.

        momentum = 0:   w <- w - lr * g
        otherwise:      m <- momentum * m - lr * g                  (m starts at 0)
                        w <- w + m                                  (classical)
                        w <- w + momentum * m - lr * g              (nesterov=True)
    """

    _hyper = ("momentum", "nesterov")

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = check_number("SGD", "momentum", momentum, at_least=0, at_most=1)
        self.nesterov = _check_flag("SGD", "nesterov", nesterov)

    def create_slots(self, w):
        return {"momentum": np.zeros_like(w)} if self.momentum else {}

    def _slot_hint(self, name):
        return "; SGD keeps 'momentum' only with momentum > 0" if name == "momentum" else ""

    def update(self, w, g, s, lr):
        tiers.current.sgd_update(w, g, lr, s["momentum"] if self.momentum else None, self.momentum, self.nesterov)

    def update_many(self, weights, grads, lr):
        """Without momentum SGD keeps no slots: ``w <- w - lr * g`` for each weight, with the tier's
        ``sgd_update`` looked up and lr cast once per dtype, in one loop (the same bits as ``update``).

        lr goes in as a 0-d array of the weight's dtype: the same value as ``dtype.type(lr)``,
        so the same products, but NumPy multiplies an array by it 0.4 us faster than by a scalar.
        """
        if self.momentum:
            return super().update_many(weights, grads, lr)
        sgd_update, rates, slots = tiers.current.sgd_update, {}, self.slots
        for g, w in zip(grads, weights):
            data = w.data
            rate = rates.get(data.dtype)
            if rate is None:
                rate = rates[data.dtype] = np.array(lr, dtype=data.dtype)
            if id(w) not in slots:            # SGD's slots: none, kept per weight as for every optimizer
                slots[id(w)] = {}
            sgd_update(data, g, rate)


class Adam(Optimizer):
    """Adam (Kingma & Ba), in Keras's form with the bias correction folded into alpha.

        t <- t + 1
        m <- m + (g - m) * (1 - beta_1)
        v <- v + (g^2 - v) * (1 - beta_2)
        (amsgrad: v_hat <- max(v_hat, v), used in place of v)
        alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        w <- w - alpha * m / (sqrt(v) + epsilon)
    """

    _hyper = ("beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__   # Adam or AdamW
        self.beta_1 = check_number(owner, "beta_1", beta_1, at_least=0, below=1)  # 1 - beta_1^t divides
        self.beta_2 = check_number(owner, "beta_2", beta_2, at_least=0, below=1)
        self.epsilon = check_number(owner, "epsilon", epsilon, at_least=0)
        self.amsgrad = _check_flag(owner, "amsgrad", amsgrad)

    def create_slots(self, w):
        s = {"m": np.zeros_like(w), "v": np.zeros_like(w)}
        if self.amsgrad:
            s["v_hat"] = np.zeros_like(w)
        return s

    def _slot_hint(self, name):
        return "; Adam keeps 'v_hat' only with amsgrad=True" if name == "v_hat" else ""

    def update(self, w, g, s, lr):
        tiers.current.adam_update(w, g, s["m"], s["v"], self.iterations + 1, lr,
                                   self.beta_1, self.beta_2, self.epsilon, s.get("v_hat"))


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), Keras form.

        a <- a + g^2                              (a starts at initial_accumulator_value = 0.1)
        w <- w - lr * g / sqrt(a + epsilon)
    """

    _hyper = ("initial_accumulator_value", "epsilon")

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = check_number("Adagrad", "initial_accumulator_value",
                                                      initial_accumulator_value, at_least=0)
        self.epsilon = check_number("Adagrad", "epsilon", epsilon, at_least=0)

    def create_slots(self, w):
        return {"accumulator": np.full_like(w, self.initial_accumulator_value)}

    def update(self, w, g, s, lr):
        tiers.current.adagrad_update(w, g, s["accumulator"], lr, self.epsilon)


class RMSprop(Optimizer):
    """RMSprop (Hinton), Keras form: epsilon inside the square root.

        v <- rho * v + (1 - rho) * g^2
        (centered: mg <- rho * mg + (1 - rho) * g;  d = v - mg^2 + epsilon, else d = v + epsilon)
        step = lr * g / sqrt(d)
        momentum = 0:  w <- w - step
        otherwise:     b <- momentum * b + step;  w <- w - b
    """

    _hyper = ("rho", "momentum", "epsilon", "centered")

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = check_number("RMSprop", "rho", rho, at_least=0, below=1)
        self.momentum = check_number("RMSprop", "momentum", momentum, at_least=0, at_most=1)
        self.epsilon = check_number("RMSprop", "epsilon", epsilon, at_least=0)
        self.centered = _check_flag("RMSprop", "centered", centered)

    def _slot_hint(self, name):
        return {"momentum": "; RMSprop keeps 'momentum' only with momentum > 0",
                "average_gradient": "; RMSprop keeps 'average_gradient' only with centered=True"}.get(name, "")

    def create_slots(self, w):
        s = {"velocity": np.zeros_like(w)}
        if self.momentum:
            s["momentum"] = np.zeros_like(w)
        if self.centered:
            s["average_gradient"] = np.zeros_like(w)
        return s

    def update(self, w, g, s, lr):
        tiers.current.rmsprop_update(w, g, s["velocity"], lr, self.rho, self.epsilon,
                                      s.get("average_gradient"), s.get("momentum"), self.momentum)


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012), Keras form with a learning rate.

        E[g^2]  <- rho * E[g^2] + (1 - rho) * g^2
        dw      = -sqrt(E[dw^2] + epsilon) / sqrt(E[g^2] + epsilon) * g
        E[dw^2] <- rho * E[dw^2] + (1 - rho) * dw^2
        w       <- w + lr * dw

    Keras's default learning_rate=0.001 moves slowly; the paper's form is
    learning_rate=1.0, epsilon=1e-6.
    """

    _hyper = ("rho", "epsilon")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = check_number("Adadelta", "rho", rho, at_least=0, below=1)
        self.epsilon = check_number("Adadelta", "epsilon", epsilon, at_least=0)

    def create_slots(self, w):
        return {"accumulated_grad": np.zeros_like(w), "accumulated_delta_var": np.zeros_like(w)}

    def update(self, w, g, s, lr):
        tiers.current.adadelta_update(w, g, s["accumulated_grad"], s["accumulated_delta_var"], lr,
                                       self.rho, self.epsilon)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, Keras's order.

        t <- t + 1
        w <- w - w * weight_decay * lr                  (the decay first, from w before the step)
        m <- m + (g - m) * (1 - beta_1)
        v <- v + (g^2 - v) * (1 - beta_2)
        (amsgrad: v_hat <- max(v_hat, v), used in place of v)
        alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        w <- w - alpha * m / (sqrt(v) + epsilon)

    The decay does not pass through m and v (that is what "decoupled" means: L2 in
    the loss would). ``exclude_from_weight_decay(var_names=["bias"])`` spares weights.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="adam_w", **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number >= 0, got None; for Adam without "
                             "weight decay use Adam")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, name=name,
                         **kwargs)


class Nadam(Optimizer):
    """Nadam (Dozat 2015): Adam with Nesterov momentum, in Keras's form.

        t <- t + 1
        u_t = beta_1 * (1 - 0.5 * 0.96^t);   u_t+1 = beta_1 * (1 - 0.5 * 0.96^(t+1))
        u_product <- u_product * u_t                    (once per step, for all weights; starts at 1)
        m <- m + (g - m) * (1 - beta_1)
        v <- v + (g^2 - v) * (1 - beta_2)
        m_hat = u_t+1 * m / (1 - u_product * u_t+1) + (1 - u_t) * g / (1 - u_product)
        v_hat = v / (1 - beta_2^t)
        w <- w - lr * m_hat / (sqrt(v_hat) + epsilon)
    """

    _hyper = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = check_number("Nadam", "beta_1", beta_1, at_least=0, below=1)
        self.beta_2 = check_number("Nadam", "beta_2", beta_2, at_least=0, below=1)  # 1 - beta_2^t divides
        self.epsilon = check_number("Nadam", "epsilon", epsilon, at_least=0)
        self.u_product = 1.0

    def begin_step(self):
        self.u_product *= self.beta_1 * (1 - 0.5 * 0.96 ** (self.iterations + 1))

    def create_slots(self, w):
        return {"m": np.zeros_like(w), "v": np.zeros_like(w)}

    def update(self, w, g, s, lr):
        tiers.current.nadam_update(w, g, s["m"], s["v"], self.iterations + 1, lr, self.u_product,
                                    self.beta_1, self.beta_2, self.epsilon)


class Adamax(Optimizer):
    """Adamax (Kingma & Ba, section 7.1): Adam with the infinity norm, Keras form.

        t <- t + 1
        m <- m + (g - m) * (1 - beta_1)
        u <- max(beta_2 * u, |g|)
        w <- w - lr / (1 - beta_1^t) * m / (u + epsilon)
    """

    _hyper = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = check_number("Adamax", "beta_1", beta_1, at_least=0, below=1)  # 1 - beta_1^t divides
        self.beta_2 = check_number("Adamax", "beta_2", beta_2, at_least=0, at_most=1)
        self.epsilon = check_number("Adamax", "epsilon", epsilon, at_least=0)

    def create_slots(self, w):
        return {"m": np.zeros_like(w), "u": np.zeros_like(w)}

    def update(self, w, g, s, lr):
        tiers.current.adamax_update(w, g, s["m"], s["u"], self.iterations + 1, lr,
                                     self.beta_1, self.beta_2, self.epsilon)


_BY_NAME = {"sgd": SGD, "adam": Adam, "adagrad": Adagrad, "rmsprop": RMSprop, "adadelta": Adadelta,
            "adamw": AdamW, "nadam": Nadam, "adamax": Adamax}


def get(identifier) -> Optimizer:
    """An optimizer from a name in any case (``"sgd"``, ``"Adam"``), a class or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str):
        return keras_names.lookup("optimizer", identifier, _BY_NAME)()
    raise TypeError(f"optimizer must be a name or an Optimizer, got {identifier!r}")


def __getattr__(name):
    """A Keras optimizer numbanet lacks (``nb.optimizers.Nadam``): an AttributeError naming the nearest one."""
    raise keras_names.missing_attribute(__name__, name)
