"""Spiking neuron models, PSP kernels, encoders and spike-train statistics shared by the
spiking methods (HM2-BP; NormAD).

* :class:`LIF`: the discrete-time LIF neuron with a first-order synapse and refractory period.
* :func:`psp_kernel`, :func:`psp_kernel_with_reset`, :class:`PSPTrace`,
  :func:`exponential_trace`: the PSP kernel and its traces.
* :func:`bernoulli_encode`: rate coding of intensities.
* :func:`time_major`, :func:`spike_positions`, :func:`as_bytes`: the trains' memory layout, a
  fast nonzero, a fast conversion.
* :func:`spike_counts`, :func:`firing_rate`, :func:`silent_fraction`, :func:`interspike_cv`.
"""

from creditlab.spiking.neuron import (
    LIF,
    T_REF,
    TAU_M,
    TAU_S,
    PSPTrace,
    as_bytes,
    bernoulli_encode,
    exponential_trace,
    firing_rate,
    interspike_cv,
    psp_kernel,
    psp_kernel_with_reset,
    silent_fraction,
    spike_counts,
    spike_positions,
    time_major,
)

__all__ = [
    "LIF",
    "TAU_M",
    "TAU_S",
    "T_REF",
    "PSPTrace",
    "as_bytes",
    "bernoulli_encode",
    "exponential_trace",
    "firing_rate",
    "interspike_cv",
    "psp_kernel",
    "psp_kernel_with_reset",
    "silent_fraction",
    "spike_counts",
    "spike_positions",
    "time_major",
]
