"""The dendritic experiments' figures."""

from __future__ import annotations

from pathlib import Path

from creditlab.plots import line_plot


def apical_plot(path: Path, times: list[float], apical_rms: list[float]) -> None:
    """The RMS apical potential falling as the self-predicting state is learned."""
    line_plot(
        path,
        {"apical potential (RMS)": (times, apical_rms)},
        xlabel="simulated time (ms)",
        ylabel="RMS apical potential",
        title="Self-predicting state learned from random W_IP, W_PI",
        logy=True,
    )


def error_plot(path: Path, steps: list[int], rows: list[dict]) -> None:
    """Teacher-student test error of the microcircuit and the shallow learner."""
    line_plot(
        path,
        {
            "microcircuit": (steps, [r["test_mse"] for r in rows]),
            "shallow learner (output layer only)": (steps, [r["test_mse_shallow"] for r in rows]),
        },
        xlabel="training patterns per circuit",
        ylabel="test MSE (rates)",
        title="Teacher-student regression",
        logy=True,
    )


def alignment_plot(path: Path, steps: list[int], rows: list[dict], xlabel: str) -> None:
    """Top-down vs forward weight alignment, and update vs backprop alignment, over training."""
    series = {
        f"W_PP_down.{name.rsplit('/', 1)[1]} vs W_PP_up.{int(name.rsplit('/', 1)[1]) + 1}^T": (
            steps,
            [r[name] for r in rows],
        )
        for name in rows[0]
        if name.startswith("weight_alignment_cosine/")
    }
    series["hidden update vs backprop"] = (steps, [r["alignment_cosine"] for r in rows])
    line_plot(
        path,
        series,
        xlabel=xlabel,
        ylabel="cosine",
        title="Alignment: top-down vs forward weights; update vs backprop",
    )
