"""The ``dwq`` command line (``dwq train | eval | demo | deploy | bench``); entry point :func:`dwq.cli.main.main`."""
from .main import build_parser, main

__all__ = ["main", "build_parser"]
