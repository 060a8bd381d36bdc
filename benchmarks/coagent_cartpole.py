"""Coagent network vs backprop actor-critic on CartPole-v1: speed, time to a return, memory.

Three agents, the same budget of environment steps, the same rollouts (16 CartPole copies in
Gymnasium's batched ``CartPoleVectorEnv``, 16 steps each, GAE(0.95) advantages), the same critic
and hyperparameters as ``creditlab run coagent.cartpole --scale quick``:

* ``coagent``: creditlab's coagent network (4 -> 16 Bernoulli coagents -> softmax coagent), local
  CPGT updates, no backprop in the actor;
* ``backprop (creditlab loop)``: the same loop with a 4 -> 16 tanh -> 2 backprop actor;
* ``backprop (plain PyTorch)``: the CleanRL-style actor-critic a user would write by hand for the
  same recipe, in one function, without creditlab: the reference for speed.

Each runs in its own child process (so peak memory is its own). The script prints environment
steps per second, wall seconds until the mean return of the last 100 episodes first reaches
``--target``, the final mean return, peak resident memory, and ratios against plain PyTorch.

    python benchmarks/coagent_cartpole.py --steps 400000 --target 195
"""

from __future__ import annotations

import argparse
import time

from creditlab.benchmarking import run_in_child

CARTPOLE_SCALE = (2.4, 3.0, 0.21, 3.0)


def _first_time_at(returns: list, steps: list, clock: list, target: float) -> float | None:
    """Wall seconds at which the mean of the last 100 returns first reaches ``target``;
    ``clock`` is a list of (env_steps, seconds) samples, interpolated."""
    window, total = [], 0.0
    for value, step in zip(returns, steps, strict=True):
        window.append(value)
        total += value
        if len(window) > 100:
            total -= window.pop(0)
        if len(window) == 100 and total / 100 >= target:
            for (s0, t0), (s1, t1) in zip(clock, clock[1:], strict=False):
                if s0 <= step <= s1:
                    return t0 + (t1 - t0) * (step - s0) / max(s1 - s0, 1)
            return clock[-1][1]
    return None


def plain_pytorch(cfg: dict, seed: int) -> dict:
    """A CleanRL-style advantage actor-critic, written out in full (the speed reference)."""
    import gymnasium as gym
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    n, horizon, gamma, lam = cfg["num_envs"], cfg["rollout_steps"], cfg["gamma"], cfg["td_lambda"]
    envs = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    actor = nn.Sequential(nn.Linear(4, cfg["hidden"]), nn.Tanh(), nn.Linear(cfg["hidden"], 2))
    critic = nn.Sequential(
        nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
    )
    actor_opt = torch.optim.Adam(actor.parameters(), lr=cfg["lr_bp"])
    critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg["critic_lr"])
    scale = 1 / torch.tensor(CARTPOLE_SCALE)
    start = time.perf_counter()
    obs, _ = envs.reset(seed=seed)
    obs = torch.as_tensor(obs) * scale
    prev_done = torch.zeros(n, dtype=torch.bool)
    episode_return = np.zeros(n)
    returns, stamps, clock, env_steps = [], [], [(0, 0.0)], 0
    while env_steps < cfg["total_steps"]:
        buf = {k: [] for k in ("obs", "next", "act", "rew", "term", "done", "valid")}
        for _ in range(horizon):
            with torch.no_grad():
                action = torch.distributions.Categorical(logits=actor(obs)).sample()
            next_obs, reward, term, trunc, _ = envs.step(action.numpy())
            valid = ~prev_done  # gymnasium's next-step autoreset: skip the reset step
            episode_return += reward * valid.numpy()
            for i in np.flatnonzero((term | trunc) & valid.numpy()):
                returns.append(episode_return[i])
                stamps.append(env_steps + int(valid.sum()))
                episode_return[i] = 0.0
            env_steps += int(valid.sum())
            next_obs = torch.as_tensor(next_obs) * scale
            for key, value in zip(
                buf, (obs, next_obs, action, reward, term, term | trunc, valid), strict=True
            ):
                buf[key].append(torch.as_tensor(value))
            prev_done, obs = torch.as_tensor(term | trunc), next_obs
        b = {k: torch.stack(v) for k, v in buf.items()}
        with torch.no_grad():
            values = critic(b["obs"]).squeeze(-1)
            next_values = critic(b["next"]).squeeze(-1)
            rewards = b["rew"].float() * cfg["reward_scale"]
            delta = (rewards + gamma * (~b["term"]) * next_values - values) * b["valid"]
            advantages, running = torch.zeros_like(delta), torch.zeros(n)
            for t in reversed(range(horizon)):
                running = delta[t] + gamma * lam * (~b["done"][t]) * running
                advantages[t] = running
            advantages *= b["valid"]
        frac = 1 - env_steps / cfg["total_steps"]
        for opt, lr in ((actor_opt, cfg["lr_bp"]), (critic_opt, cfg["critic_lr"])):
            opt.param_groups[0]["lr"] = lr * frac
        mask = b["valid"].float()
        critic_loss = (((critic(b["obs"]).squeeze(-1) - (advantages + values)) * mask) ** 2).sum()
        critic_opt.zero_grad()
        (critic_loss / mask.sum()).backward()
        critic_opt.step()
        real = advantages[b["valid"]]
        signal = (advantages - real.mean()) / (real.std() + 1e-8) * mask
        log_pi = torch.log_softmax(actor(b["obs"]), -1)
        log_pi = log_pi.gather(-1, b["act"][..., None]).squeeze(-1)
        actor_opt.zero_grad()
        (-(signal * log_pi).sum() / mask.sum()).backward()
        actor_opt.step()
        clock.append((env_steps, time.perf_counter() - start))
    return {
        "seconds": time.perf_counter() - start,
        "env_steps": env_steps,
        "returns": returns,
        "steps": stamps,
        "clock": clock,
    }


def creditlab_loop(cfg: dict, seed: int, kind: str) -> dict:
    """creditlab's actor-critic loop with the coagent network or the backprop actor."""
    import types
    from dataclasses import replace

    import torch

    from creditlab import runner
    from creditlab.methods.coagent.actor_critic import train_actor_critic
    from creditlab.methods.coagent.experiments import ActorCriticConfig, _build, _settings

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    config = replace(  # no evaluation episodes: this measures training speed
        ActorCriticConfig(),
        eval_every=0,
        eval_episodes=0,
        **{k: v for k, v in cfg.items() if k != "target"},
    )
    agent, critic = _build(config, kind)
    start, clock = time.perf_counter(), [(0, 0.0)]
    per_rollout = config.num_envs * config.rollout_steps

    class Context:  # the parts of RunContext the loop touches, plus a clock
        seed, experiment = 0, types.SimpleNamespace(name="benchmark")

        def log(self, step: int, **metrics: float) -> None: ...

        def progress(self, total: int, desc: str = "", initial: int = 0):
            return types.SimpleNamespace(n=0, update=lambda k=1: None, close=lambda: None)

        def loop(self, total, state, restore=None, **kwargs):
            return runner.Loop(self, total, state, restore, **kwargs)

        def resume(self):
            return None

        def checkpoint(self, state) -> None: ...

        def boundary(self, state_fn) -> None:
            clock.append((len(clock) * per_rollout, time.perf_counter() - start))

    context = Context()
    context.seed = seed
    out = train_actor_critic(agent, critic, config.env_id, _settings(config), context, kind)
    return {
        "seconds": time.perf_counter() - start,
        "env_steps": out["env_steps"],
        "returns": out["returns"],
        "steps": out["return_steps"],
        "clock": clock,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400_000, help="environment steps per agent")
    parser.add_argument("--target", type=float, default=195.0, help="mean return to time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from creditlab.methods.coagent.experiments import ActorCriticConfig

    defaults = ActorCriticConfig()
    cfg = {
        "total_steps": args.steps,
        "num_envs": defaults.num_envs,
        "rollout_steps": defaults.rollout_steps,
        "hidden": defaults.hidden,
        "gamma": defaults.gamma,
        "td_lambda": defaults.td_lambda,
        "lr_bp": defaults.lr_bp,
        "critic_lr": defaults.critic_lr,
        "reward_scale": defaults.reward_scale,
    }
    rows = {
        "coagent (creditlab)": run_in_child(creditlab_loop, cfg, args.seed, "coagent"),
        "backprop (creditlab loop)": run_in_child(creditlab_loop, cfg, args.seed, "bp"),
        "backprop (plain PyTorch)": run_in_child(plain_pytorch, cfg, args.seed),
    }
    reference = rows["backprop (plain PyTorch)"]
    print(f"CartPole-v1, {args.steps} environment steps each, seed {args.seed}")
    header = f"{'agent':28} {'steps/s':>9} {'x plain':>8} {'s to ' + str(args.target):>10}"
    print(header + f" {'final R100':>10} {'wall s':>7} {'peak MB':>8}")
    ref_sps = reference["env_steps"] / reference["seconds"]
    for name, r in rows.items():
        sps = r["env_steps"] / r["seconds"]
        hit = _first_time_at(r["returns"], r["steps"], r["clock"], args.target)
        final = sum(r["returns"][-100:]) / max(1, len(r["returns"][-100:]))
        hit_text = f"{hit:10.1f}" if hit is not None else f"{'never':>10}"
        print(
            f"{name:28} {sps:9.0f} {sps / ref_sps:8.2f} {hit_text} {final:10.1f} "
            f"{r['seconds']:7.1f} {r['peak_rss_mb']:8.0f}"
        )


if __name__ == "__main__":
    main()
