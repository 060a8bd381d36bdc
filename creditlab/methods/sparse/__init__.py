"""The adaptive sparse hyperlayer (Bloem, "Learning sparse transformations through
backpropagation", arXiv 1810.09184): learned sparse structure, sparse attention and
differentiable sorting.

* :mod:`.hyperlayer`: ``SparseHyperLayer`` and its parts (means and sigmas from raw
  parameters, integer candidates, Gaussian densities (sigma a variance), duplicate removal,
  normalisation pooled over chunks of tuples, the sparse product).
* :mod:`.attention`: glimpse attention with the sparse layer; REINFORCE hard attention.
* :mod:`.canvas`: the generated cluttered/rotated/scaled MNIST canvases.
* :mod:`.networks`: the reference's sorting key network and attention hypernetwork.
* :mod:`.sorting`: differentiable quicksort (split layers); NeuralSort and diffsort.
* :mod:`.tasks`: each task's data and test measure (fixed test data).
* :mod:`.training`: models trained side by side; the attention learners; one sorting setting.
* :mod:`.experiments`: ``sparse.identity``, ``sparse.figure2``, ``sparse.attention``,
  ``sparse.sort``.
"""

from creditlab.methods.sparse.attention import GlimpseClassifier, ReinforceClassifier
from creditlab.methods.sparse.canvas import cluttered_canvases
from creditlab.methods.sparse.hyperlayer import (
    SparseHyperLayer,
    duplicates,
    integer_candidates,
    log_densities,
    normalise,
    pooled_weights,
    sample_entries,
    sample_weights,
    sparse_product,
)
from creditlab.methods.sparse.sorting import neuralsort, quicksort, split

__all__ = [
    "GlimpseClassifier",
    "ReinforceClassifier",
    "SparseHyperLayer",
    "cluttered_canvases",
    "duplicates",
    "integer_candidates",
    "log_densities",
    "neuralsort",
    "normalise",
    "pooled_weights",
    "quicksort",
    "sample_entries",
    "sample_weights",
    "sparse_product",
    "split",
]
