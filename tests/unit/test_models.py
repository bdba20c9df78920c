"""Models (labbook/models.py): labbook's own, torchvision's families (head, freezing, a few CPU
steps), weights from torchvision's cache or a file, a user's model file, the preprocessing
pretrained weights bring, and what a model cannot take. (A user's model file in the workflow:
workflows/test_workflow_models.py; the report's model table: test_report.py.)"""

import pytest
import torch
from builders import USER_MODEL
from labbook import models
from labbook.plan.options import TrainOptions


@pytest.mark.parametrize("name", ["simplecnn", "cifarnet"])
def test_labbooks_models_map_a_batch_to_class_logits(name):
    model = models.build(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)


def test_cifarnet_is_the_seeds_architecture():
    layers = models.cifarnet(10)
    convs = [m for m in layers if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 32, (5, 5), (2, 2)),
        (32, 32, (5, 5), (2, 2)),
        (32, 64, (5, 5), (2, 2)),
    ]
    linears = [(m.in_features, m.out_features) for m in layers if isinstance(m, torch.nn.Linear)]
    assert linears == [(1024, 64), (64, 10)]
    assert models.count_parameters(layers)["total"] == 145_578


def test_simplecnn_pools_to_a_32_unit_linear():
    linear = [m for m in models.simplecnn(10) if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(32, 10)]


# family → (its head's path, the block trained by `trainable: head`, the input size its test uses)
FAMILIES = {
    "vgg16": ("classifier.6", "classifier", 32),
    "resnet18": ("fc", "fc", 32),
    "efficientnet_b0": ("classifier.1", "classifier", 32),
    "mobilenet_v3_small": ("classifier.3", "classifier", 32),
    "convnext_tiny": ("classifier.2", "classifier", 32),
    "vit_b_16": ("heads.head", "heads", 224),  # ViT takes only its fixed size
}


def parameters_of(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_gets_a_new_head_frozen_body_and_trains_on_the_cpu(name):
    head, head_block, size = FAMILIES[name]
    torch.manual_seed(0)
    model = models.build(name, num_classes=3, trainable="head")
    assert models.find_head(model, 3) == head
    layer = model.get_submodule(head)
    assert (layer.out_features if isinstance(layer, torch.nn.Linear) else layer.out_channels) == 3
    counts = models.count_parameters(model)
    assert counts["trainable"] == parameters_of(model.get_submodule(head_block)) < counts["total"]
    frozen_before = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}

    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.rand(4, 3, size, size), torch.tensor([0, 1, 2, 0])
    head_before = layer.weight.clone()
    model.train()
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(layer.weight, head_before), "the new head learns"
    assert all(torch.equal(p, frozen_before[n]) for n, p in model.named_parameters() if n in frozen_before)


def test_trainable_all_and_last_stages():
    assert models.count_parameters(models.build("resnet18", 3))["trainable"] == 11_178_051
    last = models.build("resnet18", 3, trainable="last-1")  # layer4 and fc
    expected = parameters_of(last.layer4) + parameters_of(last.fc)
    assert models.count_parameters(last)["trainable"] == expected
    vgg = models.build("vgg16", 5, trainable="last-1")
    trainable_convs = [
        i for i, m in enumerate(vgg.features) if isinstance(m, torch.nn.Conv2d) and m.weight.requires_grad
    ]
    assert trainable_convs == [24, 26, 28]  # VGG16's fifth conv block
    with pytest.raises(ValueError, match="has 6 stages"):
        models.build("resnet18", 3, trainable="last-7")


def test_a_model_without_a_findable_head_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot find the classification head"):
        models.find_head(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten()), 10)


def test_unknown_model_and_weights_name_the_choices():
    with pytest.raises(ValueError, match="torchvision classification"):
        models.build("resnet", 10)
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        models.build("resnet18", 10, weights="IMAGENET9K")
    with pytest.raises(ValueError, match="no pretrained weights"):
        models.build("cifarnet", 10, weights="imagenet")


def test_default_weights_load_offline_from_torchvisions_cache(tmp_path, monkeypatch):
    """A state_dict under $TORCH_HOME with the file name torchvision expects is what loads."""
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)  # no network here
    source = resnet18()
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(source.state_dict(), folder / "resnet18-f37072fd.pth")
    assert models.weights_file(ResNet18_Weights.DEFAULT) == folder / "resnet18-f37072fd.pth"
    for alias in ("DEFAULT", "imagenet", "IMAGENET1K_V1"):
        loaded = models.build("resnet18", 4, weights=alias, trainable="head")
        assert torch.equal(loaded.conv1.weight, source.conv1.weight)
        assert torch.equal(loaded.layer4[1].bn2.running_mean, source.layer4[1].bn2.running_mean)
        assert loaded.fc.out_features == 4


def test_missing_weights_offline_name_the_file_the_url_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError) as error:
        models.build("vgg16", 10, weights="DEFAULT")
    message = str(error.value)
    assert "vgg16-397923af.pth" in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message


def test_a_weights_file_loads_strictly_except_the_head(tmp_path):
    source = models.build("resnet18", 1000)
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    loaded = models.build("resnet18", 3, weights=str(path))
    assert torch.equal(loaded.conv1.weight, source.conv1.weight)
    assert loaded.fc.out_features == 3

    torch.save(models.build("cifarnet", 10).state_dict(), tmp_path / "cifarnet.pt")
    with pytest.raises(ValueError, match=r"missing keys \['bn1.bias'.*unexpected keys \['0.bias'"):
        models.build("resnet18", 3, weights=str(tmp_path / "cifarnet.pt"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        models.build("resnet18", 3, weights=str(tmp_path / "missing.pt"))


def test_a_user_model_file_builds_with_its_arguments(tmp_path, monkeypatch):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "tiny.py").write_text(USER_MODEL)
    monkeypatch.chdir(tmp_path)
    model = models.build("nets/tiny.py:TinyNet", 5, model_args={"width": 6})
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 5)
    assert model[0].out_channels == 6
    with pytest.raises(ValueError, match="defines no 'Missing'"):
        models.build("nets/tiny.py:Missing", 5)


def test_pretrained_weights_bring_their_normalization_and_input_size():
    dataset = ([0.5, 0.4, 0.3], [0.2, 0.2, 0.2])
    imagenet = models.preprocessing("resnet18", "DEFAULT", *dataset, stored_size=32)
    assert imagenet["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert imagenet["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert imagenet["input_size"] == 224 and "IMAGENET1K_V1" in imagenet["normalization"]
    assert (
        models.preprocessing("resnet18", "DEFAULT", *dataset, stored_size=32, input_size=64)["input_size"]
        == 64
    )
    scratch = models.preprocessing("resnet18", "none", *dataset, stored_size=32)
    assert scratch == {"normalization": "dataset", "mean": dataset[0], "std": dataset[1], "input_size": 32}


@pytest.mark.parametrize(
    "values, stored, named",
    [
        ({"model": "cifarnet"}, 64, "runs.r.input_size: cifarnet cannot take 64×64"),
        ({"model": "vit_b_16", "input_size": 64}, 64, "runs.r.input_size: vit_b_16 cannot take 64×64"),
        ({"model": "resnet"}, 32, "runs.r.model="),
        ({"model": "resnet18", "weights": "IMAGENET9K"}, 32, "runs.r.weights"),
        ({"model": "resnet18", "trainable": "last-9"}, 32, "runs.r.trainable"),
    ],
)
def test_check_options_stops_what_a_model_cannot_take(values, stored, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        models.check_options(TrainOptions.from_dict(values), stored, where="runs.r.")
    models.check_options(TrainOptions.from_dict({"model": "resnet18"}), 32, where="runs.r.")  # fine
