"""Rasters of desired against produced trains for a run's plots/."""

from __future__ import annotations

from pathlib import Path

import torch

from creditlab.methods.normad.neuron import Neuron, layer_current, simulate
from creditlab.spiking.metrics import plot_raster


def final_trains(inputs, c_in, desired, w, cell: Neuron) -> torch.Tensor:
    """The one-layer neurons' trains with the final weights."""
    return simulate(layer_current(c_in, w), cell).spikes


def raster(path: Path, desired, produced, cell: Neuron, title: str, rows: int = 8) -> Path:
    """Up to ``rows`` trains (problem, pattern, output neuron flattened), time in ms."""
    flat = lambda x: x.transpose(-1, -2).reshape(-1, x.shape[-2])[:rows]  # noqa: E731
    return plot_raster(path, flat(desired), flat(produced), cell.dt * 1e3, title)
