"""`kind: demo`, the offline demo: ten classes of drawn shapes, generated from a seed (no files,
no network). The generator is labbook.demo."""

from .kind import Kind, settings_hash

CLASSES = ("circle", "ring", "square", "frame", "triangle", "diamond", "plus", "cross", "hbar", "vbar")

KIND = Kind(
    name="demo",
    defaults={"train_size": 4000, "val_size": 500, "test_size": 1000, "seed": 0, "image_size": 32},
    size=lambda o: (o["train_size"], o["test_size"], o["image_size"]),
    # no source files: its settings are its identity
    fingerprint=lambda o, digests: settings_hash(o),
    loader="labbook.demo:load",
    classes=lambda o: len(CLASSES),
    default_name="shapes",
)
