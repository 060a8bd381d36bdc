"""``creditlab.autodiff``: backpropagation made transparent.

- :mod:`~creditlab.autodiff.engine`: a reverse-mode engine on NumPy arrays (``Tensor``), one
  local derivative beside each operation, checked against ``torch.autograd`` in the tests.
- :mod:`~creditlab.autodiff.nn`: layers (``Linear``, ``Conv2d``, ``MLP``, ...) and optimisers
  (``Adam``, ``SGD``, the cosine learning-rate schedule) on top of it, all in NumPy.
- :mod:`~creditlab.autodiff.learner`: a torch network copied into the engine
  (``from_torch``) and trained on the Learner protocol (``EngineClassifier``).
- :mod:`~creditlab.autodiff.experiments`: ``autodiff.mnist``, the ``bp.mnist`` network trained
  by this engine from the same starting weights.
- :mod:`~creditlab.autodiff.explain`: ``creditlab explain``, one training step of a tiny
  network printed value by value, with the chain rule written out for one weight;
  :mod:`~creditlab.autodiff.notation` writes its numbers and nodes, and
  :mod:`~creditlab.autodiff.drawing` draws the graph (``--plot``).
"""

from creditlab.autodiff.engine import Tensor, topological_order, unbroadcast

__all__ = ["Tensor", "topological_order", "unbroadcast"]
