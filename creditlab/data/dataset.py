"""The in-memory form every loader returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Dataset:
    """A loaded data set: tensors on CPU plus where they came from.

    Images are float32 shaped (N, 1, H, W) and scaled to [0, 1]; MNIST-1D sequences are float32
    shaped (N, 40). Labels are int64 class indices, or None for unlabelled data
    (binarized_mnist, whose ``n_classes`` is 0).
    """

    name: str
    """"digits", "mnist1d", "mnist" or "binarized_mnist"."""
    protocol: str
    """The train/test protocol: "digits-80/20", "mnist1d", "mnist10k", "mnist60k", ..."""
    source: str
    """Where it was read from: a folder or file path, "scikit-learn bundled" or "generated"."""
    x_train: torch.Tensor
    y_train: torch.Tensor | None
    x_test: torch.Tensor
    y_test: torch.Tensor | None
    x_valid: torch.Tensor | None = None
    """binarized_mnist's 10k validation split; None elsewhere."""
    y_valid: torch.Tensor | None = None
    n_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (1, 28, 28) or (40,)."""
        return tuple(self.x_train.shape[1:])

    def info(self) -> dict[str, Any]:
        """What a run records about its data in result.json."""
        return {
            "name": self.name,
            "protocol": self.protocol,
            "source": self.source,
            "n_train": len(self.x_train),
            "n_valid": 0 if self.x_valid is None else len(self.x_valid),
            "n_test": len(self.x_test),
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
        }

    def __repr__(self) -> str:
        sizes = f"train={len(self.x_train)}, test={len(self.x_test)}"
        if self.x_valid is not None:
            sizes += f", valid={len(self.x_valid)}"
        return (
            f"Dataset({self.name!r}, protocol={self.protocol!r}, {sizes}, source={self.source!r})"
        )
