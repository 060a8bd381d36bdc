"""The demo tour at smoke scale, its rerun, and its page in a real browser (headless Chromium).

One module-scoped tour is shared: the first test runs it, the rerun must reuse every run, and
the browser renders the page it wrote at 1366 px: every image loaded, nothing wider than the
window, a screenshot saved (``$CREDITLAB_SCREENSHOT``, default in the temp folder). Without
Chromium the browser test skips, except where ``CREDITLAB_REQUIRE_BROWSER=1`` (CI): there it
fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from creditlab import cli
from creditlab.rundir import RESULT_FILE

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1366,900",
)  # fmt: skip
CHECK = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  var width = document.documentElement.clientWidth;
  var wide = Array.from(document.body.querySelectorAll("*")).filter(function (e) {
    return e.getBoundingClientRect().right > width + 0.5;
  }).map(function (e) { return e.tagName + "." + e.className; });
  var out = document.createElement("pre");
  out.id = "page-check";
  out.textContent = JSON.stringify({
    images: images.length,
    broken: images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
    width: width, scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 10)
  });
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], int]:
    """``creditlab demo --scale smoke``: the runs folder, the printed lines, the exit code."""
    runs = tmp_path_factory.mktemp("tour") / "runs"
    lines: list[str] = []
    code = _demo(runs, lines)
    return runs, lines, code


def _demo(runs: Path, lines: list[str]) -> int:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli.main(["demo", "--scale", "smoke", "--runs", str(runs)])
    lines += buffer.getvalue().splitlines()
    return code


def _finished(runs: Path) -> set[Path]:
    return {p.parent for p in runs.rglob(RESULT_FILE)}


def test_the_tour_runs_one_experiment_per_paper_and_ends_with_the_page(tour) -> None:
    runs, lines, code = tour
    assert code == 0, lines
    for stop in cli.TOUR:
        assert list((runs / stop.name).glob(f"*/{RESULT_FILE}")), stop.name
    assert (runs / "compare" / "digits").is_dir()
    assert lines[-1] == f"the page: {(runs / 'report.html').resolve().as_uri()}"
    page = (runs / "report.html").read_text()
    assert "<h2>Claims</h2>" in page and "Learning rules compared" in page


def test_a_rerun_reuses_every_finished_run(tour) -> None:
    runs, _, _ = tour
    before = _finished(runs)
    lines: list[str] = []
    assert _demo(runs, lines) == 0
    assert sum("finished before, reused" in line for line in lines) == len(cli.TOUR)
    assert _finished(runs) == before  # no new run folder


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("CREDITLAB_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium is not installed (apt-get install chromium); CI requires it")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def test_the_page_fits_1366_px_and_every_image_loads(tour, tmp_path: Path) -> None:
    browser = _chromium()
    runs, _, _ = tour
    page = (runs / "report.html").read_text()
    assert "data:image/png;base64," in page  # the tour's own figures are there to load
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK + "</body>"))
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [browser, *CHROMIUM_FLAGS, *profile, "--virtual-time-budget=10000", "--dump-dom",
         checked.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    found = re.search(r'<pre id="page-check">(.*?)</pre>', dom)
    assert found, "the check script did not run"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["images"] > 0 and result["broken"] == 0, result
    assert result["wide"] == [] and result["scrollWidth"] <= result["width"], result

    default = Path(tempfile.gettempdir()) / "creditlab-page-1366.png"
    shot = Path(os.environ.get("CREDITLAB_SCREENSHOT", default))
    shot.unlink(missing_ok=True)
    subprocess.run(
        [browser, *CHROMIUM_FLAGS[:-1], "--window-size=1366,2000", "--user-data-dir="
         + str(tmp_path / "profile2"), f"--screenshot={shot}", (runs / "report.html").as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.read_bytes().startswith(b"\x89PNG")
