"""Workloads: the operator graph (``OpGraph``) and the builders that make one."""

from workloads.errors import ConfigError, Problem
from workloads.graph import GraphError, OpGraph, PrecisionPolicy
from workloads.ops import GemmShape, TensorSpec
from workloads.registry import build_model, model_names, register_model

__all__ = ["OpGraph", "PrecisionPolicy", "TensorSpec", "GemmShape", "GraphError", "build_model",
           "model_names", "register_model", "ConfigError", "Problem"]
