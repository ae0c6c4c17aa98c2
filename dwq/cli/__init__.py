"""The ``dwq`` command line (``dwq train | eval | demo | deploy | bench``); entry point :func:`dwq.cli.main.main`."""

__all__ = ["main", "build_parser"]


def __getattr__(name):
    # Loaded on use, so that `python -m dwq.cli.main` (and torchrun) run the module only once.
    if name in __all__:
        from . import main as _main

        return getattr(_main, name)
    raise AttributeError(f"module 'dwq.cli' has no attribute {name!r}")
