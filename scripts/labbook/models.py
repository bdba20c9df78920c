"""Models: labbook's own small CNNs, any torchvision classification model, or a user's file.

`build` makes the network for a dataset's classes: pretrained weights (torchvision's, through its
cache in $TORCH_HOME, or a state_dict file), the classification head replaced, and the layers
that should not learn frozen. `preprocessing` says how its inputs must be normalized and sized.
"""

import importlib.util
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from .plan.options import looks_like_path, user_model_path


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


LABBOOK_MODELS = {"simplecnn": simplecnn, "cifarnet": cifarnet}
# Builders whose auxiliary classifiers change what forward() returns in training mode.
NO_AUX_LOGITS = {"googlenet": {"aux_logits": False}, "inception_v3": {"aux_logits": False}}


def torchvision_models() -> list:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)


def known_model(name: str) -> bool:
    return name in LABBOOK_MODELS or user_model_path(name) is not None or name in torchvision_models()


# ---------------------------------------------------------------- weights
def torchvision_weights(model: str, weights: str):
    """torchvision's weights enum member for a run's `weights:` value, None for none/a file."""
    if weights == "none" or looks_like_path(weights) or model not in torchvision_models():
        return None
    from torchvision.models import get_model_weights

    available = get_model_weights(model)
    if weights in ("DEFAULT", "imagenet"):
        return available.DEFAULT
    short = weights.split(".", 1)[1] if weights.startswith(available.__name__ + ".") else weights
    if short in available.__members__:
        return available[short]
    raise ValueError(
        f"weights {weights!r} unknown for {model}: use none, DEFAULT (alias imagenet), one of "
        f"{list(available.__members__)}, or the path of a state_dict file"
    )


def weights_file(weights) -> Path:
    """Where torchvision's cache keeps these weights: $TORCH_HOME/hub/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def _pretrained_torchvision(name: str, weights, kwargs: dict) -> nn.Module:
    """The model with torchvision's weights, from its cache or downloaded into it."""
    from torchvision.models import get_model

    target = weights_file(weights)
    cached = target.exists()
    try:
        return get_model(name, weights=weights, **kwargs)
    except Exception as error:  # offline: urllib raises URLError, an OSError
        if cached:
            raise
        raise RuntimeError(
            f"weights {weights} for {name} could not be loaded ({error}). Offline? Download "
            f"{weights.url} and put it in {target.parent} as {target.name} "
            f"(set TORCH_HOME to move that folder)."
        ) from error


def load_weights_file(model: nn.Module, path, head: str) -> None:
    """A state_dict file's weights, strictly: every key but the head's must match the model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"weights file {path} holds a {type(state).__name__}, not a state_dict")
    state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    expected = {k for k in model.state_dict() if not k.startswith(head + ".")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"weights file {path} does not fit this model: {len(missing)} missing keys "
            f"{missing[:5]}{' …' if len(missing) > 5 else ''}, {len(unexpected)} unexpected keys "
            f"{unexpected[:5]}{' …' if len(unexpected) > 5 else ''}"
        )
    head_state = {k: v for k, v in model.state_dict().items() if k.startswith(head + ".")}
    model.load_state_dict({**state, **head_state}, strict=True)  # shape mismatches raise here


# ---------------------------------------------------------------- the head and the stages
def find_head(model: nn.Module, outputs: int) -> str:
    """Dotted name of the classification layer: the last Linear (or 1×1 Conv2d, SqueezeNet)
    with `outputs` outputs, in registration order (VGG classifier.6, ResNet fc, ViT heads.head…)."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == outputs:
            found = name
        elif isinstance(module, nn.Conv2d) and module.out_channels == outputs:
            found = name
    if found is None:
        raise ValueError(
            f"cannot find the classification head of {type(model).__name__}: no Linear or Conv2d "
            f"layer with {outputs} outputs"
        )
    return found


def replace_head(model: nn.Module, head: str, num_classes: int) -> None:
    old = model.get_submodule(head)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding)
    parent, _, leaf = head.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def _plain_conv_blocks(features: nn.Sequential) -> list | None:
    """VGG/AlexNet-style features cut after each max-pool (VGG16: its five conv blocks)."""
    plain = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d)
    if not all(isinstance(m, plain) for m in features):
        return None
    blocks, current = [], []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(nn.Sequential(*current))
            current = []
    return blocks + ([nn.Sequential(*current)] if current else [])


def stages(model: nn.Module, head: str) -> list:
    """The body's stages in order, without the head's block: `features` split into its parts
    (VGG: conv blocks), ViT's encoder layers, else the top-level modules (ResNet: conv1, bn1,
    layer1…layer4)."""
    head_block = head.split(".")[0]
    found = []
    for name, child in model.named_children():
        if name == head_block:
            continue
        if name in ("features", "trunk_output", "layers") and isinstance(child, nn.Sequential):
            found += _plain_conv_blocks(child) or list(child)
        elif name == "encoder" and isinstance(getattr(child, "layers", None), nn.Sequential):
            found += list(child.layers)
        else:
            found.append(child)
    return [stage for stage in found if any(True for _ in stage.parameters())]


def freeze(model: nn.Module, head: str, trainable: str) -> None:
    """`all`: everything learns; `head`: the block holding the head (VGG's classifier, ResNet's
    fc); `last-N`: also the last N stages, and everything between them and the head."""
    if trainable == "all":
        model.requires_grad_(True)
        return
    if trainable == "head":
        first = model.get_submodule(head.split(".")[0])
    else:
        count = int(trainable.split("-")[1])
        body = stages(model, head)
        if count > len(body):
            raise ValueError(f"trainable: {trainable}, but {type(model).__name__} has {len(body)} stages")
        first = body[-count]
    first_parameter = next(first.parameters())
    learns = False
    for parameter in model.parameters():  # registration order follows the forward pass
        learns = learns or parameter is first_parameter
        parameter.requires_grad_(learns)


# ---------------------------------------------------------------- a user's model file
def load_user_model(spec: str):
    """The class or function `Name` of `path/file.py:Name` (path relative to the working dir)."""
    path = user_model_path(spec)
    name = spec.rsplit(":", 1)[1]
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} (model: {spec}) not found")
    module_spec = importlib.util.spec_from_file_location(f"labbook_user_model_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise ValueError(f"model file {path} defines no {name!r} (model: {spec})")
    return getattr(module, name)


# ---------------------------------------------------------------- build
def build(
    name: str,
    num_classes: int,
    weights: str = "none",
    trainable: str = "all",
    model_args: dict | None = None,
) -> nn.Module:
    """The network for num_classes, with its weights loaded and its frozen layers frozen."""
    model_args = dict(model_args or {})
    if name in LABBOOK_MODELS or user_model_path(name):
        builder = LABBOOK_MODELS.get(name) or load_user_model(name)
        model = builder(num_classes=num_classes, **model_args)
        head = find_head(model, num_classes)
        if weights not in ("none",) and not looks_like_path(weights):
            raise ValueError(f"model {name!r} has no pretrained weights: set weights: none or a file path")
    elif name in torchvision_models():
        pretrained = torchvision_weights(name, weights)
        kwargs = {**NO_AUX_LOGITS.get(name, {}), **model_args}
        if pretrained is None:
            from torchvision.models import get_model

            model = get_model(name, weights=None, **kwargs)
        else:
            model = _pretrained_torchvision(name, pretrained, kwargs)
        outputs = len(pretrained.meta["categories"]) if pretrained else kwargs.get("num_classes", 1000)
        head = find_head(model, outputs)
        replace_head(model, head, num_classes)
    else:
        raise ValueError(
            f"unknown model {name!r}: use {sorted(LABBOOK_MODELS)}, a torchvision classification "
            f"model (torchvision.models.list_models()), or path/to/file.py:Name"
        )
    if looks_like_path(weights):
        load_weights_file(model, weights, head)
    freeze(model, head, trainable)
    return model


def preprocessing(name: str, weights: str, dataset_mean, dataset_std, stored_size: int, input_size: int = 0):
    """How a run's images are normalized and sized: pretrained torchvision weights bring their
    own mean/std (ImageNet's) and crop size; otherwise the dataset's statistics and stored size.
    An explicit input_size always wins."""
    pretrained = torchvision_weights(name, weights)
    if pretrained is None:
        return {
            "normalization": "dataset",
            "mean": [float(v) for v in dataset_mean],
            "std": [float(v) for v in dataset_std],
            "input_size": input_size or stored_size,
        }
    transform = pretrained.transforms()
    return {
        "normalization": str(pretrained),
        "mean": [float(v) for v in transform.mean],
        "std": [float(v) for v in transform.std],
        "input_size": input_size or int(transform.crop_size[0]),
    }


def count_parameters(model: nn.Module) -> dict:
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def check_options(opts, stored_size: int, where: str = "") -> None:
    """What can be known about a run's model before any job: the model exists, its weights name
    is valid, `trainable` fits its stages, and it takes the input size (on the meta device: no
    memory, no weights read). Errors name the key, prefixed by `where` (e.g. `runs.vgg16.`)."""
    if not known_model(opts.model):
        raise ValueError(f"{where}model={opts.model!r}: unknown; use {sorted(LABBOOK_MODELS)}, a torchvision "
                         f"classification model (torchvision.models.list_models()), or path/to/file.py:Name")  # fmt: skip
    try:
        size = preprocessing(opts.model, opts.weights, [0.0] * 3, [1.0] * 3, stored_size, opts.input_size)
    except ValueError as error:
        raise ValueError(f"{where}weights: {error}") from error
    size = size["input_size"]
    try:
        with torch.device("meta"):
            model = build(opts.model, 10, "none", "all", opts.model_args)
    except (TypeError, ValueError, FileNotFoundError) as error:
        raise ValueError(f"{where}model={opts.model!r} with model_args={opts.model_args}: {error}") from error
    try:
        freeze(model, find_head(model, 10), opts.trainable)
    except ValueError as error:
        raise ValueError(f"{where}trainable: {error}") from error
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, 3, size, size, device="meta"))
    except Exception as error:
        raise ValueError(
            f"{where}input_size: {opts.model} cannot take {size}×{size} images (stored images are "
            f"{stored_size}×{stored_size}; set input_size to a size it takes): {error}"
        ) from error
