"""The ``dwq`` command line (``dwq train | eval | demo | deploy | bench``); entry point :func:`dwq.cli.main.main`.

``dwq.cli.build_parser`` is loaded on use, so that ``python -m dwq.cli.main`` (and torchrun) run the
module only once; ``dwq.cli.main`` is the module (``from dwq.cli.main import main`` for the function)."""

__all__ = ["build_parser"]


def __getattr__(name):
    if name == "build_parser":
        import importlib

        # (not ``from . import main``: the package's own lookup of "main" would come back here)
        return importlib.import_module(f"{__name__}.main").build_parser
    raise AttributeError(f"module 'dwq.cli' has no attribute {name!r}")
