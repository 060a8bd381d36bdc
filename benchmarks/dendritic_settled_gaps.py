"""The numbers that ``creditlab/methods/dendritic/sweeps.py`` and docs/dendritic.md quote:
how far the two sweeps are from the continuous model's settled state, and by what factor
the hidden layers' rescaled updates exceed backprop's.

    python benchmarks/dendritic_settled_gaps.py
"""

from __future__ import annotations

import math

import torch

from creditlab.methods.dendritic.experiments import MnistConfig
from creditlab.methods.dendritic.microcircuit import Conductances
from creditlab.methods.dendritic.mnist import mnist_net
from creditlab.methods.dendritic.sweeps import MixingFactors, settled_gap


def main(batch: int = 16, duration: float = 100.0) -> None:
    """Print the numbers quoted in sweeps.py's docstring: :func:`settled_gap` of
    784-500-500-10 at ``dendritic.mnist``'s initialisation (output weights Glorot times 4, so
    that the output is not silent) on ``batch`` uniform [0, 1] inputs with random 0.1 / 0.8
    targets, for the spec table's conductances and for ``dendritic.mnist``'s; and the factor
    by which each hidden layer's rescaled update exceeds backprop's."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 784, generator=gen, dtype=torch.float64)
    u_target = torch.full((batch, 10), math.log(0.1 / 0.9), dtype=torch.float64)
    u_target[torch.arange(batch), torch.randint(10, (batch,), generator=gen)] = math.log(4.0)
    for name, g in (
        ("spec table", Conductances()),
        ("dendritic.mnist", MnistConfig().conductances()),
    ):
        cfg = MnistConfig(g_A=g.g_A, g_som=g.g_som, output_init_gain=4.0, noise=0.0)
        net = mnist_net(
            cfg, 784, 10, torch.device("cpu"), torch.Generator().manual_seed(0), torch.float64
        )
        lam = MixingFactors.from_conductances(g)
        gap = settled_gap(net, x, u_target, duration)
        c = net.attenuation[:-1]
        ratio = [1 / math.prod(c[l:]) for l in range(len(c))]
        print(
            f"{name} conductances (lambda_N, lambda_I, lambda_A = {lam.output:.2f}, "
            f"{lam.interneuron:.2f}, {lam.apical:.2f}): the sweeps miss "
            f"{', '.join(f'{v:.3f}' for v in reversed(gap))} of the settled nudged deviation "
            "(output, hidden 2, hidden 1); hidden updates are "
            f"{', '.join(f'{r:.2f}x' for r in reversed(ratio))} backprop's (hidden 2, hidden 1)"
        )


if __name__ == "__main__":
    main()
