"""Diagnostics that watch a network learn: alignment with backprop, ReLU liveness."""
