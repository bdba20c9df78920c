"""The model zoo: shapes, the seed's exact CIFARNet, VGG16's head, freezing and weights."""

import pytest
import torch
from labbook import models


@pytest.mark.parametrize("name", ["simplecnn", "cifarnet", "vgg16"])
def test_each_model_maps_a_batch_to_class_logits(name):
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


def trainable_convs(model):
    return [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.Conv2d) and m.weight.requires_grad]


def test_vgg16_head_and_trainable_blocks():
    frozen = models.vgg16(5, trainable_blocks=0)
    assert frozen.classifier[6].out_features == 5
    assert trainable_convs(frozen) == []
    assert all(p.requires_grad for p in frozen.classifier.parameters())
    last_block = models.vgg16(5, trainable_blocks=1)
    assert trainable_convs(last_block) == [24, 26, 28]  # block 5's three convolutions
    assert len(trainable_convs(models.vgg16(5, trainable_blocks=5))) == 13


def test_vgg16_loads_a_state_dict_file_except_its_old_head(tmp_path):
    source = models.vgg16(1000)
    path = tmp_path / "vgg16.pt"
    torch.save(source.state_dict(), path)
    loaded = models.vgg16(3, weights=str(path))
    assert torch.equal(loaded.features[0].weight, source.features[0].weight)
    assert loaded.classifier[6].out_features == 3
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        models.vgg16(3, weights=str(tmp_path / "missing.pt"))


def test_imagenet_weights_offline_say_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError) as error:
        models.vgg16(10, weights="imagenet")
    message = str(error.value)
    assert "vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message


def test_unknown_model_and_weights_for_a_model_without_them_are_errors():
    with pytest.raises(ValueError, match="resnet"):
        models.build("resnet", 10)
    with pytest.raises(ValueError, match="no pretrained weights"):
        models.build("cifarnet", 10, weights="imagenet")
