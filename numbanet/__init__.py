"""numbanet: a neural-network engine written to be read, on NumPy and Numba.

    import numbanet as nb
    model = nb.Sequential([nb.layers.Dense(10, activation="tanh", input_shape=(1,)),
                           nb.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=20, epochs=100)
"""
from . import activations, callbacks, data, engine, initializers, layers, losses, metrics, models, optimizers, plot, text, utils
from . import regularizers
from . import explain
from . import saving
from .engine import (Function, GradientCheckError, Tensor, check_grad, exp, functional, log, no_grad,
                     get_kernels, kernels, numerical_grad, relu, set_kernels, sigmoid, tanh)
from .layers import Input
from .models import Model, Sequential
from .models.fusion import fusion, get_fusion, set_fusion
from .tracing import Trace, trace
from .graphplot import plot_graph
from .engine import check_model_grads
from . import testing

__version__ = "0.1.0"
from .fast.planner import get_planning, set_planning
