r"""A feedforward spiking network and HM2-BP's backward pass, without autograd through time.

Layers are linear maps of spikes to synaptic input (:class:`Dense`, :class:`Conv`, the
fixed-weight :class:`Pool`); each feeds a layer of :class:`creditlab.spiking.LIF` neurons.
:meth:`SpikingNetwork.simulate` runs the layers one after another, each over all steps in
blocks (one matrix product per block for the input currents, then the neurons' step loop),
and keeps the spike trains as ``bool`` — the *spike record*, batch x steps x neurons bytes
per layer and the input — plus two (batch, neurons) numbers per neuron: its spike count
:math:`o_i` and the side-effect sum :math:`\sum_l w_{il} e_{i|l}`.

:meth:`SpikingNetwork.gradients` is HM2-BP's backward (the spec's equations):

* output: :math:`\delta_i = (o_i - y_i)/\nu_i` (margin-zeroed error, from :mod:`.loss`);
* hidden (decoupled S-PSP, :math:`\partial e_{i|j}/\partial o_j \approx e_{i|j}/o_j`):
  :math:`\delta_j = \frac{1}{\nu_j} \sum_i \delta_i w_{ij}\, e_{i|j}/o_j`. The spec writes
  this without the :math:`1/\nu_j`; it belongs there for :math:`\delta_j` to be
  :math:`\partial E/\partial(\nu_j o_j)` as :math:`\delta_i` is (the finite-difference test
  checks it), and under Adam a layer-wide factor barely changes the step. The ratio
  :math:`e_{i|j}/o_j` is taken as 1 when :math:`o_j = 0` or :math:`o_i = 0`;
* weights: :math:`\partial E/\partial w_{ij} = \delta_i\, e_{i|j} (1 + S_i)`, the side effect
  :math:`S_i = \frac{1}{\nu_i} \sum_l w_{il} e_{i|l} / o_i` (0.5 when :math:`o_i = 0`); for a
  silent neuron (:math:`o_i = 0`) whose input j fired, :math:`e_{i|j}` is replaced by the
  reference code's constant ``silent_psp`` (0.1), so that it can start to fire.

Every sum over (post, pre) pairs is a contraction over (batch, time) of a postsynaptic
weighting A (nonzero at post spikes only: kept as spike lists) and a presynaptic PSP trace
(:mod:`.spsp`), computed block by block of steps: memory is the spike record plus a few
(block, batch, neurons) tensors whatever the number of steps, and a sum of per-example
gradients is exact. A dense layer's weight gradient is a weighted sum of trace rows at the
post spikes (one ``embedding_bag`` per block), so it costs the number of post spikes times
the fan-in, not a dense product; its forward sums the weight columns of the input spikes the
same way. Trains and per-block tensors are time-major (:mod:`creditlab.spiking`), so a step
or a block of steps is a contiguous slice. Pooling layers pass
:math:`\delta` back but learn nothing; lateral inhibition between output neurons acts in
the forward pass only (the backward treats those fixed connections as absent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from creditlab.methods.hm2bp.spsp import (
    DelayedRows,
    bag_sum,
    on_grid,
    post_spike_lists,
    spikes_by_train,
    spsp_block,
)
from creditlab.spiking import (
    LIF,
    T_REF,
    TAU_M,
    TAU_S,
    PSPTrace,
    as_bytes,
    spike_positions,
    time_major,
)

BLOCK_ELEMENTS = 2**20
"""default cap on batch x steps x neurons of the per-block float tensors (memory beyond the
spike record)"""
SILENT_PSP = 0.1
"""the reference code's S-PSP for a silent neuron's fired inputs in its weight gradient"""
SILENT_RATIO = 0.5
"""the reference code's e_{i|l}/o_i for a silent neuron i in its side effect"""

SPARSE_BELOW = 0.05
"""Dense layers sum weight columns (embedding_bag) for binary input sparser than this: about
twice as fast as the dense product at the ~2% density of rate-coded MNIST."""


class Dense:
    """All-to-all synapses, weight (n_out, n_in) uniform in +-init_w. Input: (m, *in_shape),
    float or bool spikes."""

    learned = True

    def __init__(self, in_shape: tuple[int, ...], n_out: int, init_w: float, generator=None):
        self.in_shape, self.out_shape = tuple(in_shape), (n_out,)
        fan_in = math.prod(in_shape)
        self.weight = (torch.rand(n_out, fan_in, generator=generator) * 2 - 1) * init_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.dtype == torch.bool:
            if torch.count_nonzero(x) < SPARSE_BELOW * x.numel():
                # sparse binary spikes: sum the weight columns of the inputs that fired
                flat = spike_positions(x)
                rows, cols = flat // x.shape[1], flat % x.shape[1]
                return bag_sum(cols, self.weight.T.contiguous(), rows, x.shape[0], None)
            x = as_bytes(x).to(self.weight.dtype)
        return x @ self.weight.T

    def transpose(self, g: torch.Tensor) -> torch.Tensor:
        return g @ self.weight

    def weight_grad(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return g.T @ x.flatten(1)

    def fan_in_sum(self) -> torch.Tensor:
        """sum_j w_ij of every output neuron i, (n_out,)."""
        return self.weight.sum(1)


class Conv:
    """A valid, stride-1 convolution, weight (c_out, c_in, k, k) uniform in +-init_w."""

    learned = True

    def __init__(
        self, in_shape: tuple[int, ...], c_out: int, k: int, init_w: float, generator=None
    ):
        c, h, w = in_shape
        self.in_shape, self.out_shape = (c, h, w), (c_out, h - k + 1, w - k + 1)
        self.weight = (torch.rand(c_out, c, k, k, generator=generator) * 2 - 1) * init_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_bytes(x).view(-1, *self.in_shape).to(self.weight.dtype)
        return F.conv2d(x, self.weight).flatten(1)

    def transpose(self, g: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(g.view(-1, *self.out_shape), self.weight).flatten(1)

    def weight_grad(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.grad.conv2d_weight(
            x.view(-1, *self.in_shape), self.weight.shape, g.view(-1, *self.out_shape)
        )

    def fan_in_sum(self) -> torch.Tensor:
        """sum_j w_ij of every output neuron i (its kernel's sum), flat (n_out,)."""
        c, h, w = self.out_shape
        return self.weight.sum((1, 2, 3)).repeat_interleave(h * w)


class Pool:
    """k x k sum pooling with one fixed weight (a spiking pooling layer; not learned)."""

    learned = False

    def __init__(self, in_shape: tuple[int, ...], k: int, weight: float):
        c, h, w = in_shape
        if h % k or w % k:
            raise ValueError(f"pooling {k}x{k} needs sides divisible by {k}, got {h}x{w}")
        self.in_shape, self.out_shape, self.k, self.w = (c, h, w), (c, h // k, w // k), k, weight
        self.weight = torch.zeros(0)
        self.dtype = torch.float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_bytes(x).view(-1, *self.in_shape).to(self.dtype)
        pooled = F.avg_pool2d(x, self.k)
        return (pooled * (self.k * self.k * self.w)).flatten(1)

    def transpose(self, g: torch.Tensor) -> torch.Tensor:
        g = g.view(-1, *self.out_shape).repeat_interleave(self.k, 2).repeat_interleave(self.k, 3)
        return (g * self.w).flatten(1)


Layer = Dense | Conv | Pool


def dense_layers(
    n_in: int,
    hidden: tuple[int, ...],
    n_out: int,
    init_w: tuple[float, ...],
    generator: torch.Generator | None = None,
) -> list[Layer]:
    """An MLP's layers ``n_in -> hidden... -> n_out``, layer k's weights uniform in
    +-init_w[k], drawn in order from ``generator``."""
    widths = [n_in, *hidden]
    return [
        Dense((a,), b, w, generator)
        for a, b, w in zip(widths, [*hidden, n_out], init_w, strict=True)
    ]


@dataclass
class Record:
    """What the forward pass keeps for the backward: per layer the spike trains (batch,
    steps, neurons) bool (views of time-major memory), the counts o (batch, neurons) and
    sum_l w_il e_{i|l} (batch, neurons); ``found`` per layer the forward pass's spike lists
    (block size, :func:`.spsp.spikes_by_train` of each block) for the backward to reuse, or
    None where the trains changed after the forward pass (forced label spikes)."""

    spikes: list[torch.Tensor]
    counts: list[torch.Tensor]
    psp_sums: list[torch.Tensor]
    found: list[tuple[int, list] | None] = field(default_factory=list)


class SpikingNetwork:
    """Layers of LIF neurons (thresholds ``thresholds``, one per layer) behind linear maps.

    ``block_elements`` caps the size of the per-block float tensors (batch x block steps x
    neurons), and so the memory beyond the spike record.
    """

    def __init__(
        self,
        layers: list[Layer],
        thresholds: tuple[float, ...],
        tau_m: float = TAU_M,
        tau_s: float = TAU_S,
        t_ref: int = T_REF,
        lateral: float = 0.0,
        block_elements: int = BLOCK_ELEMENTS,
        reference_timing: bool = True,
    ):
        if len(thresholds) != len(layers):
            raise ValueError(f"{len(layers)} layers need {len(layers)} thresholds")
        self.layers, self.thresholds = layers, tuple(float(v) for v in thresholds)
        self.tau_m, self.tau_s, self.t_ref, self.lateral = tau_m, tau_s, t_ref, lateral
        self.block_elements = block_elements
        self.reference_timing = reference_timing
        self._set_pool_dtype()

    @property
    def spsp_delay(self) -> int | None:
        """The S-PSP's presynaptic delay: t_ref under the reference code's timing
        (:mod:`.spsp`), else None (the spec's)."""
        return self.t_ref if self.reference_timing else None

    def _set_pool_dtype(self) -> None:
        dtype = next((layer.weight.dtype for layer in self.layers if layer.learned), None)
        for layer in self.layers:
            if not layer.learned and dtype is not None:
                layer.dtype = dtype

    @property
    def weights(self) -> list[torch.Tensor]:
        """The learned weight tensors, input side first."""
        return [layer.weight for layer in self.layers if layer.learned]

    def to(self, device, dtype=None) -> SpikingNetwork:
        for layer in self.layers:
            layer.weight = layer.weight.to(device=device, dtype=dtype or layer.weight.dtype)
        self._set_pool_dtype()
        return self

    def _block(self, batch: int, steps: int, *sizes: int) -> int:
        return max(1, min(steps, self.block_elements // (batch * max(sizes))))

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> Record:
        """Run the network on input spikes ``x`` (batch, steps, *input shape)."""
        batch, steps = x.shape[:2]
        dtype = next((la.weight.dtype for la in self.layers if la.learned), torch.float32)
        record = Record([], [], [])
        pre = time_major(x)  # (steps, batch, inputs): a step is one slice
        for index, layer in enumerate(self.layers):
            n = math.prod(layer.out_shape)
            is_output = index == len(self.layers) - 1
            lif = LIF(self.thresholds[index], self.tau_m, self.tau_s, self.t_ref)
            lif.lateral = self.lateral if is_output else 0.0
            lif.reset((batch, n), dtype=dtype, device=x.device)
            spikes = torch.empty(steps, batch, n, dtype=torch.bool, device=x.device)
            sums = TrainSums(self.tau_m, self.tau_s, (batch, n), dtype, x.device, self.spsp_delay)
            block = self._block(batch, steps, pre.shape[-1], n)
            for t0 in range(0, steps, block):
                chunk = pre[t0 : t0 + block]
                length = chunk.shape[0]
                current = layer.forward(chunk.reshape(length * batch, -1)).to(dtype)
                current = current.view(length, batch, n)
                fired = lif(current.transpose(0, 1)).transpose(0, 1)
                spikes[t0 : t0 + length] = fired
                sums.add(fired, current)
            record.spikes.append(spikes.transpose(0, 1))
            record.counts.append(sums.counts)
            record.psp_sums.append(sums.psp_sums)
            record.found.append((block, sums.found))
            pre = spikes
        return record

    @torch.no_grad()
    def gradients(
        self,
        x: torch.Tensor,
        record: Record,
        delta_out: torch.Tensor,
        side_effect: bool = True,
        silent_psp: float = SILENT_PSP,
        only_last: bool = False,
        silent_side_effect: str = "reference",
        forced: torch.Tensor | None = None,
        out_factor: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """dE/dw of every learned layer (input side first), summed over the batch, given the
        output deltas ``delta_out`` = (o - y)/nu. ``only_last`` computes the output layer's
        alone (the hidden deltas are then not needed).

        ``silent_side_effect``: a silent neuron's side effect S_i, ``"reference"`` 0.5 sum_l
        w_il / nu_i (the reference's ``g_Spiking_wgrad_sideEffect``: e/o := 0.5 for every
        input), ``"half"`` the constant 0.5. ``forced`` (batch, n_out) bool marks output trains
        replaced after the forward pass (:func:`.output.force_label_spikes`): their side-effect
        sums are recomputed here. ``out_factor`` (batch, n_out) multiplies the output layer's
        weight gradient (the reference's lateral factor, :func:`.output.lateral_factor`)."""
        inputs = [time_major(x), *(time_major(s) for s in record.spikes[:-1])]
        grads: list[torch.Tensor] = []
        delta = delta_out
        last = len(self.layers) - 1
        for index in reversed(range(len(self.layers))):
            layer, nu = self.layers[index], self.thresholds[index]
            o = record.counts[index]
            silent = (o == 0).to(o.dtype)
            post = time_major(record.spikes[index])
            back = index > 0 and not only_last
            dense_out = index == last and isinstance(layer, Dense)  # the pairs: few post neurons
            found = record.found[index] if index < len(record.found) else None
            e = self._pair_psp(inputs[index], post, o.dtype, found) if dense_out else None
            psp_sums = record.psp_sums[index]
            if e is not None and forced is not None:
                recomputed = torch.einsum("ij,ibj->bi", layer.weight, e)
                psp_sums = torch.where(forced, recomputed, psp_sums)
            if not side_effect:
                s = torch.zeros_like(o)
            else:
                if silent_side_effect == "reference" and layer.learned:
                    quiet = SILENT_RATIO * layer.fan_in_sum().to(o.dtype) / nu
                else:
                    quiet = torch.full_like(o, SILENT_RATIO)
                s = torch.where(o > 0, psp_sums / (nu * o.clamp(min=1)), quiet)
            g = delta * (1 + s) if layer.learned else None
            if g is not None and index == last and out_factor is not None:
                g = g * out_factor
            if e is not None:
                grad = torch.einsum("bi,ibj->ij", g, e)
                r = torch.einsum("bi,ij,ibj->bj", delta, layer.weight, e) if back else None
            else:
                grad, r = self._contract(layer, inputs[index], post, g, delta, back, found)
            if layer.learned:
                if silent_psp:  # e_{i|j} := silent_psp for a silent i whose input j fired
                    if index > 0:
                        pre_fired = (record.counts[index - 1] > 0).to(o.dtype)
                    else:  # did input j fire at all (a max over steps: fast on bytes)
                        pre_fired = as_bytes(inputs[0]).amax(0).to(o.dtype)
                    grad = grad + silent_psp * layer.weight_grad(g * silent, pre_fired)
                grads.append(grad.view_as(layer.weight))
            if not back:
                break
            o_pre = record.counts[index - 1]
            nu_pre = self.thresholds[index - 1]
            full, from_silent = layer.transpose(delta), layer.transpose(delta * silent)
            ratio = torch.where(o_pre > 0, r / o_pre.clamp(min=1) + from_silent, full)
            delta = ratio / nu_pre
        return grads[::-1]

    def _spike_lists(self, post: torch.Tensor, block: int, dtype, found) -> list:
        """:func:`.spsp.post_spike_lists` of time-major ``post``, from the forward pass's lists
        ``found`` = (block size, lists) when they are of the same blocks."""
        lists = found[1] if found is not None and found[0] == block else None
        return post_spike_lists(post, block, self.tau_m, dtype, self.spsp_delay, lists)

    def _pair_psp(self, pre: torch.Tensor, post: torch.Tensor, dtype, found=None) -> torch.Tensor:
        """e_{i|j} of every pair, (n_post, batch, n_pre), block by block (for the output layer:
        few post neurons); ``pre``, ``post`` time-major."""
        steps, batch, n_pre = pre.shape
        n_post = post.shape[-1]
        block = self._block(batch, steps, n_pre, n_post)
        delay = self.spsp_delay
        spike_lists = self._spike_lists(post, block, dtype, found)
        trace, delayed = PSPTrace(self.tau_m, self.tau_s), DelayedRows(delay)
        e = torch.zeros(n_post, batch, n_pre, dtype=dtype, device=pre.device)
        for spike_list, t0 in zip(spike_lists, range(0, steps, block), strict=True):
            u = delayed(time_major(trace(pre[t0 : t0 + block].transpose(0, 1), dtype)))
            e += spsp_block(spike_list, u.view(-1, n_pre), batch, n_post)
        return e

    def _contract(
        self,
        layer: Layer,
        pre: torch.Tensor,
        post: torch.Tensor,
        g: torch.Tensor | None,
        delta: torch.Tensor,
        back: bool,
        found=None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """sum_b g_i e_{i|j} (as the layer's weight gradient) and sum_i delta_i w_ij e_{i|j}
        (batch, pre), as contractions over (batch, time), block by block; ``pre`` and
        ``post`` time-major (steps, batch, n). Under the reference timing a block's "time"
        is its delayed trace rows then its undelayed ones (:mod:`.spsp`)."""
        steps, batch, n_pre = pre.shape
        n_post = post.shape[-1]
        dtype = delta.dtype
        block = self._block(batch, steps, n_pre, n_post)
        delay = self.spsp_delay
        spike_lists = self._spike_lists(post, block, dtype, found)
        trace, delayed = PSPTrace(self.tau_m, self.tau_s), DelayedRows(delay)
        dense = isinstance(layer, Dense)
        grad = torch.zeros_like(layer.weight) if g is not None else None
        r = torch.zeros(batch, n_pre, dtype=dtype, device=pre.device) if back else None
        for spike_list, t0 in zip(spike_lists, range(0, steps, block), strict=True):
            u = delayed(time_major(trace(pre[t0 : t0 + block].transpose(0, 1), dtype)))
            length = u.shape[0]
            u_rows = u.view(length * batch, n_pre)  # row t * batch + b
            pair, t, a = spike_list
            if grad is not None and dense:  # one bag of u rows per post neuron, weights g A
                i, b = pair // batch, pair % batch
                grad += bag_sum(t * batch + b, u_rows, i, n_post, g[b, i] * a)
            if (grad is not None and not dense) or r is not None:
                a = on_grid(spike_list, (length, batch, n_post))
                if grad is not None and not dense:
                    ga = (a * g).view(length * batch, n_post)
                    grad += layer.weight_grad(ga, u_rows).view_as(grad)
                if r is not None:
                    da = (a * delta).view(length * batch, n_post)
                    r += (u * layer.transpose(da).view(length, batch, n_pre)).sum(0)
        return grad, r


class TrainSums:
    """Per train (example b, neuron i), accumulated during the forward pass block by block:
    the spike count o_i and the side-effect sum sum_l w_il e_{i|l} = sum_f [U_i(t_f) -
    exp(-(t_f - t_{f-1})/tau_m) U_i(t_{f-1})], where U_i is the unreset PSP of neuron i's
    weighted input current (the S-PSP factorisation of :mod:`.spsp` with W moved inside the
    linear filter): no extra matrix product. Each block's spikes are a list sorted by train;
    a spike's previous one is the list's previous entry of the same train, or the train's last
    spike before the block (kept: its U and time). ``delay`` given (the reference timing,
    :mod:`.spsp`): U_i(t_f - delay) - exp(-(t_f - t_{f-1} - delay)/tau_m) U_i(t_{f-1})."""

    def __init__(
        self,
        tau_m: float,
        tau_s: float,
        shape: tuple[int, int],
        dtype,
        device,
        delay: int | None = None,
    ):
        self.tau_m, self.shape, self.delay = tau_m, shape, delay or 0
        self.trace = PSPTrace(tau_m, tau_s)
        self.delayed = DelayedRows(delay)
        n_trains = shape[0] * shape[1]
        self.n = torch.zeros(n_trains, dtype=torch.int64, device=device)  # train i * batch + b
        self.sums = torch.zeros(n_trains, dtype=dtype, device=device)
        self.last_u = torch.zeros(n_trains, dtype=dtype, device=device)  # U at the last spike
        self.last_t = torch.full((n_trains,), -math.inf, dtype=dtype, device=device)
        self.t0 = 0
        self.found: list[tuple[torch.Tensor, torch.Tensor]] = []  # every block's (pair, t)

    def _by_example(self, per_train: torch.Tensor) -> torch.Tensor:
        batch, n = self.shape
        return per_train.view(n, batch).T

    @property
    def counts(self) -> torch.Tensor:
        """o (batch, n)"""
        return self._by_example(self.n.to(self.sums.dtype))

    @property
    def psp_sums(self) -> torch.Tensor:
        """sum_l w_il e_{i|l} (batch, n)"""
        return self._by_example(self.sums)

    def add(self, fired: torch.Tensor, current: torch.Tensor) -> None:
        """The next block: ``fired`` and ``current`` time-major (steps, batch, n)."""
        length, batch, _ = fired.shape
        u = time_major(self.trace(current.transpose(0, 1)))
        u_both = self.delayed(u)  # row t: U(t - delay) (u itself when not delayed)
        pair, t = spikes_by_train(fired)
        self.found.append((pair, t))
        self.n += torch.bincount(pair, minlength=len(self.n))
        u_now = u[t, pair % batch, pair // batch]
        u_first = u_both[t, pair % batch, pair // batch]  # U(t_f - delay)
        t = (t + self.t0).to(u.dtype)
        same = pair[1:] == pair[:-1]
        u_before, t_before = self.last_u[pair], self.last_t[pair]
        u_before[1:] = torch.where(same, u_now[:-1], u_before[1:])
        t_before[1:] = torch.where(same, t[:-1], t_before[1:])
        reset = torch.exp(-(t - t_before - self.delay) / self.tau_m)
        self.sums.index_add_(0, pair, u_first - reset * u_before)
        last = torch.ones_like(pair, dtype=torch.bool)
        last[:-1] = ~same
        self.last_u[pair[last]] = u_now[last]
        self.last_t[pair[last]] = t[last]
        self.t0 += length
