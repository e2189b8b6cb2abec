"""Classifiers by registry name. Importing this package registers every entry module: `cnn1d` and `mlp` (small CPU
models), `resnet18`, `resnet34` (the reference study's CIFAR ResNets), `resnet9_rem` (the REM study's ResNet-9, as its
reference code builds it) and `resnet9` (the DAWNBench ResNet-9, kept for the keys that name it). The small models and
both ResNet-9s take example-tied dropout (tied_dropout.py)."""

from workloads.models import resnet, resnet9, resnet9_rem, small  # noqa: F401  registration
from workloads.models.base import MODELS, Blocks, build_model, register_model
from workloads.models.resnet import ResNetConfig
from workloads.models.resnet9 import ResNet9Config
from workloads.models.resnet9_rem import ResNet9RemConfig
from workloads.models.small import CNN1DConfig, MLPConfig
from workloads.models.tied_dropout import SHARED_EXAMPLE, TiedDropoutOptions, spare_channels, tied_layers, tied_to

__all__ = [
    "MODELS",
    "SHARED_EXAMPLE",
    "Blocks",
    "CNN1DConfig",
    "MLPConfig",
    "ResNet9Config",
    "ResNet9RemConfig",
    "ResNetConfig",
    "TiedDropoutOptions",
    "build_model",
    "register_model",
    "spare_channels",
    "tied_layers",
    "tied_to",
]
