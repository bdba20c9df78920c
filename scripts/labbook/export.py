"""The portable model: a trained run as files that load with torch alone, without labbook.

    model.pt2   a torch.export archive: the network *with* its input preprocessing, taking
                uint8 RGB images N×3×S×S (S = the data step's image size) and returning logits
    model.json  what a receiver needs to know: class names, image size and resize policy of the
                data step, mean/std and input size (already applied inside), the weights
                training started from, the torch version that wrote it

    import json, torch
    info = json.load(open("model.json"))
    model = torch.export.load("model.pt2").module()
    logits = model(images_uint8_nchw)          # images decoded and resized as info says

torch.export rather than TorchScript: TorchScript is deprecated (PyTorch's docs: "please use
torch.export instead"; torch.jit.trace warns so), and an ExportedProgram is the format PyTorch's own tooling (AOTInductor,
ExecuTorch) builds on. Preprocessing travels inside the program so a receiver cannot normalize
or resize differently from training; the JSON repeats the numbers for the record.
"""

import copy
import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import models
from .plan import files
from .plan.kinds import imagefolder as imagefolder_kind

FORMAT = "labbook-portable-model/1"
PROGRAM = files.RUN["program"]  # model.pt2
INFO = files.RUN["program_info"]  # model.json
# How new images are resized when the dataset had no resize option (demo, CIFAR-10: images
# already S×S): the imagefolder data step's default.
DEFAULT_RESIZE = imagefolder_kind.KIND.defaults["resize"]


class Preprocessed(nn.Module):
    """uint8 images → logits, normalizing and resizing exactly as training's DeviceData.batch
    does (÷255, (x − mean)/std, then bilinear resize to input_size when that is set)."""

    def __init__(self, net: nn.Module, mean, std, input_size: int):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.input_size = input_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float().div(255) - self.mean) / self.std
        if self.input_size and self.input_size != x.shape[-1]:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return self.net(x)


def start_weights(model: str, weights: str) -> dict:
    """The weights training started from, identified well enough to find them again."""
    if weights == "none":
        return {"weights": "none", "note": "random initialization"}
    pretrained = models.torchvision_weights(model, weights)
    if pretrained is not None:
        return {"weights": weights, "note": f"torchvision {pretrained}", "url": pretrained.url}
    path = Path(weights)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {"weights": weights, "sha256": sha256}


def model_info(opts, manifest: dict, seed: int, inputs: dict) -> dict:
    """model.json's content. opts: train.TrainOptions (not imported: train imports this module);
    inputs: the run's preprocessing(opts, manifest)."""
    image_size = manifest["image_shape"][0]
    source = manifest.get("source", {})
    return {
        "format": FORMAT,
        "program": PROGRAM,
        "load_with": f"torch.export.load('{PROGRAM}').module()",
        "input": {
            "dtype": "uint8",
            "layout": "NCHW",
            "channels": "RGB",
            "height": image_size,
            "width": image_size,
        },
        "output": "logits, N×len(classes) (softmax over dim 1 gives probabilities)",
        "classes": manifest["classes"],
        # How the data step made an S×S image of a file: a receiver decodes new images the same way.
        "image_size": image_size,
        "resize": source.get("resize", DEFAULT_RESIZE),
        "resize_policy": {
            "shorter_center_crop": "scale the shorter side to image_size (bicubic), centre crop",
            "fixed": "squeeze to image_size × image_size (bicubic), aspect ratio not kept",
        }[source.get("resize", DEFAULT_RESIZE)],
        "decode": (
            "EXIF orientation applied; transparency composited on white; RGB; JPEGs decoded at "
            "reduced scale (Pillow draft) when that still covers image_size"
        ),
        # Applied inside model.pt2; listed for the record.
        "normalization": inputs["normalization"],
        "mean": inputs["mean"],
        "std": inputs["std"],
        "input_size": inputs["input_size"],
        "preprocessing_inside": "x/255, (x - mean)/std per channel, bilinear resize to input_size",
        "model": opts.model,
        "model_args": opts.model_args,
        "start_weights": start_weights(opts.model, opts.weights),
        "trainable": opts.trainable,
        "trained_precision": opts.precision,
        "seed": seed,
        "dataset": {"name": manifest["dataset"], "kind": source.get("kind"), "hash": manifest["source_hash"]},
        "torch_version": torch.__version__,
    }


def preprocessing(opts, manifest: dict) -> dict:
    """The run's normalization and input size (models.preprocessing): what training feeds the
    network, and what the portable model applies inside."""
    size = manifest["image_shape"][0]
    return models.preprocessing(
        opts.model, opts.weights, manifest["mean"], manifest["std"], size, opts.input_size
    )


def write_portable(
    model: nn.Module, opts, manifest: dict, seed: int, inputs: dict, out_dir
) -> tuple[Path, Path]:
    """Export the trained network as model.pt2 + model.json in out_dir; inputs: the run's
    preprocessing(opts, manifest), which the program applies inside.

    What is exported is a copy of the network on the CPU, in eval mode and the default memory
    layout (training's own stays where and as it is), so it holds the weights model.pt holds
    and loads on any device."""
    out_dir = Path(out_dir)
    net = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()
    net.zero_grad(set_to_none=True)  # the last step's gradients are no part of the model
    module = Preprocessed(net, inputs["mean"], inputs["std"], inputs["input_size"]).eval()
    size = manifest["image_shape"][0]
    example = torch.zeros((2, 3, size, size), dtype=torch.uint8)
    program = torch.export.export(
        module, (example,), dynamic_shapes={"images": {0: torch.export.Dim("batch")}}
    )
    for node in program.graph.nodes:  # a shared file holds no source path of its author's
        node.meta.pop("stack_trace", None)
    program_path, info_path = out_dir / PROGRAM, out_dir / INFO
    torch.export.save(program, program_path)
    info_path.write_text(
        json.dumps(model_info(opts, manifest, seed, inputs), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return program_path, info_path


def load_portable(model_dir, device="cpu") -> tuple[nn.Module, dict]:
    """(the callable model on device, model.json's content) from a folder holding both files."""
    model_dir = Path(model_dir)
    info = json.loads((model_dir / INFO).read_text(encoding="utf-8"))
    if info.get("format") != FORMAT:
        raise ValueError(f"{model_dir / INFO} is not a {FORMAT} description (format {info.get('format')!r})")
    try:
        program = torch.export.load(model_dir / info["program"])
    except Exception as error:  # a truncated archive: BadZipFile, RuntimeError, ... naming no file
        raise ValueError(
            f"{model_dir / info['program']} is damaged or truncated ({type(error).__name__}: {error}); "
            "delete it and rerun the run's training"
        ) from error
    if torch.device(device).type != "cpu":
        program = torch.export.passes.move_to_device_pass(program, device)
    return program.module(), info
