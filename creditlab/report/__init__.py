"""Plots (PNG files, drawn off-screen) and the self-contained HTML report built from run folders."""

from creditlab.report.html import (
    build_report,
    comparisons,
    data_cell,
    headline,
    markdown_table,
)
from creditlab.report.plots import line_plot, plot_learning_curves, read_metrics

__all__ = [
    "build_report",
    "comparisons",
    "data_cell",
    "headline",
    "line_plot",
    "markdown_table",
    "plot_learning_curves",
    "read_metrics",
]
