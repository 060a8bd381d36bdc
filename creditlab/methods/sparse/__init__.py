"""The adaptive sparse hyperlayer (Bloem, "Learning sparse transformations through
backpropagation", arXiv 1810.09184): learned sparse structure, sparse attention and
differentiable sorting.

* :mod:`.hyperlayer`: ``SparseHyperLayer`` and its parts (means and sigmas from raw
  parameters, integer candidates, Gaussian densities, duplicate removal, normalisation, the
  sparse product).
* :mod:`.attention`: glimpse attention with the sparse layer; REINFORCE hard attention.
* :mod:`.canvas`: the generated cluttered/rotated/scaled MNIST canvases.
* :mod:`.sorting`: differentiable quicksort (split layers) and NeuralSort.
* :mod:`.tasks`: each task's data and test measure (fixed test data).
* :mod:`.training`: models trained side by side; the attention learners; one sorting setting.
* :mod:`.experiments`: ``sparse.identity``, ``sparse.attention``, ``sparse.sort``.
"""

from creditlab.methods.sparse.attention import GlimpseClassifier, ReinforceClassifier
from creditlab.methods.sparse.canvas import cluttered_canvases
from creditlab.methods.sparse.hyperlayer import (
    SparseHyperLayer,
    candidate_weights,
    duplicates,
    gaussian_log_densities,
    integer_candidates,
    normalise,
    sample_weights,
    sparse_product,
)
from creditlab.methods.sparse.sorting import neuralsort, quicksort, split

__all__ = [
    "GlimpseClassifier",
    "ReinforceClassifier",
    "SparseHyperLayer",
    "candidate_weights",
    "cluttered_canvases",
    "duplicates",
    "gaussian_log_densities",
    "integer_candidates",
    "neuralsort",
    "normalise",
    "quicksort",
    "sample_weights",
    "sparse_product",
    "split",
]
