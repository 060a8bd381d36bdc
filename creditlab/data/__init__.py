"""Data sets for creditlab: lookup, checksums, loaders and download.

Data files are looked up in ``$CREDITLAB_DATA`` (if set), then ``~/.cache/creditlab``, each data
set in a subfolder named after it (``<root>/mnist/t10k-images-idx3-ubyte.gz``). Every load is
checksum-verified; a missing or corrupt file raises `creditlab.errors.UserError` with one line
saying how to fix it (usually ``creditlab data fetch NAME``).

>>> from creditlab.data import load
>>> ds = load("digits")
>>> ds.protocol, ds.input_shape, len(ds.x_train), len(ds.x_test)
('digits-80/20', (1, 8, 8), 1438, 359)

Data sets (see `DATASETS`): ``digits`` (scikit-learn, bundled), ``mnist1d`` (generated),
``mnist`` (official IDX files; protocol "mnist10k" from the test files alone, "mnist60k" with
the training files), ``fashion_mnist`` (60k/10k IDX files), ``binarized_mnist`` (50k/10k/10k
MATLAB files, no labels).
"""

from creditlab.data.catalog import DATASETS, ClassifierData, DataFile, DatasetSpec
from creditlab.data.dataset import Dataset
from creditlab.data.loaders import fetch, load, verify
from creditlab.data.store import data_roots

__all__ = [
    "DATASETS",
    "ClassifierData",
    "DataFile",
    "Dataset",
    "DatasetSpec",
    "data_roots",
    "fetch",
    "load",
    "verify",
]
