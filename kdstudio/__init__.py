"""KD Studio: a desktop workbench for knowledge distillation."""

__version__ = "0.1.0"
