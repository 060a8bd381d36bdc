"""Experiments of Bloem, "Learning sparse transformations through backpropagation" (arXiv
1810.09184): the adaptive sparse hyperlayer recovering a matrix, attending and sorting.

* ``sparse.identity``: a free-parameter hyperlayer with k = n tuples learns y = x for a 32 x 32
  identity and for a fixed random permutation (the paper's Sec. 4.1 and Fig. 2 at one size);
  ``index_accuracy_<target>`` (fraction of the target's n entries that some rounded tuple
  hits) and ``test_mse_<target>`` on fresh samples, in evaluation mode (rounded tuples).
  The reference's settings: values fixed to 1, 4 global + 4 local candidates in a region of
  4, candidates pooled over all k tuples, sigma a variance.
* ``sparse.figure2``: the paper's Fig. 2: test MSE (10,000 fresh samples) of a learned n x n
  identity against n = 8 ... 128 for the sparse layer, and for a REINFORCE-trained layer at the
  small sizes the reference runs it at (4-16); ``<sparse|reinforce>_n<n>_test_mse``.
* ``sparse.attention``: glimpse attention (Sec. 4.2) on MNIST and on a generated cluttered,
  rotated, scaled 100 x 100 canvas (:mod:`.canvas`), against REINFORCE hard attention and a
  conv net on the whole image, all trained side by side on the same minibatches for the same
  epochs; ``<task>_<model>_test_accuracy``.
* ``sparse.sort``: differentiable quicksort (Sec. 4.3) against NeuralSort and diffsort
  (differentiable sorting networks) at equal budget
  (the same key network, sequences and iterations) on NeuralSort's Table-1 benchmark
  (sequences of n four-digit numbers, n = 3, 5, 7, 9, 15) and the paper's single digits
  (n = 4, 8, 16); ``<large|digit>_n<n>_<method>_all_correct`` and ``..._ranks_correct`` on
  fresh sequences of *held-out* test digits only. NeuralSort's published Table-1 figures are
  declared for its rows (protocol mnist60k: they do not sit beside mnist10k runs).

Departures of the quick scales from the paper are config fields, listed in each scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from creditlab import data
from creditlab.errors import UserError
from creditlab.methods.sparse.attention import glimpse_figure
from creditlab.methods.sparse.hyperlayer import SparseHyperLayer
from creditlab.methods.sparse.recovery import ReinforceLayer, recovery_loss, test_mse
from creditlab.methods.sparse.tasks import (
    TEST_SEED,
    attention_data,
    index_accuracy,
    target_permutation,
)
from creditlab.methods.sparse.training import (
    SideBySide,
    attention_learners,
    train_iterations,
    train_sorting,
)
from creditlab.plots import line_plot
from creditlab.registry import experiment
from creditlab.runner import RunContext, StageContext, derive_seed, finished_stages
from creditlab.train import DataConfig, fit

PAPER = (
    "Bloem, 'Learning sparse transformations through backpropagation' (arXiv 1810.09184; "
    "the adaptive sparse hyperlayer)"
)
NEURALSORT = "Grover, Wang, Zweig & Ermon, 'Stochastic Optimization of Sorting Networks via "
NEURALSORT += "Continuous Relaxations' (ICLR 2019), Table 1, deterministic NeuralSort"


def _positive(**values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise UserError(f"{name} must be positive, got {value}")


# --- sparse.identity -------------------------------------------------------------------------


@dataclass
class IdentityConfig:
    size: int = 32
    """n: the layer maps R^n -> R^n (the paper's Fig. 2 sweeps 8-128)"""
    targets: tuple[Literal["identity", "permutation"], ...] = ("identity", "permutation")
    """matrices to recover: the identity, and a fixed random permutation (seeded by the run)"""
    k: int = 0
    """index tuples (0: k = n, the reference code's setting)"""
    iterations: int = 10000
    """training iterations (the reference: 5k-20k for sizes 8-128)"""
    batch_size: int = 64
    """samples x ~ N(0, I) per iteration"""
    lr: float = 0.005
    """Adam's learning rate (the reference's)"""
    sigma_scale: float = 0.1
    """sigmas (variances) are softplus(raw + 2) times size times this (the reference's 0.1)"""
    min_sigma: float = 0.0
    """added to every sigma after scaling (the reference's 0)"""
    n_global: int = 4
    """candidates per tuple sampled uniformly over the whole index space (the reference's
    identity script: 4)"""
    n_local: int = 4
    """candidates per tuple sampled uniformly around round(mean) (the reference's: 4)"""
    region: int = 4
    """side of the box the local candidates are drawn from (the reference's: 4)"""
    fix_values: bool = True
    """fix every value to 1 (the reference README's ``-F`` for this task)"""
    chunk_size: int = 0
    """tuples whose candidates are pooled and normalised together (0: all k, the reference's
    default; 1: per-tuple normalisation, the earlier reading of the spec)"""
    test_samples: int = 10000
    """fresh samples the test MSE is measured on (the reference's 10,000)"""
    eval_every: int = 1000
    """iterations between measurements of index accuracy and test MSE"""
    log_every: int = 100
    """iterations between training-loss log lines"""
    threads: int = 1
    """torch CPU threads (tiny products: one is fastest on a shared machine; 0: default)"""


@experiment(
    "sparse.identity",
    config=IdentityConfig,
    paper_title=PAPER,
    scales={
        "smoke": {"size": 8, "iterations": 1500, "eval_every": 500, "test_samples": 1000},
        "quick": {"iterations": 5000},
    },
    demo=True,
)
def identity(cfg: IdentityConfig, ctx: RunContext) -> dict[str, float]:
    """Recover a 32x32 identity and a random permutation with a free sparse hyperlayer."""
    _positive(size=cfg.size, iterations=cfg.iterations, batch_size=cfg.batch_size)
    _positive(eval_every=cfg.eval_every, log_every=cfg.log_every, test_samples=cfg.test_samples)
    if cfg.k < 0:
        raise UserError(f"k must be positive (or 0 for k = size), got {cfg.k}")
    if cfg.chunk_size < 0 or (cfg.chunk_size and (cfg.k or cfg.size) % cfg.chunk_size):
        raise UserError(f"chunk_size {cfg.chunk_size} must divide k (0: one chunk of all k)")
    if not cfg.targets:
        raise UserError("targets is empty; name identity and/or permutation")
    n, k = cfg.size, cfg.k or cfg.size
    perms = {t: target_permutation(t, n, ctx.generator()) for t in cfg.targets}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        layers = {
            t: SparseHyperLayer(
                (n,),
                (n,),
                k,
                n_global=cfg.n_global,
                n_local=cfg.n_local,
                region=cfg.region,
                sigma_scale=cfg.sigma_scale,
                min_sigma=cfg.min_sigma,
                fix_values=cfg.fix_values,
                chunk_size=cfg.chunk_size,
            )
            for t in cfg.targets
        }
    optimizers = {t: torch.optim.Adam(m.parameters(), lr=cfg.lr) for t, m in layers.items()}
    x_test = torch.randn(cfg.test_samples, n, generator=torch.Generator().manual_seed(TEST_SEED))

    def step() -> dict[str, torch.Tensor]:
        x = torch.randn(cfg.batch_size, n)
        return {t: F.mse_loss(layers[t](x), x[:, perms[t]]) for t in layers}

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        row = {}
        for t, layer in layers.items():
            row[f"index_accuracy_{t}"] = index_accuracy(layer, perms[t])
            row[f"test_mse_{t}"] = F.mse_loss(layer(x_test), x_test[:, perms[t]]).item()
        return row

    curve = train_iterations(
        ctx,
        layers,
        optimizers,
        cfg.iterations,
        step,
        log_every=cfg.log_every,
        evaluate=evaluate,
        eval_every=cfg.eval_every,
    )
    metrics = dict(curve[-1][1])
    steps = [s for s, _ in curve]
    line_plot(
        ctx.plots / "index_accuracy.png",
        {t: (steps, [row[f"index_accuracy_{t}"] for _, row in curve]) for t in layers},
        xlabel="iteration",
        ylabel="index accuracy (rounded tuples)",
        title=f"{n}x{n} recovery with k={k} tuples",
    )
    return metrics


# --- sparse.figure2 --------------------------------------------------------------------------


@dataclass
class Figure2Config:
    sizes: tuple[int, ...] = (8, 16, 32, 64, 128)
    """n of the n x n identity learned by the sparse hyperlayer (the paper's Fig. 2)"""
    iterations: tuple[int, ...] = (5000, 5000, 5000, 10000, 20000)
    """training iterations per size (the reference: 5k at 32, 5k-20k over 8-128)"""
    reinforce_sizes: tuple[int, ...] = (4, 8, 16)
    """n for the REINFORCE-trained layer (the reference runs it at 4-16 only)"""
    reinforce_iterations: int = 120000
    """training iterations per REINFORCE size (the reference's 120k)"""
    batch_size: int = 64
    """samples x ~ N(0, I) per iteration"""
    lr: float = 0.005
    """Adam's learning rate (the reference's)"""
    sigma_scale: float = 0.1
    """sparse layer: sigmas (variances) are softplus(raw + 2) times size times this"""
    n_global: int = 4
    """sparse layer: global candidates per tuple (the reference's 4)"""
    n_local: int = 4
    """sparse layer: local candidates per tuple (the reference's 4)"""
    region: int = 4
    """sparse layer: side of the local box (the reference's 4)"""
    chunk_size: int = 0
    """sparse layer: tuples pooled together (0: all k, the reference's default)"""
    fix_values: bool = True
    """every value fixed to 1, both layers (the reference README's ``-F``)"""
    test_samples: int = 10000
    """fresh samples the test MSE is measured on (the reference's 10,000)"""
    eval_every: int = 1000
    """iterations between test measurements (on a tenth of the test samples)"""
    log_every: int = 100
    """iterations between training-loss log lines"""
    threads: int = 1
    """torch CPU threads (0: default)"""


def figure2_settings(cfg: Figure2Config) -> list[tuple[str, str, int, int]]:
    """(tag, method, n, iterations) per trained layer."""
    if len(cfg.iterations) != len(cfg.sizes):
        raise UserError("iterations must give one count per entry of sizes")
    if any(n < 2 for n in (*cfg.sizes, *cfg.reinforce_sizes)):
        raise UserError("sizes must be at least 2")
    if not cfg.sizes and not cfg.reinforce_sizes:
        raise UserError("sizes and reinforce_sizes are both empty")
    _positive(batch_size=cfg.batch_size, test_samples=cfg.test_samples, lr=cfg.lr)
    _positive(eval_every=cfg.eval_every, log_every=cfg.log_every)
    _positive(**{f"iterations[{i}]": it for i, it in enumerate(cfg.iterations)})
    if cfg.reinforce_sizes:
        _positive(reinforce_iterations=cfg.reinforce_iterations)
    sparse = [
        (f"sparse_n{n}", "sparse", n, it) for n, it in zip(cfg.sizes, cfg.iterations, strict=True)
    ]
    reinforce = [(f"reinforce_n{n}", "reinforce", n, cfg.reinforce_iterations)
                 for n in cfg.reinforce_sizes]  # fmt: skip
    return sparse + reinforce


@experiment(
    "sparse.figure2",
    config=Figure2Config,
    paper_title=PAPER,
    scales={
        "smoke": {
            "sizes": (4, 8),
            "iterations": (40, 40),
            "reinforce_sizes": (4,),
            "reinforce_iterations": 40,
            "test_samples": 500,
            "eval_every": 20,
            "log_every": 10,
        },
        "quick": {
            "sizes": (8, 16, 32, 64),
            "iterations": (2000, 2000, 3000, 3000),
            "reinforce_sizes": (4, 8),
            "reinforce_iterations": 6000,
        },
    },
)
def figure2(cfg: Figure2Config, ctx: RunContext) -> dict[str, float]:
    """Test MSE of a learned n x n identity against n: sparse hyperlayer vs REINFORCE."""
    settings = figure2_settings(cfg)
    done = finished_stages(ctx, {})
    for tag, method, n, iterations in settings:
        if tag in done:
            continue
        stage = StageContext(ctx, tag, done, prefix=f"{tag}_")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(ctx.seed, tag))
            if method == "sparse":
                layer = SparseHyperLayer((n,), (n,), n, n_global=cfg.n_global,
                                         n_local=cfg.n_local, region=cfg.region,
                                         sigma_scale=cfg.sigma_scale, fix_values=cfg.fix_values,
                                         chunk_size=cfg.chunk_size)  # fmt: skip
            else:
                layer = ReinforceLayer(n, n, fix_values=cfg.fix_values)
        perm = torch.arange(n)
        g = torch.Generator().manual_seed(derive_seed(TEST_SEED, n))
        x_test = torch.randn(cfg.test_samples, n, generator=g)
        probe = x_test[: max(1, cfg.test_samples // 10)]

        def step(layer=layer, perm=perm, tag=tag) -> dict[str, torch.Tensor]:
            return {tag: recovery_loss(layer, torch.randn(cfg.batch_size, len(perm)), perm)}

        def evaluate(layer=layer, perm=perm, probe=probe) -> dict[str, float]:
            return {"test_mse": test_mse(layer, probe, perm)}

        optimizer = torch.optim.Adam([p for p in layer.parameters() if p.requires_grad], cfg.lr)
        curve = train_iterations(stage, {tag: layer}, {tag: optimizer}, iterations, step,
                                 log_every=cfg.log_every, evaluate=evaluate,
                                 eval_every=cfg.eval_every)  # fmt: skip
        done[tag] = {
            "metrics": {
                f"{tag}_test_mse": test_mse(layer, x_test, perm),
                f"{tag}_index_accuracy": index_accuracy(layer, perm),
            },
            "curve": curve,
        }
    metrics = {k: v for result in done.values() for k, v in result["metrics"].items()}
    series = {}
    for method in ("sparse", "reinforce"):
        sizes = [n for _, m, n, _ in settings if m == method]
        if sizes:
            series[method] = (sizes, [metrics[f"{method}_n{n}_test_mse"] for n in sizes])
    line_plot(ctx.plots / "figure2.png", series, xlabel="n (n x n identity)",
              ylabel="test MSE (10,000 fresh samples)", title="the paper's Fig. 2")  # fmt: skip
    return metrics


# --- sparse.attention ------------------------------------------------------------------------

MODELS = ("sparse", "reinforce", "cnn")
TASKS = ("mnist", "canvas")


@dataclass
class AttentionConfig(DataConfig):
    tasks: tuple[Literal["mnist", "canvas"], ...] = TASKS
    """mnist: the 28x28 digits; canvas: cluttered/rotated/scaled digits on a larger canvas"""
    models: tuple[Literal["sparse", "reinforce", "cnn"], ...] = MODELS
    """sparse glimpses (the paper's), REINFORCE hard glimpses, a conv net on the whole image"""
    epochs: int = 350
    """passes over the training set, the same for every model (the reference: 350)"""
    batch_size: int = 64
    """examples per minibatch"""
    lr: float = 1e-3
    """Adam's learning rate"""
    glimpses: int = 4
    """glimpses (boxes) per image"""
    k: int = 3
    """each glimpse is a k x k grid of means"""
    hidden: int = 32
    """hidden width of the MLP that classifies the glimpses"""
    hypernet: Literal["reference", "small"] = "reference"
    """the hypernetwork: the reference's ``prep`` (six convs, pools, two dense layers) or a
    small LeNet-style CNN (one conv + pool per entry of ``channels``, one dense layer)"""
    channels: tuple[int, ...] = (32, 64, 128)
    """conv channels of the hypernetwork (reference: c1, c2, c3 of its six convs) and of
    the whole-image conv net"""
    hyper_hidden: int = 512
    """width of the hypernetwork's dense layers (the reference's 512; also the conv net's)"""
    hyper_maxpool: int = 2
    """reference hypernetwork: side of its first three max-pools (``--pool``; its default 4
    leaves nothing of a 28 x 28 image)"""
    canvas_pool: int = 1
    """canvas only: the hypernetwork reads the canvas average-pooled by this factor (1: full
    resolution, the paper's); the glimpses always read full-resolution pixels"""
    n_global: int = 8
    """candidates per mean sampled uniformly over the image"""
    n_local: int = 8
    """candidates per mean sampled around round(mean)"""
    region: int = 8
    """side of the box local candidates are drawn from"""
    sigma_scale: float = 0.1
    """sigmas (variances) are softplus(raw + 2) times the image size times this"""
    min_sigma: float = 0.0
    """added to every sigma after scaling"""
    policy_std: float = 0.1
    """REINFORCE only: std of the Gaussian policy over the raw box parameters"""
    canvas_size: int = 100
    """side of the cluttered canvas"""
    canvas_scale: tuple[float, float] = (1.0, 2.0)
    """range of the digit's scale factor"""
    canvas_degrees: float = 45.0
    """digits are rotated uniformly within +- this many degrees"""
    clutter: int = 10
    """clutter patches per canvas, cut from other digits of the same split"""
    patch: int = 8
    """side of a clutter patch in pixels"""
    canvas_seed: int = 0
    """seed of the canvases (fixed across runs: the data set, not the model, is seeded)"""
    n_train: int = 0
    """use only the first n_train training digits (0: all)"""
    n_test: int = 0
    """use only the first n_test test digits (0: all)"""
    threads: int = 1
    """torch CPU threads (on a busy 2-core machine one thread is 4x faster than two here;
    0: torch's default)"""


@experiment(
    "sparse.attention",
    config=AttentionConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            "epochs": 2,
            "n_train": 512,
            "n_test": 256,
            "channels": (4, 4, 8),
            "hyper_hidden": 16,
            "canvas_size": 56,
            "canvas_pool": 2,
        },
        "quick": {
            "epochs": 3,
            "n_train": 4000,
            "n_test": 1000,
            "hypernet": "small",
            "channels": (8, 16, 32),
            "hyper_hidden": 64,
            "canvas_size": 60,
            "canvas_pool": 2,
        },
    },
)
def attention(cfg: AttentionConfig, ctx: RunContext) -> dict[str, float]:
    """Sparse glimpse attention vs REINFORCE hard attention vs a conv net (MNIST, canvas)."""
    _positive(epochs=cfg.epochs, k=cfg.k, glimpses=cfg.glimpses, canvas_pool=cfg.canvas_pool)
    if not cfg.tasks or not cfg.models:
        raise UserError("tasks and models must each name at least one entry")
    if cfg.canvas_size < 28 * cfg.canvas_scale[1]:
        raise UserError(f"canvas_size {cfg.canvas_size} cannot hold a digit scaled by 2x")
    ds = data.load(cfg.dataset)
    ctx.data = {**ds.info(), "n_train": len(ds.x_train[: cfg.n_train or None])}
    done = finished_stages(ctx, {})
    for task in cfg.tasks:
        if task in done:
            continue
        stage = StageContext(ctx, task, done, prefix=f"{task}_")
        x_train, y_train, x_test, y_test = attention_data(cfg, task, ds)
        image_size = tuple(x_train.shape[-2:])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            learners = attention_learners(
                cfg, image_size, cfg.canvas_pool if task == "canvas" else 1
            )
        tic = time.perf_counter()
        fit(stage, SideBySide(learners), x_train, y_train, x_test, y_test,
            epochs=cfg.epochs, batch_size=cfg.batch_size)  # fmt: skip
        result = {f"{task}_train_seconds": time.perf_counter() - tic}
        for name, learner in learners.items():
            result[f"{task}_{name}_test_accuracy"] = learner.evaluate(x_test, y_test)["accuracy"]
            result[f"{task}_{name}_train_accuracy"] = learner.evaluate(x_train, y_train)["accuracy"]
        done[task] = result
        if "sparse" in learners:
            glimpse_figure(
                ctx.plots / f"glimpses_{task}.png",
                learners["sparse"].model,
                x_test[:6],
                f"{task}: sparse glimpses on test images (evaluation mode)",
            )
    metrics = {k: v for result in done.values() for k, v in result.items()}
    ctx.note(
        "Canvases: train from train digits only, test from test digits only "
        f"({cfg.canvas_size}x{cfg.canvas_size}, {cfg.clutter} clutter patches)."
    )
    return metrics


# --- sparse.sort -----------------------------------------------------------------------------

METHODS = ("quicksort", "neuralsort", "diffsort")
TABLE1 = {3: (0.930, 0.951), 5: (0.837, 0.927), 7: (0.738, 0.909), 9: (0.649, 0.896),
          15: (0.386, 0.857)}  # fmt: skip


@dataclass
class SortConfig(DataConfig):
    lengths: tuple[int, ...] = (3, 5, 7, 9, 15)
    """sequence lengths n of four-digit numbers (NeuralSort's Table 1)"""
    width: int = 4
    """digits per number in those sequences (4: 0-9999, NeuralSort's large-MNIST)"""
    iterations: int = 100000
    """training iterations per four-digit length"""
    single_lengths: tuple[int, ...] = (4, 8, 16)
    """sequence lengths of single digits (the paper's Fig. 6)"""
    single_iterations: tuple[int, ...] = (30000, 60000, 120000)
    """training iterations per single-digit length (the reference: 30k / 60k / 120k)"""
    methods: tuple[Literal["quicksort", "neuralsort", "diffsort"], ...] = METHODS
    """sorting relaxations trained side by side on the same sequences and key-net init
    (diffsort: the ``diffsort`` package, in the ``bench`` extra)"""
    batch_size: int = 128
    """sequences per iteration"""
    lr: float = 1e-4
    """Adam's learning rate (the reference's)"""
    certainty: float = 10.0
    """quicksort: sharpness of the soft comparison sigmoid((key - pivot) * certainty)"""
    additional: int = 2
    """quicksort: sampled choice vectors per split besides the rounded one"""
    sampling: Literal["balanced", "bernoulli"] = "balanced"
    """quicksort: the sampled choice vectors are random balanced half-splits of each bucket
    (the reference's ``util.sample_offsets``) or Bernoulli(o) draws (the earlier choice)"""
    loss: Literal["plain", "layers"] = "plain"
    """quicksort: BCE of the final output against the true order (the reference's default
    ``--loss plain``) or the per-layer MSE against each layer's target (the earlier choice)"""
    tau: float = 1.0
    """NeuralSort's temperature"""
    diffsort_network: Literal["odd_even", "bitonic"] = "odd_even"
    """diffsort: the sorting network (odd-even works for every length)"""
    steepness: float = 10.0
    """diffsort: steepness of its Cauchy relaxation of each swap (the package's default)"""
    key_net: Literal["reference", "small"] = "reference"
    """the key network scoring one number image: the reference's (three blocks of three
    convs with batch norm, dense layers) or a small LeNet-style CNN (one conv + pool per
    entry of ``channels``, one dense layer of ``hidden[0]``)"""
    channels: tuple[int, ...] = (16, 64, 128)
    """conv channels of the key network (the reference's 16, 64, 128 per block)"""
    hidden: tuple[int, ...] = (256, 128)
    """dense widths of the key network (the reference's 256, 128)"""
    test_sequences: int = 10000
    """fresh sequences of held-out test digits the accuracies are measured on"""
    eval_every: int = 5000
    """iterations between test measurements (on a fifth of the test sequences)"""
    log_every: int = 100
    """iterations between training-loss log lines"""
    threads: int = 1
    """torch CPU threads (on a busy 2-core machine one thread is 4x faster than two here;
    0: torch's default)"""


def sort_settings(cfg: SortConfig) -> list[tuple[str, int, int, int]]:
    """(tag, n, width, iterations) per trained setting."""
    if len(cfg.single_iterations) != len(cfg.single_lengths):
        raise UserError("single_iterations needs one entry per single_lengths entry")
    if any(n < 2 for n in (*cfg.lengths, *cfg.single_lengths)):
        raise UserError("sequence lengths must be at least 2")
    if any(n > 62 for n in (*cfg.lengths, *cfg.single_lengths)):
        raise UserError("sequence lengths above 62 are not supported (choice vectors as codes)")
    if not cfg.lengths and not cfg.single_lengths:
        raise UserError("lengths and single_lengths are both empty; give at least one length")
    _positive(eval_every=cfg.eval_every, log_every=cfg.log_every)
    large = [(f"large_n{n}", n, cfg.width, cfg.iterations) for n in cfg.lengths]
    single = [
        (f"digit_n{n}", n, 1, it)
        for n, it in zip(cfg.single_lengths, cfg.single_iterations, strict=True)
    ]
    return large + single


@experiment(
    "sparse.sort",
    config=SortConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            "lengths": (3,),
            "iterations": 60,
            "single_lengths": (),
            "single_iterations": (),
            "batch_size": 16,
            "lr": 3e-3,
            "key_net": "small",  # the reference's 9-conv net is checked by its own test
            "channels": (4, 4, 4),
            "hidden": (8,),
            "test_sequences": 100,
            "eval_every": 30,
            "log_every": 10,
        },
        "quick": {
            "lengths": (3,),
            "iterations": 300,
            "single_lengths": (4, 8),
            "single_iterations": (300, 300),
            "batch_size": 16,
            "lr": 1e-3,
            "key_net": "small",
            "channels": (8, 16),
            "hidden": (64,),
            "test_sequences": 500,
            "eval_every": 100,
        },
    },
    paper={
        **{
            f"large_n{n}_neuralsort_all_correct": (full, NEURALSORT, "mnist60k")
            for n, (full, _) in TABLE1.items()
        },
        **{
            f"large_n{n}_neuralsort_ranks_correct": (ranks, NEURALSORT, "mnist60k")
            for n, (_, ranks) in TABLE1.items()
        },
    },
    demo=True,
)
def sort(cfg: SortConfig, ctx: RunContext) -> dict[str, float]:
    """Differentiable quicksort vs NeuralSort on MNIST numbers (held-out test digits)."""
    settings = sort_settings(cfg)
    _positive(batch_size=cfg.batch_size, test_sequences=cfg.test_sequences, width=cfg.width)
    if not cfg.methods:
        raise UserError("methods is empty; name quicksort, neuralsort and/or diffsort")
    if cfg.key_net == "small" and not cfg.hidden:
        raise UserError("the small key network needs one hidden width")
    ds = data.load(cfg.dataset)
    ctx.data = ds.info()
    done = finished_stages(ctx, {})
    for tag, n, width, iterations in settings:
        if tag in done:
            continue
        stage = StageContext(ctx, tag, done, prefix=f"{tag}_")
        metrics, curve = train_sorting(cfg, stage, ds, n, width, iterations)
        done[tag] = {"metrics": metrics, "curve": curve}
    for tag, *_ in settings:
        curve = done[tag]["curve"]
        steps = [s for s, _ in curve]
        line_plot(
            ctx.plots / f"error_{tag}.png",
            {m: (steps, [row[f"{m}_error"] for _, row in curve]) for m in cfg.methods},
            xlabel="iteration",
            ylabel="1 - whole-sequence accuracy (test digits)",
            title=f"sorting {tag.replace('_', ', ')} (paper's Fig. 6 axes)",
        )
    metrics = {k: v for result in done.values() for k, v in result["metrics"].items()}
    for tag, *_ in settings:
        for other in ("neuralsort", "diffsort"):
            ours, theirs = f"{tag}_quicksort_all_correct", f"{tag}_{other}_all_correct"
            if ours in metrics and theirs in metrics:
                metrics[f"{tag}_quicksort_minus_{other}"] = metrics[ours] - metrics[theirs]
    return metrics
