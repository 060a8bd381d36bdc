"""How fast the discrete VAE trains and samples: training iterations per second of each
posterior at the quick (12 + 12 latents) and paper (100 + 100) sizes, the block-Gibbs sweep
vectorised over examples and chains, and the cost of the exact and AIS partition functions.

Each measurement runs in its own child process (peak memory its own) after a warm-up, on
random binary "images" (the speed does not depend on the pixels).

    python benchmarks/dvae_sampling.py                   # CPU, one torch thread
    python benchmarks/dvae_sampling.py --device cuda --threads 0

An iteration is one minibatch of 100: the posterior's sampling (for the RBM posterior s = 10
hard sweeps of the persistent chains and one relaxed sweep), the prior's log Z gradient (exact at
12 + 12; PCD with 1000 chains and ``--prior-sweeps`` sweeps at 100 + 100), the decoder, backward
and an Adam step.
"""

from __future__ import annotations

import argparse
import time

from creditlab.benchmarking import run_in_child


def _setup(device: str, threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def training(
    kind: str,
    latents: tuple[int, int],
    prior_sweeps: int,
    seconds: float,
    device: str,
    threads: int,
) -> dict:
    import torch

    from creditlab.methods.dvae import build

    _setup(device, threads)
    n = 5000
    x = (torch.rand(n, 784) < 0.13).float().to(device)
    model = build(kind, x.mean(0), latents, (200, 200), n, prior_sweeps=prior_sweeps).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-3)

    def step() -> None:
        index = torch.randint(0, n, (100,), device=device)
        loss, _ = model.objective(x[index], index, 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    _sync(device)
    done, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        step()
        done += 1
    _sync(device)
    return {"iterations_per_second": done / (time.perf_counter() - tic)}


def gibbs(latents: tuple[int, int], chains: int, seconds: float, device: str, threads: int) -> dict:
    """Block-Gibbs sweeps of a batch of 100 conditional RBMs with ``chains`` chains each."""
    import torch

    from creditlab.methods.dvae import rbm

    _setup(device, threads)
    n1, n2 = latents
    b1, b2 = torch.randn(100, n1, device=device), torch.randn(100, n2, device=device)
    W = torch.randn(100, n1, n2, device=device) / n1**0.5
    z1 = (torch.rand(100, chains, n1, device=device) < 0.5).float()
    for _ in range(3):
        z1, _ = rbm.gibbs_sweep(z1, b1, b2, W)
    _sync(device)
    done, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        z1, _ = rbm.gibbs_sweep(z1, b1, b2, W)
        done += 1
    _sync(device)
    sweeps = done / (time.perf_counter() - tic)
    return {"sweeps_per_second": sweeps, "chain_sweeps_per_second": sweeps * 100 * chains}


def partition(latents: tuple[int, int], ais: tuple[int, int], device: str, threads: int) -> dict:
    """Seconds for log Z of a batch of 50 conditional RBMs: exact (enumerating the smaller side,
    when it has <= 14 units) or AIS with ``ais`` = (temperatures, chains)."""
    import torch

    from creditlab.methods.dvae import rbm

    _setup(device, threads)
    n1, n2 = latents
    b1, b2 = torch.randn(50, n1, device=device), torch.randn(50, n2, device=device)
    W = torch.randn(50, n1, n2, device=device) / n1**0.5
    tic = time.perf_counter()
    if rbm.enumerable(n1, n2, 14):
        rbm.exact_log_partition(b1, b2, W)
        how = "exact"
    else:
        rbm.ais_log_partition(b1, b2, W, *ais)
        how = f"AIS {ais[0]} x {ais[1]}"
    _sync(device)
    return {"seconds_per_50": time.perf_counter() - tic, "how": how}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--seconds", type=float, default=4.0, help="per training measurement")
    parser.add_argument("--prior-sweeps", type=int, default=40, help="PCD sweeps (100 + 100)")
    args = parser.parse_args()
    common = (args.device, args.threads)
    print(f"device {args.device}, torch threads {args.threads or 'default'}\n")
    print(f"{'posterior':>15} {'latents':>10} {'iterations/s':>13} {'peak MB':>8}")
    for latents in ((12, 12), (100, 100)):  # 12 + 12: the exact prior gradient, no PCD
        sweeps = args.prior_sweeps
        for kind in ("rbm_posterior", "rbm_uncoupled", "factorial", "directed"):
            out = run_in_child(training, kind, latents, sweeps, args.seconds, *common)
            print(
                f"{kind:>15} {f'{latents[0]}+{latents[1]}':>10} "
                f"{out['iterations_per_second']:13.1f} {out['peak_rss_mb']:8.0f}"
            )
    print(
        f"\n{'Gibbs sweep':>15} {'latents':>10} {'chains':>7} {'sweeps/s':>9} "
        f"{'chain-sweeps/s':>15}"
    )
    for latents in ((12, 12), (100, 100)):
        for chains in (1, 100):
            out = run_in_child(gibbs, latents, chains, 2.0, *common)
            print(
                f"{'100 RBMs':>15} {f'{latents[0]}+{latents[1]}':>10} {chains:>7} "
                f"{out['sweeps_per_second']:9.1f} {out['chain_sweeps_per_second']:15.3g}"
            )
    print(f"\n{'log Z':>15} {'latents':>10} {'method':>18} {'s per 50 RBMs':>14}")
    for latents, ais in (((12, 12), (0, 0)), ((100, 100), (500, 100))):
        out = run_in_child(partition, latents, ais, *common)
        print(
            f"{'':>15} {f'{latents[0]}+{latents[1]}':>10} {out['how']:>18} "
            f"{out['seconds_per_50']:14.3f}"
        )


if __name__ == "__main__":
    main()
