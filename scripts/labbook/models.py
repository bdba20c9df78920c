"""The model zoo. Add a model by writing a builder and registering it in MODELS."""

from pathlib import Path

import torch
from torch import nn


def simplecnn(num_classes: int) -> nn.Module:
    """Two convolutions, global average pooling, one linear layer."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def cifarnet(num_classes: int) -> nn.Module:
    """Three 5×5 conv + pool stages and a 64-unit hidden layer; expects 32×32 inputs."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1024, 64),
        nn.ReLU(),
        nn.Linear(64, num_classes),
    )


def _imagenet_state_dict():
    """torchvision's VGG16 ImageNet weights through its weights API and cache (TORCH_HOME)."""
    from torchvision.models import VGG16_Weights

    weights = VGG16_Weights.IMAGENET1K_V1
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # offline: urllib raises URLError, which is an OSError
        raise RuntimeError(
            f"could not load VGG16 ImageNet weights ({error}). Offline? Download {weights.url} "
            f"and place it at {target} (set TORCH_HOME to move that folder)."
        ) from error


def vgg16(num_classes: int, weights: str = "none", trainable_blocks: int = 0) -> nn.Module:
    """torchvision's VGG16 with classifier[6] replaced for num_classes.

    weights: "none", "imagenet", or the path of a state_dict saved from a VGG16.
    trainable_blocks: how many of the five conv blocks, counted from the top, are trained;
    0 freezes all features (transfer learning as torchvision's tutorial does it), 5 trains all.
    """
    from torchvision.models import vgg16 as tv_vgg16

    model = tv_vgg16(weights=None)
    if weights == "imagenet":
        model.load_state_dict(_imagenet_state_dict())
    elif weights != "none":
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"vgg16 weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("classifier.6.")}
        model.load_state_dict(state, strict=False)
    model.classifier[6] = nn.Linear(model.classifier[6].in_features, num_classes)
    # features is conv/relu layers with a MaxPool closing each of the five blocks.
    pools = [i for i, layer in enumerate(model.features) if isinstance(layer, nn.MaxPool2d)]
    first_trainable = 0 if trainable_blocks >= 5 else pools[4 - trainable_blocks] + 1
    for i, layer in enumerate(model.features):
        layer.requires_grad_(i >= first_trainable)
    return model


MODELS = {"simplecnn": simplecnn, "cifarnet": cifarnet, "vgg16": vgg16}


def build(name: str, num_classes: int, weights: str = "none", trainable_blocks: int = 0) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if name == "vgg16":
        return vgg16(num_classes, weights=weights, trainable_blocks=trainable_blocks)
    if weights != "none":
        raise ValueError(f"model {name!r} has no pretrained weights; set weights: none")
    return MODELS[name](num_classes)


def count_parameters(model: nn.Module) -> dict:
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
