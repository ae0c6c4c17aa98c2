"""The package version, importable without the rest of dwq (``dwq --version``)."""
__version__ = "0.1.0"
