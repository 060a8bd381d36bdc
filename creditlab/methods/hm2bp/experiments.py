"""Experiments of Jin, Zhang & Li (2018): HM2-BP on MNIST (MLP and CNN), N-MNIST and, beyond
the paper, Fashion-MNIST.

* ``hm2bp.mnist``: 784-800-10, thresholds 20 / 8, T = 400, Bernoulli rate coding; the data
  set is the ``dataset`` field (``--set dataset=fashion_mnist`` for Fashion-MNIST).
* ``hm2bp.mnist_cnn``: 15C5-P2-40C5-P2-300-10 with spiking pooling layers (thresholds
  5/2/12/4/10/10); no augmentation here (the paper's 99.49% used it).
* ``hm2bp.nmnist``: 2312-800-10, thresholds 15 / 15, T = 540 steps of 600 us, saccade-
  stabilised frames from :mod:`creditlab.data.nmnist`; exits 2 naming where to put the files
  when they are missing.

Every run reports ``test_accuracy`` (argmax of the output spike counts), ``mean_output_spikes``,
``firing_rate_layer<k>`` (spikes per neuron per 1 ms step, on the test set) and
``alignment_cosine``: the cosine between HM2-BP's output-layer gradient and the exact gradient of
the rate loss with respect to the output weights, o = W e / nu with the spike trains held fixed
(the one layer where an exact gradient of a defined function exists: the spike counts
themselves are piecewise constant in the weights).

Paper scale is the reference code's protocol (spec) except for the batch: the reference trains
with batch 1 (60,000 Adam steps an epoch); here minibatches (the mean of per-example gradients),
``batch_size`` and ``lr`` chosen on tuning seeds (see docs/hm2bp.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from creditlab.errors import UserError
from creditlab.methods.hm2bp import learner as hm2bp_learner
from creditlab.methods.hm2bp import loss, network
from creditlab.methods.hm2bp.learner import (
    Encoder,
    HM2BPLearner,
    fixed_rate_encoder,
    rate_encoder,
)
from creditlab.methods.hm2bp.network import Conv, Dense, Pool, dense_layers
from creditlab.methods.hm2bp.training import spiking_learner, train_and_measure
from creditlab.methods.hm2bp.yardstick import yardstick_cnn
from creditlab.registry import experiment
from creditlab.runner import RunContext, derive_seed
from creditlab.spiking import T_REF, TAU_M, TAU_S
from creditlab.train import DataConfig, load_split

DEVICES = ("cpu", "cuda")
"""the data, the weights, the input spikes and the simulation all live on ctx.device"""
PAPER = (
    "Jin, Zhang & Li, 'Hybrid Macro/Micro Level Backpropagation for Training Deep Spiking "
    "Neural Networks' (NeurIPS 2018, arXiv 1805.07866)"
)
LOGS = "reference code's logs (jinyyy666/mm-bp-snn), best test accuracy"
ST_RSBP = (
    "for reference only, not HM2-BP: ST-RSBP (Zhang & Li, NeurIPS 2019, the same lab's "
    "successor), recurrent 400-400, T = 400, on Fashion-MNIST"
)


@dataclass
class SpikingConfig(DataConfig):
    """Settings every HM2-BP experiment shares (defaults: the reference code's)."""

    n_steps: int = 400
    """time steps (1 ms each) a sample is shown"""
    input_scale: float = 5.5
    """rate coding: a spike per step with probability pixel / input_scale (pixel in [0, 1])"""
    tau_m: float = TAU_M
    """membrane time constant (steps)"""
    tau_s: float = TAU_S
    """synaptic time constant (steps)"""
    t_ref: int = T_REF
    """refractory period (steps)"""
    desired: float = loss.DESIRED
    """target spike count of the label's output neuron"""
    undesired: float = loss.UNDESIRED
    """target spike count of the other output neurons"""
    margin: float = loss.MARGIN
    """an output error |o - y| within this is zeroed"""
    lateral_inhibition: float = 1.0
    """input sent to every other output neuron per output spike, negated (0: off; the
    reference's LOCAL_INHIBITION, localInbStrength 1)"""
    lateral_gradient: bool = True
    """multiply the output weight gradient by the reference's lateral factor (off: the
    inhibition acts in the forward pass only)"""
    label_spikes: bool = True
    """give a silent label neuron regular spikes after its error is computed (the reference's
    g_modifySpikes)"""
    fixed_input: bool = True
    """draw each image's input trains once and reuse them (the reference); off: fresh trains
    every step"""
    reference_timing: bool = True
    """the reference's S-PSP timing (presynaptic spikes delayed by t_ref, reset clock at the
    previous post spike + t_ref); off: the spec's"""
    side_effect: bool = True
    """include the side-effect factor (1 + S_i) in the weight gradient"""
    silent_side_effect: Literal["reference", "half"] = "reference"
    """a silent neuron's side effect: 0.5 sum_l w_il / nu (reference) or 0.5"""
    silent_psp: float = network.SILENT_PSP
    """S-PSP used for a silent neuron's fired inputs in its weight gradient (reference: 0.1)"""
    reg_lambda: float = hm2bp_learner.REG_LAMBDA
    """lambda of the weight regulariser (0: off)"""
    reg_beta: float = hm2bp_learner.REG_BETA
    """beta of the weight regulariser"""
    weight_limit: float = hm2bp_learner.WEIGHT_LIMIT
    """weights are clipped to +-weight_limit (and scaled by it in the regulariser)"""
    lr: float = hm2bp_learner.LR
    """Adam learning rate at epoch 0 (then lr / sqrt(epoch + 1))"""
    epochs: int = 200
    """passes over the training set"""
    batch_size: int = 16
    """examples per minibatch (the gradient is their mean; the reference uses 1)"""
    n_train: int = 0
    """use only the first n_train training examples (0: all)"""
    n_test: int = 0
    """use only the first n_test test examples (0: all)"""
    eval_batch: int = hm2bp_learner.EVAL_BATCH
    """examples simulated at once when evaluating"""
    evaluate_train: bool = False
    """after each epoch, evaluate the whole training set for train_accuracy / train_loss;
    off: they are the means over the epoch's minibatches, before each update"""
    block_elements: int = network.BLOCK_ELEMENTS
    """cap on batch x steps x neurons of the per-block float tensors (memory beyond the spike
    record)"""
    threads: int = 1
    """torch CPU threads (the per-step neuron updates run fastest on one thread of a shared
    2-core machine; 0 keeps torch's default)"""


@dataclass
class MnistConfig(SpikingConfig):
    hidden: tuple[int, ...] = (800,)
    """hidden layer widths"""
    thresholds: tuple[float, ...] = (20.0, 8.0)
    """firing threshold nu of each layer (hidden..., output)"""
    init_w: tuple[float, ...] = (1.0, 1.0)
    """weights start uniform in +-init_w, one value per layer (the reference's initW)"""


@dataclass
class CnnConfig(SpikingConfig):
    channels: tuple[int, ...] = (15, 40)
    """output channels of the two 5x5 convolutions (each followed by 2x2 spiking pooling)"""
    dense: int = 300
    """width of the dense hidden layer"""
    thresholds: tuple[float, ...] = (5.0, 2.0, 12.0, 4.0, 10.0, 10.0)
    """thresholds of conv1, pool1, conv2, pool2, dense, output"""
    pool_weight: float = 1.0
    """fixed weight of every synapse of a pooling neuron"""
    init_w: tuple[float, ...] = (0.5, 0.5, 1.0, 1.0)
    """weights of conv1, conv2, dense, output start uniform in +-init_w (the reference's)"""
    reg_lambda: float = 0.0
    """lambda of the weight regulariser (the reference CNN's LAMBDA_REG is commented out)"""
    yardstick: bool = True
    """also train a same-size non-spiking CNN by backprop on the same images and epochs"""


@dataclass
class NmnistConfig(SpikingConfig):
    dataset: Literal["nmnist"] = "nmnist"
    """data set: N-MNIST event recordings (creditlab.data.nmnist), 60k train / 10k test"""
    n_steps: int = 540
    """time steps of bin_us each"""
    bin_us: int = 600
    """width of one time step in microseconds"""
    hidden: tuple[int, ...] = (800,)
    """hidden layer widths"""
    thresholds: tuple[float, ...] = (15.0, 15.0)
    """firing threshold nu of each layer (hidden..., output)"""
    init_w: tuple[float, ...] = (1.0, 1.0)
    """weights start uniform in +-init_w, one value per layer (the reference's initW)"""
    fixed_input: bool = True
    """(N-MNIST: the recorded events are the input; no draws)"""
    reg_beta: float = 0.01
    """beta of the weight regulariser (the reference's N-MNIST setting)"""


def _check(cfg: SpikingConfig, n_learned: int) -> None:
    if len(cfg.init_w) != n_learned:
        raise UserError(f"init_w needs {n_learned} values, one per learned layer")
    if cfg.n_steps < 1 or cfg.epochs < 1 or cfg.batch_size < 1:
        raise UserError("n_steps, epochs and batch_size must be at least 1")


def _train(
    cfg: SpikingConfig, ctx: RunContext, learner: HM2BPLearner, tensors: tuple[torch.Tensor, ...]
) -> dict[str, float]:
    metrics = train_and_measure(
        ctx,
        learner,
        tensors,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        evaluate_train=cfg.evaluate_train,
    )
    default = type(cfg)()
    changed = [
        f"{f}={getattr(cfg, f)}"
        for f in ("n_steps", "epochs", "input_scale", "desired", "undesired", "margin", "n_train")
        if getattr(cfg, f) != getattr(default, f)
    ]
    if changed:
        ctx.note("Shortened or changed from the reference protocol: " + ", ".join(changed) + ".")
    ctx.note(
        f"Minibatches of {cfg.batch_size} (mean of per-example gradients) where the reference "
        "trains with batch 1; alignment_cosine is over the output layer, the one layer with an "
        "exact gradient (o = W e / nu, spike trains fixed)."
    )
    return metrics


def _image_tensors(cfg: SpikingConfig, ctx: RunContext) -> tuple[torch.Tensor, ...]:
    _, (x_train, y_train, x_test, y_test) = load_split(cfg.dataset, cfg.n_train, ctx)
    if cfg.n_test:
        x_test, y_test = x_test[: cfg.n_test], y_test[: cfg.n_test]
        ctx.data["n_test"] = len(x_test)
    return x_train, y_train, x_test, y_test


def _encoded(
    cfg: SpikingConfig, ctx: RunContext, tensors: tuple[torch.Tensor, ...], shape: tuple
) -> tuple[Encoder, tuple[torch.Tensor, ...]]:
    """The encoder and the training tensors: with ``fixed_input`` the samples become indices
    into the images (train then test) and each image's trains are drawn once (the
    reference's); else fresh Bernoulli trains every step."""
    x_train, y_train, x_test, y_test = tensors
    if not cfg.fixed_input:
        return rate_encoder(shape, cfg.n_steps, cfg.input_scale), tensors
    images = torch.cat([x_train, x_test])
    encode = fixed_rate_encoder(
        images, shape, cfg.n_steps, cfg.input_scale, derive_seed(ctx.seed, "input")
    )
    n = len(x_train)
    index = torch.arange(len(images), device=images.device)
    return encode, (index[:n], y_train, index[n:], y_test)


MNIST_PAPER = {
    "test_accuracy": (0.9893, f"{LOGS}, 784-800-10 MLP", "mnist60k"),
    "test_accuracy_st_rsbp_reference": (0.9013, ST_RSBP, "fashion_mnist"),
}


@experiment(
    "hm2bp.mnist",
    devices=DEVICES,
    config=MnistConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            "hidden": (100,),
            "n_steps": 40,
            "input_scale": 2.0,
            "desired": 6.0,
            "undesired": 1.0,
            "margin": 1.0,
            "thresholds": (5.0, 3.0),
            "lateral_inhibition": 0.375,
            "epochs": 2,
            "n_train": 400,
            "n_test": 200,
            "batch_size": 20,
            "lr": 5e-3,
        },
        "quick": {
            "n_steps": 100,
            "input_scale": 2.0,
            "desired": 20.0,
            "undesired": 3.0,
            "margin": 3.0,
            "epochs": 2,
            "batch_size": 32,
            "lr": 6e-3,
        },
    },
    paper=MNIST_PAPER,
    demo=True,
)
def mnist(cfg: MnistConfig, ctx: RunContext) -> dict[str, float]:
    """HM2-BP, 784-800-10 spiking MLP on MNIST (or the `dataset` field's data set)."""
    _check(cfg, len(cfg.hidden) + 1)
    tensors = _image_tensors(cfg, ctx)
    generator = ctx.generator()
    n_in = tensors[0][0].numel()
    layers = dense_layers(n_in, cfg.hidden, 10, cfg.init_w, generator)
    encode, tensors = _encoded(cfg, ctx, tensors, (n_in,))
    learner = spiking_learner(cfg, ctx, layers, encode, max(1, len(tensors[0]) // cfg.batch_size))
    if cfg.dataset == "fashion_mnist":
        ctx.note(
            "Fashion-MNIST: the paper reports no HM2-BP figure; ST-RSBP's 90.13% (recurrent "
            "400-400) is declared as a reference for another method, not a reproduction target."
        )
    return _train(cfg, ctx, learner, tensors)


@experiment(
    "hm2bp.mnist_cnn",
    devices=DEVICES,
    config=CnnConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            "channels": (4, 8),
            "dense": 64,
            "n_steps": 40,
            "input_scale": 1.0,
            "desired": 6.0,
            "undesired": 1.0,
            "margin": 0.0,
            "thresholds": (2.0, 1.0, 2.0, 1.0, 2.0, 2.0),
            "init_w": (1.0, 1.0, 1.0, 1.0),
            "lateral_inhibition": 0.2,
            "epochs": 2,
            "n_train": 300,
            "n_test": 100,
            "batch_size": 10,
            "lr": 1e-2,
        },
        "quick": {
            "channels": (6, 12),
            "dense": 100,
            "n_steps": 60,
            "input_scale": 2.0,
            "desired": 10.0,
            "undesired": 1.0,
            "margin": 1.0,
            "thresholds": (2.0, 1.0, 2.0, 1.0, 2.0, 2.0),
            "lateral_inhibition": 0.2,
            "epochs": 2,
            "n_train": 2000,
            "n_test": 500,
            "batch_size": 16,
            "lr": 2e-3,
        },
    },
    paper={"test_accuracy": (0.9949, f"{LOGS}, with augmentation (mean 99.42%)", "mnist60k")},
)
def mnist_cnn(cfg: CnnConfig, ctx: RunContext) -> dict[str, float]:
    """HM2-BP, spiking CNN 15C5-P2-40C5-P2-300-10 on MNIST."""
    _check(cfg, 4)
    if len(cfg.thresholds) != 6 or len(cfg.channels) != 2:
        raise UserError("mnist_cnn needs 2 channels and 6 thresholds (c1, p1, c2, p2, dense, out)")
    tensors = _image_tensors(cfg, ctx)
    generator = ctx.generator()
    shape = tuple(tensors[0].shape[1:])
    c1 = Conv(shape, cfg.channels[0], 5, cfg.init_w[0], generator)
    p1 = Pool(c1.out_shape, 2, cfg.pool_weight)
    c2 = Conv(p1.out_shape, cfg.channels[1], 5, cfg.init_w[1], generator)
    p2 = Pool(c2.out_shape, 2, cfg.pool_weight)
    flat = (c2.out_shape[0] * p2.out_shape[1] * p2.out_shape[2],)
    d1 = Dense(flat, cfg.dense, cfg.init_w[2], generator)
    out = Dense((cfg.dense,), 10, cfg.init_w[3], generator)
    images = tensors
    encode, tensors = _encoded(cfg, ctx, tensors, shape)
    learner = spiking_learner(
        cfg, ctx, [c1, p1, c2, p2, d1, out], encode, max(1, len(tensors[0]) // cfg.batch_size)
    )
    ctx.note("No data augmentation (the paper's CNN figure used scale, rotation, distortion).")
    metrics = _train(cfg, ctx, learner, tensors)
    if cfg.yardstick:
        metrics.update(yardstick_cnn(cfg, ctx, images))
    return metrics


@experiment(
    "hm2bp.nmnist",
    devices=DEVICES,
    config=NmnistConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            "hidden": (100,),
            "n_steps": 100,
            "bin_us": 3000,
            "desired": 6.0,
            "undesired": 1.0,
            "margin": 1.0,
            "thresholds": (5.0, 3.0),
            "epochs": 1,
            "n_train": 200,
            "n_test": 100,
            "batch_size": 20,
            "lr": 5e-3,
        },
        "quick": {
            "n_steps": 180,
            "bin_us": 1800,
            "desired": 15.0,
            "undesired": 2.0,
            "margin": 2.0,
            "epochs": 2,
            "n_train": 3000,
            "n_test": 1000,
            "batch_size": 32,
            "lr": 3e-3,
        },
    },
    paper={"test_accuracy": (0.9888, f"{LOGS}, 2312-800-10", "nmnist")},
)
def nmnist(cfg: NmnistConfig, ctx: RunContext) -> dict[str, float]:
    """HM2-BP, 2312-800-10 spiking MLP on N-MNIST (saccade-stabilised event frames)."""
    _check(cfg, len(cfg.hidden) + 1)
    from creditlab.data.nmnist import load_nmnist_spikes

    train = load_nmnist_spikes("train", cfg.n_steps, cfg.bin_us, cfg.n_train or None)
    test = load_nmnist_spikes("test", cfg.n_steps, cfg.bin_us, cfg.n_test or None)
    ctx.data = {
        "name": "nmnist",
        "protocol": "nmnist",
        "source": train.source,
        "n_train": len(train),
        "n_test": len(test),
        "n_steps": cfg.n_steps,
        "bin_us": cfg.bin_us,
    }
    # The samples are indices into the sparse spike lists; frames are built a batch at a time.
    splits = {"train": train, "test": test}
    offset = len(train)

    def encode(index: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        rows = index.long().cpu().numpy()
        if rows.min() >= offset:
            frames = splits["test"].frames(rows - offset)
        else:
            frames = splits["train"].frames(rows)
        return frames.to(ctx.device).bool()

    x_train = torch.arange(len(train), device=ctx.device)
    x_test = torch.arange(offset, offset + len(test), device=ctx.device)
    tensors = (x_train, train.labels.to(ctx.device), x_test, test.labels.to(ctx.device))
    layers = dense_layers(2312, cfg.hidden, 10, cfg.init_w, ctx.generator())
    learner = spiking_learner(cfg, ctx, layers, encode, max(1, len(train) // cfg.batch_size))
    return _train(cfg, ctx, learner, tensors)
