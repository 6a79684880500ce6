"""The scale-model campaign of ``scripts/scale_model.py`` (the launcher, whose docstring
documents the parts), one module per concern."""
