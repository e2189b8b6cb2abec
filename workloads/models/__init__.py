"""Classifiers by registry name. Importing this package registers every entry module: `cnn1d` and `mlp` (small CPU
models) and `resnet18`, `resnet34` (the reference study's CIFAR ResNets)."""
from workloads.models import resnet, small  # noqa: F401  registration
from workloads.models.base import MODELS, Blocks, build_model, register_model
from workloads.models.resnet import ResNetConfig
from workloads.models.small import CNN1DConfig, MLPConfig

__all__ = ["MODELS", "Blocks", "CNN1DConfig", "MLPConfig", "ResNetConfig", "build_model", "register_model"]
