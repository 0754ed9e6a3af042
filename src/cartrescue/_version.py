"""The package's version, in a module of its own so that any module can import it without
importing the package root (pyproject.toml reads it from here too)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
