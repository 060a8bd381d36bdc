"""``creditlab.autodiff``: backpropagation made transparent.

- :mod:`~creditlab.autodiff.engine`: a reverse-mode engine on NumPy arrays (``Tensor``), one
  local derivative beside each operation, checked against ``torch.autograd`` in the tests.
- :mod:`~creditlab.autodiff.nn`: layers (``Linear``, ``Conv2d``, ``MLP``, ...) and optimisers
  (``Adam``, ``SGD``, the cosine learning-rate schedule) on top of it, all in NumPy.
- :mod:`~creditlab.autodiff.experiments`: ``autodiff.mnist``, the ``bp.mnist`` network trained
  by this engine from the same starting weights.
- :mod:`~creditlab.autodiff.explain`: ``creditlab explain``, one training step of a tiny
  network printed (and drawn) value by value, with the chain rule written out for one weight.
"""

from creditlab.autodiff.engine import Tensor, topological_order, unbroadcast

__all__ = ["Tensor", "topological_order", "unbroadcast"]
