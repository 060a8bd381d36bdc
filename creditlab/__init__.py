"""creditlab: credit assignment in neural networks, one paper per folder, one interface."""

__version__ = "0.1.0"
