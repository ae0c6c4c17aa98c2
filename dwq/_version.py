"""The package version, importable from inside dwq without importing the top-level package."""
__version__ = "0.1.0"
