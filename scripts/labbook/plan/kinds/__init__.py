"""The dataset kinds, one module each: what the workflow knows of a kind while it builds the job
graph (see plan/datasets.py)."""

from . import cifar10, demo, imagefolder

KINDS = {kind.name: kind for kind in (demo.KIND, cifar10.KIND, imagefolder.KIND)}
