"""The engine: Tensor, the recorded graph and backward(), differentiable functions, gradient checks."""
from . import functional, ops, tiers
from .gradcheck import GradCheckReport, GradientCheckError, check_grad, check_model_grads, numerical_grad
from .ops import exp, log, relu, sigmoid, tanh
from .tensor import Function, Tensor, as_tensor, is_grad_enabled, no_grad, print_graph, unbroadcast
from .tiers import get_kernels, kernels, set_kernels

__all__ = ["Tensor", "Function", "as_tensor", "no_grad", "is_grad_enabled", "unbroadcast",
           "check_grad", "check_model_grads", "numerical_grad", "GradCheckReport", "GradientCheckError",
           "exp", "log", "tanh", "sigmoid", "relu", "functional", "ops", "print_graph",
           "set_kernels", "get_kernels", "kernels"]

tiers.set_kernels("fast")   # the default tier, loaded once the engine it builds on exists
