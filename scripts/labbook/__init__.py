"""labbook: the library behind the workflow's step notebooks."""

__version__ = "0.1.0"
