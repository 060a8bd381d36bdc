"""Training and testing the posteriors of ``dvae.bmnist`` side by side: the schedules, one
Adam step, the resumable loop with its validations, and the test of the best states.

``cfg`` is the experiment's :class:`~creditlab.methods.dvae.experiments.BmnistConfig`.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from creditlab.methods.dvae.model import DVAE, build, evaluate_nll
from creditlab.methods.dvae.posteriors import NetOptions
from creditlab.runner import RunContext
from creditlab.train import epoch_order


def spread_subset(x: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` examples evenly spaced through ``x`` (all of them for ``n = 0``): the binarized
    MNIST test file is sorted by digit class, so its first images are all zeros.

    >>> import torch
    >>> spread_subset(torch.arange(10), 3).tolist()
    [0, 4, 9]
    """
    if n <= 0 or n >= len(x):
        return x
    return x[torch.linspace(0, len(x) - 1, n).round().long()]


def lr_factor(t: int, cfg: Any) -> float:
    """The piecewise-constant schedule: ``lr_factors[j]`` between the j-th and (j+1)-th
    switch points (fractions of ``iterations``)."""
    fraction = t / cfg.iterations
    return cfg.lr_factors[sum(fraction >= s for s in cfg.lr_switch)]


def kl_weight(t: int, cfg: Any) -> float:
    """``c_KL``: linear from 0 to 1 over the first ``kl_warmup`` of the iterations."""
    if cfg.kl_warmup <= 0:
        return 1.0
    return min(1.0, t / (cfg.kl_warmup * cfg.iterations))


def eval_settings(cfg: Any) -> dict[str, Any]:
    """The partition-function settings of :func:`evaluate_nll`."""
    return {
        "exact_max_units": cfg.exact_max_units,
        "ais_prior": (cfg.ais_prior_temperatures, cfg.ais_prior_chains),
        "ais_posterior_temperatures": cfg.ais_posterior_temperatures,
    }


def build_models(cfg: Any, ctx: RunContext, x_train: torch.Tensor) -> dict[str, DVAE]:
    """One DVAE per posterior of ``cfg.posteriors``, on the run's device. They come from a
    stream seeded with the run's seed, so that a resumed run (whose global generator is
    restored before this point) builds them without drawing from it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        x_mean = x_train.mean(0)
        return {
            kind: build(
                kind,
                x_mean,
                tuple(cfg.latents),
                cfg.hidden,
                len(x_train),
                cfg.samples,
                cfg.gibbs_sweeps,
                cfg.relaxation,
                cfg.beta,
                cfg.coupling_scale,
                cfg.prior_chains,
                cfg.prior_sweeps,
                coupling_fan=cfg.coupling_fan,
                chain_state=cfg.chain_state,
                factorial_kl=cfg.factorial_kl,
                directed_encoder=cfg.directed_encoder,
                prior_gradient=cfg.prior_gradient,
                exact_max_units=cfg.exact_max_units,
                options=NetOptions(cfg.bn_eps, cfg.bn_momentum, cfg.init),
                decay_bn_scales=cfg.decay_bn_scales,
            ).to(ctx.device)
            for kind in cfg.posteriors
        }


def train_step(
    m: DVAE,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    index: torch.Tensor,
    c_kl: float,
    lr: float,
    cfg: Any,
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


def without_chains(m: DVAE) -> dict[str, torch.Tensor]:
    """The model's state without the persistent chains (not needed to test it)."""
    return {k: v.detach().clone() for k, v in m.state_dict().items() if not k.endswith("chains")}


def train(
    cfg: Any,
    ctx: RunContext,
    models: dict[str, DVAE],
    x_train: torch.Tensor,
    x_valid: torch.Tensor,
) -> tuple[list, dict[str, dict[str, Any]], dict[str, float]]:
    """Train ``models`` side by side on the same minibatches with the same schedules; log the
    mean objectives every ``log_every`` and the validation NLLs every ``eval_every``.
    Returns the validation curve, each model's best validation (``nll``, ``iteration``,
    ``state``) and its training seconds."""
    optimizers = {
        kind: torch.optim.Adam(m.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        for kind, m in models.items()
    }
    settings = eval_settings(cfg)
    batch = min(cfg.batch_size, len(x_train))
    n_batches = len(x_train) // batch
    curve: list = []
    best: dict[str, dict[str, Any]] = {}
    seconds = dict.fromkeys(models, 0.0)
    running: dict[str, list[float]] = {kind: [] for kind in models}

    def state() -> dict[str, Any]:
        return {
            "models": {kind: m.state_dict() for kind, m in models.items()},
            "optimizers": {kind: o.state_dict() for kind, o in optimizers.items()},
            "curve": curve,
            "best": best,
            "seconds": seconds,
            "running": running,
        }

    def restore(saved: dict[str, Any]) -> None:
        for kind, m in models.items():
            m.load_state_dict(saved["models"][kind])
            optimizers[kind].load_state_dict(saved["optimizers"][kind])
        curve[:] = saved["curve"]
        best.update(saved["best"])
        seconds.update(saved["seconds"])
        running.update(saved["running"])

    order, order_epoch = None, -1
    for t in ctx.loop(cfg.iterations, state, restore):
        epoch, b = divmod(t, n_batches)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(len(x_train), ctx.seed, epoch).to(ctx.device), epoch
        index = order[b * batch : (b + 1) * batch]
        x = x_train[index]
        c_kl, lr = kl_weight(t, cfg), cfg.lr * lr_factor(t, cfg)
        for kind, m in models.items():
            tic = time.perf_counter()
            loss = train_step(m, optimizers[kind], x, index, c_kl, lr, cfg)
            seconds[kind] += time.perf_counter() - tic
            ctx.check_finite(t + 1, **{f"objective_{kind}": loss})
            running[kind].append(loss)
        step = t + 1
        if step % cfg.log_every == 0:
            losses = {f"objective_{k}": sum(v) / len(v) for k, v in running.items()}
            ctx.log(step, c_kl=c_kl, lr=lr, **losses)
            running.update({kind: [] for kind in models})
        if step % cfg.eval_every == 0 or step == cfg.iterations:
            row = {}
            for kind, m in models.items():
                nll = evaluate_nll(m, x_valid, cfg.valid_samples, **settings)
                row[f"valid_nll_{kind}"] = nll
                if kind not in best or nll < best[kind]["nll"]:
                    best[kind] = {"nll": nll, "iteration": step, "state": without_chains(m)}
            ctx.log(step, **row)
            curve.append((step, row))
    return curve, best, seconds


def test(
    cfg: Any,
    models: dict[str, DVAE],
    best: dict[str, dict[str, Any]],
    seconds: dict[str, float],
    x_test: torch.Tensor,
) -> dict[str, float]:
    """Load each model's best-validation state and measure its test NLL (K =
    ``test_samples``), its prior's ``log Z`` and its timings; with the RBM posterior, its
    gain over each other posterior (``nll_gain_over_<other>`` = ``test_nll_<other>`` minus
    ``test_nll_rbm_posterior``: positive when the RBM posterior is better)."""
    metrics: dict[str, float] = {}
    for kind, m in models.items():
        missing, _ = m.load_state_dict(best[kind]["state"], strict=False)
        assert all(k.endswith("chains") for k in missing), missing
        tic = time.perf_counter()
        metrics[f"test_nll_{kind}"] = evaluate_nll(
            m, x_test, cfg.test_samples, **eval_settings(cfg)
        )
        metrics[f"{kind}_eval_seconds"] = time.perf_counter() - tic
        metrics[f"valid_nll_{kind}"] = best[kind]["nll"]
        metrics[f"{kind}_best_iteration"] = best[kind]["iteration"]
        prior = (cfg.exact_max_units, cfg.ais_prior_temperatures, cfg.ais_prior_chains)
        metrics[f"{kind}_log_z_prior"] = float(m.prior.log_partition(*prior))
        metrics[f"{kind}_train_seconds"] = seconds[kind]
        metrics[f"{kind}_iterations_per_second"] = (
            cfg.iterations / seconds[kind] if seconds[kind] else 0.0
        )
    if "rbm_posterior" in models:
        for other in ("rbm_uncoupled", "factorial", "directed"):
            if other in models:
                gain = metrics[f"test_nll_{other}"] - metrics["test_nll_rbm_posterior"]
                metrics[f"nll_gain_over_{other}"] = gain
    return metrics
