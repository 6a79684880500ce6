"""The package version (one place: pyproject.toml reads none of it; keep them equal)."""

__version__ = "0.1.0"
