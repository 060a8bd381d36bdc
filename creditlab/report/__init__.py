"""The report: one self-contained HTML page (and a Markdown table) rendered from run folders.

Reading runs and the paper-vs-measured verdicts live on the ground floor
(:mod:`creditlab.rundir`); this package only renders them."""

from creditlab.report.html import build_report, markdown_table

__all__ = ["build_report", "markdown_table"]
