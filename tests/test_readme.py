"""The README's "From Python" examples run as printed: every ```python block of that section
is executed in a fresh namespace, in a temporary working directory, one test per block."""

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## From Python"


def python_blocks() -> list[tuple[str, str]]:
    """(id, code) for every ```python block of the section, the id from the ### heading above
    it (a number added where a heading has several)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    blocks, heading, seen = [], "block", {}
    for match in re.finditer(r"^### ([^\n]+)$|^```python\n(.*?)^```$", section, re.M | re.S):
        if match.group(1):
            heading = re.sub(r"[^a-z0-9]+", "-", match.group(1).lower()).strip("-")
            continue
        seen[heading] = seen.get(heading, 0) + 1
        name = heading if seen[heading] == 1 else f"{heading}-{seen[heading]}"
        blocks.append((name, match.group(2)))
    return blocks


BLOCKS = python_blocks()


def test_the_section_has_examples() -> None:
    assert len(BLOCKS) >= 5
    for name, code in BLOCKS:
        last = [line for line in code.splitlines() if line and not line.startswith(" ")][-1]
        assert last.startswith(("assert", "print")), f"{name} ends without a check: {last}"


@pytest.fixture
def one_thread():
    """One torch thread (the examples are tiny; on a shared machine more threads only wait)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("code", [code for _, code in BLOCKS], ids=[name for name, _ in BLOCKS])
def test_readme_example_runs(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md ({SECTION})", "exec"), {"__name__": "__readme__"})
