"""Distillation: pure loss functions, forward-hook feature capture, the method registry."""
