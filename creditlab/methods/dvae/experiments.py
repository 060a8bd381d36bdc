"""``dvae.bmnist``: a discrete VAE on statically binarized MNIST with the RBM posterior of
Vahdat, Andriyash & Macready, against a factorial and a directed posterior with the same RBM
prior, the same decoder and the same budget.

The three models are trained side by side, iteration by iteration, on the same minibatches
with the same learning-rate and KL warm-up schedules, so they also share the machine's load
while their training time is measured. Each is validated every ``eval_every`` iterations (the
importance-weighted NLL of a validation subset) and its best-validation state is tested.

Scales: ``paper`` is the paper's protocol (200 latents as 100 + 100, 10^6 iterations, the
piecewise learning-rate schedule, K = 4000 importance samples, AIS for both partition
functions); ``quick`` splits 60 latents as 12 + 48 so that ``log Z_p``, ``log Z_q`` and exact
posterior samples come from enumerating the 2^12 states of the small side, and trains for a
few thousand iterations; ``smoke`` proves the code path in seconds.

Logged: ``objective_<posterior>`` (the training loss with the PCD surrogate for ``log Z_p``;
the RBM posterior's also lacks its ``log Z_q(x)``, so these are not comparable across
posteriors), ``c_kl``, ``lr`` and ``valid_nll_<posterior>`` (comparable: the importance-weighted
NLL with exact or AIS partition functions). The paper's tables could not
be retrieved here (spec), so no paper figure is declared; the claim tested is the ordering
``test_nll_rbm_posterior < test_nll_factorial, test_nll_directed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import torch

from creditlab import data
from creditlab.errors import UserError
from creditlab.methods.dvae.model import DVAE, PosteriorKind, build, evaluate_nll
from creditlab.methods.dvae.model import posterior_structure as structure_of
from creditlab.methods.dvae.plots import LABELS, image_grids, posterior_figure
from creditlab.methods.dvae.rbm import enumerable
from creditlab.methods.dvae.relax import Relaxation
from creditlab.plots import line_plot
from creditlab.registry import experiment
from creditlab.runner import RunContext
from creditlab.train import epoch_order

PAPER = (
    "Vahdat, Andriyash & Macready, 'Learning Undirected Posteriors by Backpropagation through "
    "MCMC Updates' (arXiv 1901.03440; ICML 2020 as 'Undirected Graphical Models as "
    "Approximate Posteriors')"
)


@dataclass
class BmnistConfig:
    dataset: Literal["binarized_mnist"] = "binarized_mnist"
    """data set: statically binarized MNIST, 50k train / 10k valid / 10k test"""
    posteriors: tuple[PosteriorKind, ...] = ("rbm_posterior", "factorial", "directed")
    """posterior families trained side by side (same prior, decoder and budget)"""
    latents: tuple[int, ...] = (100, 100)
    """sizes (n1, n2) of the two latent groups: the bipartite sides of the prior and the RBM
    posterior, and the two groups of the directed posterior"""
    hidden: tuple[int, ...] = (200, 200)
    """hidden widths of the encoder and decoder MLPs (batch-norm + tanh)"""
    iterations: int = 1_000_000
    """training iterations (minibatches), the same for every posterior"""
    batch_size: int = 100
    """examples per minibatch"""
    lr: float = 3e-3
    """base learning rate of Adam"""
    lr_switch: tuple[float, ...] = (0.02, 0.6, 0.75, 0.95)
    """fractions of the iterations where the learning rate changes"""
    lr_factors: tuple[float, ...] = (0.1, 1.0, 1 / 3, 0.1, 1 / 33)
    """the learning rate is lr times these, one more than lr_switch (the paper's schedule)"""
    adam_eps: float = 1e-3
    """Adam's epsilon"""
    weight_decay: float = 1e-4
    """coefficient of 0.5 * ||w||^2 over every weight matrix and the prior's W"""
    kl_warmup: float = 0.3
    """fraction of the iterations over which the KL weight rises linearly from 0 to 1"""
    samples: int = 1
    """k: 1 trains the ELBO, k > 1 the importance-weighted bound"""
    gibbs_sweeps: int = 10
    """s: hard block-Gibbs sweeps of the posterior's persistent chains before the relaxed one"""
    relaxation: Relaxation = "pwl"
    """relaxation of the Bernoulli samples: piecewise linear (pwl) or concrete"""
    beta: float = 4.0
    """sharpness of the relaxation (PWL slope scale; inverse temperature for concrete)"""
    coupling_scale: float = 1.5
    """posterior couplings J = coupling_scale * BN(raw) / sqrt(n1)"""
    prior_chains: int = 1000
    """persistent chains of the prior (PCD) for the gradient of log Z_p"""
    prior_sweeps: int = 10
    """block-Gibbs sweeps of the prior's chains per iteration"""
    n_train: int = 0
    """use only the first n_train training images (0: all 50,000)"""
    eval_every: int = 20000
    """iterations between validations (the best-validation state is tested)"""
    n_valid: int = 0
    """validation images (n_valid evenly spaced through the file; 0: all 10,000)"""
    valid_samples: int = 100
    """importance samples per validation image"""
    n_test: int = 0
    """test images (n_test evenly spaced through the class-sorted file; 0: all 10,000)"""
    test_samples: int = 4000
    """K: importance samples per test image"""
    exact_max_units: int = 14
    """enumerate the smaller latent side exactly when it has at most this many units"""
    ais_prior_temperatures: int = 10000
    """AIS temperatures for log Z_p (when not enumerable)"""
    ais_prior_chains: int = 1024
    """AIS chains for log Z_p"""
    ais_posterior_temperatures: int = 500
    """AIS temperatures per test image for the RBM posterior (its K chains are the K
    importance samples)"""
    structure_digits: int = 20
    """test digits (evenly spaced, so of every class) whose exact posterior structure
    (entropy, total correlation, modes) is measured"""
    show_digits: int = 4
    """of those, digits drawn in posterior_modes.png"""
    log_every: int = 100
    """iterations between training-loss log lines"""
    threads: int = 1
    """torch CPU threads (these small products run fastest on one thread on a shared
    2-core machine; 0 keeps torch's default)"""


def spread_subset(x: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` examples evenly spaced through ``x`` (all of them for ``n = 0``): the binarized
    MNIST test file is sorted by digit class, so its first images are all zeros.

    >>> spread_subset(torch.arange(10), 3).tolist()
    [0, 4, 9]
    """
    if n <= 0 or n >= len(x):
        return x
    return x[torch.linspace(0, len(x) - 1, n).round().long()]


def lr_factor(t: int, cfg: BmnistConfig) -> float:
    """The piecewise-constant schedule: ``lr_factors[j]`` between the j-th and (j+1)-th
    switch points (fractions of ``iterations``)."""
    fraction = t / cfg.iterations
    return cfg.lr_factors[sum(fraction >= s for s in cfg.lr_switch)]


def kl_weight(t: int, cfg: BmnistConfig) -> float:
    """``c_KL``: linear from 0 to 1 over the first ``kl_warmup`` of the iterations."""
    if cfg.kl_warmup <= 0:
        return 1.0
    return min(1.0, t / (cfg.kl_warmup * cfg.iterations))


def _check(cfg: BmnistConfig) -> None:
    if len(cfg.latents) != 2 or min(cfg.latents) < 1:
        raise UserError(f"latents must be two positive sizes (n1, n2), got {cfg.latents}")
    if len(cfg.lr_factors) != len(cfg.lr_switch) + 1:
        raise UserError("lr_factors needs exactly one more entry than lr_switch")
    if not cfg.posteriors:
        raise UserError("posteriors is empty; name at least one of rbm_posterior, factorial")
    if cfg.samples < 1 or cfg.iterations < 1:
        raise UserError("samples and iterations must be at least 1")


@experiment(
    "dvae.bmnist",
    config=BmnistConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            "latents": (4, 8),
            "hidden": (64,),
            "iterations": 120,
            "n_train": 2000,
            "prior_chains": 100,
            "prior_sweeps": 2,
            "gibbs_sweeps": 2,
            "lr": 1e-2,
            "eval_every": 60,
            "n_valid": 200,
            "valid_samples": 10,
            "n_test": 300,
            "test_samples": 20,
            "structure_digits": 4,
            "show_digits": 2,
            "log_every": 20,
        },
        "quick": {
            "latents": (12, 48),
            "iterations": 3000,
            "prior_sweeps": 2,
            "eval_every": 500,
            "n_valid": 1000,
            "valid_samples": 50,
            "test_samples": 100,
        },
    },
    demo=True,
)
def bmnist(cfg: BmnistConfig, ctx: RunContext) -> dict[str, float]:
    """Discrete VAE on binarized MNIST: RBM posterior vs factorial and directed posteriors."""
    _check(cfg)
    ds = data.load(cfg.dataset)
    x_train = ds.x_train[: cfg.n_train or None].reshape(-1, 784).to(ctx.device)
    x_valid = spread_subset(ds.x_valid, cfg.n_valid).reshape(-1, 784).to(ctx.device)
    x_test = spread_subset(ds.x_test, cfg.n_test).reshape(-1, 784).to(ctx.device)
    ctx.data = {
        **ds.info(),
        "n_train": len(x_train),
        "n_valid": len(x_valid),
        "n_test": len(x_test),
        "n_train_available": len(ds.x_train),
    }
    n1, n2 = cfg.latents
    exact = enumerable(n1, n2, cfg.exact_max_units)
    eval_settings = {
        "exact_max_units": cfg.exact_max_units,
        "ais_prior": (cfg.ais_prior_temperatures, cfg.ais_prior_chains),
        "ais_posterior_temperatures": cfg.ais_posterior_temperatures,
    }
    batch = min(cfg.batch_size, len(x_train))
    n_batches = len(x_train) // batch

    # The models come from their own seeded stream, so that a resumed run (whose global
    # generator is restored before this point) builds them without drawing from it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        x_mean = x_train.mean(0)
        models: dict[str, DVAE] = {
            kind: build(
                kind,
                x_mean,
                (n1, n2),
                cfg.hidden,
                len(x_train),
                cfg.samples,
                cfg.gibbs_sweeps,
                cfg.relaxation,
                cfg.beta,
                cfg.coupling_scale,
                cfg.prior_chains,
                cfg.prior_sweeps,
            ).to(ctx.device)
            for kind in cfg.posteriors
        }
    optimizers = {
        kind: torch.optim.Adam(m.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        for kind, m in models.items()
    }

    start, curve, best = 0, [], {}
    seconds = dict.fromkeys(models, 0.0)
    running: dict[str, list[float]] = {kind: [] for kind in models}
    state = ctx.resume()
    if state is not None:
        for kind, m in models.items():
            m.load_state_dict(state["models"][kind])
            optimizers[kind].load_state_dict(state["optimizers"][kind])
        start, curve, best = state["iteration"], state["curve"], state["best"]
        seconds, running = state["seconds"], state["running"]

    def snapshot(t: int) -> dict[str, Any]:
        return {
            "iteration": t,
            "models": {kind: m.state_dict() for kind, m in models.items()},
            "optimizers": {kind: o.state_dict() for kind, o in optimizers.items()},
            "curve": curve,
            "best": best,
            "seconds": seconds,
            "running": running,
        }

    bar = ctx.progress(cfg.iterations, initial=start)
    order, order_epoch = None, -1
    for t in range(start, cfg.iterations):
        epoch, b = divmod(t, n_batches)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(len(x_train), ctx.seed, epoch).to(ctx.device), epoch
        index = order[b * batch : (b + 1) * batch]
        x = x_train[index]
        c_kl, lr = kl_weight(t, cfg), cfg.lr * lr_factor(t, cfg)
        for kind, m in models.items():
            tic = time.perf_counter()
            loss = _train_step(m, optimizers[kind], x, index, c_kl, lr, cfg)
            seconds[kind] += time.perf_counter() - tic
            ctx.check_finite(t + 1, **{f"objective_{kind}": loss})
            running[kind].append(loss)
        step = t + 1
        if step % cfg.log_every == 0:
            losses = {f"objective_{k}": sum(v) / len(v) for k, v in running.items()}
            ctx.log(step, c_kl=c_kl, lr=lr, **losses)
            running = {kind: [] for kind in models}
        if step % cfg.eval_every == 0 or step == cfg.iterations:
            row = {}
            for kind, m in models.items():
                nll = evaluate_nll(m, x_valid, cfg.valid_samples, **eval_settings)
                row[f"valid_nll_{kind}"] = nll
                if kind not in best or nll < best[kind]["nll"]:
                    best[kind] = {"nll": nll, "iteration": step, "state": _copy(m)}
            ctx.log(step, **row)
            curve.append((step, row))
        bar.update()
        ctx.boundary(lambda t=t: snapshot(t + 1))
    bar.close()

    metrics: dict[str, float] = {}
    for kind, m in models.items():
        missing, _ = m.load_state_dict(best[kind]["state"], strict=False)
        assert all(k.endswith("chains") for k in missing), missing
        tic = time.perf_counter()
        metrics[f"test_nll_{kind}"] = evaluate_nll(m, x_test, cfg.test_samples, **eval_settings)
        metrics[f"{kind}_eval_seconds"] = time.perf_counter() - tic
        metrics[f"valid_nll_{kind}"] = best[kind]["nll"]
        metrics[f"{kind}_best_iteration"] = best[kind]["iteration"]
        metrics[f"{kind}_log_z_prior"] = float(m.prior.log_partition(*_prior_settings(cfg)))
        metrics[f"{kind}_train_seconds"] = seconds[kind]
        metrics[f"{kind}_iterations_per_second"] = (
            cfg.iterations / seconds[kind] if seconds[kind] else 0.0
        )
    if "rbm_posterior" in models:
        for other in ("factorial", "directed"):
            if other in models:
                gain = metrics[f"test_nll_{other}"] - metrics["test_nll_rbm_posterior"]
                metrics[f"nll_gain_over_{other}"] = gain
    _plots_and_structure(cfg, ctx, models, curve, x_test, metrics, exact)
    _notes(cfg, ctx, metrics, exact)
    return metrics


def _train_step(
    m: DVAE,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    index: torch.Tensor,
    c_kl: float,
    lr: float,
    cfg: BmnistConfig,
) -> float:
    """One Adam step on the objective plus the L2 penalty; returns the objective's value."""
    m.train()
    loss, _ = m.objective(x, index, c_kl, cfg.samples)
    penalty = 0.5 * cfg.weight_decay * sum(w.pow(2).sum() for w in m.weights())
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    (loss + penalty).backward()
    optimizer.step()
    return loss.item()


def _copy(m: DVAE) -> dict[str, torch.Tensor]:
    """The model's state without the persistent chains (not needed to test it)."""
    return {k: v.detach().clone() for k, v in m.state_dict().items() if not k.endswith("chains")}


def _prior_settings(cfg: BmnistConfig) -> tuple[int, int, int]:
    return cfg.exact_max_units, cfg.ais_prior_temperatures, cfg.ais_prior_chains


@torch.no_grad()
def _plots_and_structure(
    cfg: BmnistConfig,
    ctx: RunContext,
    models: dict[str, DVAE],
    curve: list,
    x_test: torch.Tensor,
    metrics: dict[str, float],
    exact: bool,
) -> None:
    """nll_over_iterations.png, prior_samples.png and (with an enumerable first group)
    posterior_modes.png with the structure metrics."""
    steps = [step for step, _ in curve]
    line_plot(
        ctx.plots / "nll_over_iterations.png",
        {LABELS[kind]: (steps, [row[f"valid_nll_{kind}"] for _, row in curve]) for kind in models},
        xlabel="iteration",
        ylabel=f"validation NLL (nats, K={cfg.valid_samples})",
        title="Importance-weighted NLL on the validation subset",
    )
    panels = {}
    for kind, m in models.items():
        m.eval()
        z = m.prior.sample(36, cfg.exact_max_units)
        panels[kind] = torch.sigmoid(m.decoder(z)).reshape(-1, 28, 28).cpu().numpy()
    how = "exact samples" if exact else "persistent chains + 1000 sweeps"
    image_grids(ctx.plots / "prior_samples.png", panels, f"decoded prior samples ({how})")
    if cfg.latents[0] > cfg.exact_max_units or cfg.structure_digits < 1:
        return
    x = spread_subset(x_test, cfg.structure_digits)  # different digits, not 20 zeros
    structures = {}
    for kind, m in models.items():
        s = structure_of(m, x)
        structures[kind] = {k: v.cpu().numpy() for k, v in s.items()}
        metrics[f"{kind}_posterior_entropy"] = float(s["entropy"].mean())
        metrics[f"{kind}_total_correlation"] = float(s["total_correlation"].mean())
        metrics[f"{kind}_posterior_modes"] = float(s["modes"].mean())
    shown = {k: {n: v[: cfg.show_digits] for n, v in s.items()} for k, s in structures.items()}
    digits = x[: cfg.show_digits].reshape(-1, 28, 28).cpu().numpy()
    posterior_figure(ctx.plots / "posterior_modes.png", digits, shown)
    for m in models.values():
        m.train()


def _notes(cfg: BmnistConfig, ctx: RunContext, metrics: dict[str, float], exact: bool) -> None:
    default = BmnistConfig()
    changed = [
        f"{f}={getattr(cfg, f)}"
        for f in (
            "latents",
            "hidden",
            "iterations",
            "n_train",
            "prior_sweeps",
            "eval_every",
            "n_valid",
            "valid_samples",
            "n_test",
            "test_samples",
        )
        if getattr(cfg, f) != getattr(default, f)
    ]
    if changed:
        ctx.note("Shortened from the paper's protocol: " + ", ".join(changed) + ".")
    how = (
        "exactly, by enumerating the smaller latent side"
        if exact
        else f"by AIS ({cfg.ais_prior_temperatures} temperatures x {cfg.ais_prior_chains} "
        f"chains for log Z_p; {cfg.ais_posterior_temperatures} temperatures x K chains per "
        "test image for the RBM posterior)"
    )
    ctx.note(
        f"Test NLL with K={cfg.test_samples} importance samples; log Z and posterior samples "
        f"{how}. The prior's log Z gradient uses PCD ({cfg.prior_chains} chains, "
        f"{cfg.prior_sweeps} sweeps per iteration), not the reference's population annealing."
    )
    if "test_nll_rbm_posterior" not in metrics:
        return
    rbm = metrics["test_nll_rbm_posterior"]
    others = {
        kind: metrics[f"test_nll_{kind}"]
        for kind in ("factorial", "directed")
        if f"test_nll_{kind}" in metrics
    }
    if not others:
        return
    parts = ", ".join(f"{LABELS[k]} {v:.2f}" for k, v in others.items())
    holds = all(rbm < v for v in others.values())
    verdict = "holds" if holds else "does not hold"
    ctx.note(
        f"Test NLL (nats): RBM posterior {rbm:.2f} vs {parts}: the paper's claim that the "
        f"undirected posterior beats the others {verdict} in this run (one seed; see "
        "--seeds for the spread)."
    )
