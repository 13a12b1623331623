"""Models: a registry of architectures, checkpoints, and specs that load any teacher.

>>> from softlabels.models import create_model, load_model
>>> net = create_model("resnet32", num_classes=100, in_channels=3, seed=0)
>>> teacher = load_model("runs/t1/model.pt")        # or tv:resnet50@w.pt, ts:..., py:...
>>> logits, feats = teacher.forward(x)              # feats: input of the final layer
"""

from __future__ import annotations

# Importing the architecture modules registers them.
from softlabels.models import cnn1d as cnn1d
from softlabels.models import composite as composite
from softlabels.models import mlp as mlp
from softlabels.models import resnet1d as resnet1d
from softlabels.models import resnet_cifar as resnet_cifar
from softlabels.models._base import ClassifierNet, ModelArgs
from softlabels.models._inputs import shape_kwargs
from softlabels.models._registry import create_model, is_model, list_models, register_model
from softlabels.models.checkpoint import load_checkpoint, save_checkpoint
from softlabels.models.cosine import CosineClassifier
from softlabels.models.loading import LoadedModel, load_model

__all__ = [
    "ClassifierNet",
    "CosineClassifier",
    "LoadedModel",
    "ModelArgs",
    "create_model",
    "is_model",
    "list_models",
    "load_checkpoint",
    "load_model",
    "register_model",
    "save_checkpoint",
    "shape_kwargs",
]
