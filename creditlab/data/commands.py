"""The ``creditlab data`` sub-command: ``list``, ``verify [NAME]``, ``fetch NAME``.

`add_parser` registers it on the CLI's subparsers; each leaf parser sets ``func``, a callable
``(args) -> int`` exit code (0 fine, 2 bad or missing data). A `UserError` raised inside (an
unknown name, a failed download) is left for the CLI to print as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from creditlab.data import nmnist
from creditlab.data.catalog import DATASETS, DatasetSpec
from creditlab.data.loaders import (
    digits_csv_path,
    fetch,
    mnist1d_cache_paths,
    mnist_protocol,
    verify,
)
from creditlab.data.store import (
    ENV_VAR,
    REMEMBERED_FILE,
    data_roots,
    find_folder,
    remember_root,
)
from creditlab.errors import UserError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``data`` (with ``list``, ``verify``, ``fetch``) on an argparse subparsers object."""
    names = ", ".join(DATASETS)
    data = subparsers.add_parser(
        "data",
        help="list, verify and fetch data sets",
        description=f"Data sets live in ${ENV_VAR} (if set; else the folder `creditlab data "
        "remember` recorded), then ~/.cache/creditlab, each in a "
        f"folder named after it. Data sets: {names}.",
    )
    data.set_defaults(func=cmd_list)  # bare `creditlab data` lists
    commands = data.add_subparsers(dest="data_command", metavar="{list,verify,remember,fetch}")

    listing = commands.add_parser("list", help="each data set and where it was found")
    listing.set_defaults(func=cmd_list)

    check = commands.add_parser("verify", help="checksum every file (exit 2 if any is bad)")
    check.add_argument("name", nargs="?", help=f"one data set ({names}); all when omitted")
    check.set_defaults(func=cmd_verify)

    keep = commands.add_parser(
        "remember",
        help=f"find data in DIR without ${ENV_VAR} (recorded for this environment)",
    )
    keep.add_argument(
        "folder", nargs="?", metavar="DIR", help=f"the data root (default: ${ENV_VAR})"
    )
    keep.set_defaults(func=cmd_remember)

    get = commands.add_parser("fetch", help="download a data set from its public mirror")
    get.add_argument("name", help=f"the data set ({names})")
    get.add_argument(
        "--mirror",
        metavar="URL",
        default=None,
        help="base URL (http(s):// or file://) or folder serving the files "
        "under their own names, instead of the public source",
    )
    get.add_argument(
        "--dest",
        metavar="DIR",
        default=None,
        help=f"download into DIR/NAME/ (default: ${ENV_VAR} if set, else ~/.cache/creditlab)",
    )
    get.set_defaults(func=cmd_fetch)
    return data


def status(spec: DatasetSpec) -> str:
    """One-word-first status for `data list`, without hashing anything."""
    if spec.kind == "bundled":
        return f"bundled: {digits_csv_path()}"
    if spec.kind == "generated":
        cached = next((p for p in mnist1d_cache_paths() if p.is_file()), None)
        return f"generated: cached at {cached}" if cached else "generated: on first use"
    if spec.name == "nmnist":  # an archive or its unpacked folder per split
        return nmnist.status()
    folder = find_folder(spec)
    if folder is None:
        return f"missing: run `creditlab data fetch {spec.name}`"
    if spec.name == "mnist":
        try:
            return f"found: {folder} ({mnist_protocol(folder)})"
        except UserError as error:
            return f"incomplete: {error}"
    return f"found: {folder}"


def cmd_list(args: argparse.Namespace) -> int:
    """Print a table: name, description, status."""
    rows = [(spec.name, spec.description, status(spec)) for spec in DATASETS.values()]
    widths = [max(len(row[i]) for row in rows + [("name", "description", "")]) for i in (0, 1)]
    print(f"{'name':{widths[0]}}  {'description':{widths[1]}}  status")
    for name, description, state in rows:
        print(f"{name:{widths[0]}}  {description:{widths[1]}}  {state}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Print OK / BAD / MISSING per file; exit 0 when every file is intact, else 2."""
    names = [args.name] if getattr(args, "name", None) else list(DATASETS)
    bad = 0
    for name in names:
        if not getattr(args, "name", None) and _absent_optional(DATASETS[name]):
            fix = f"optional; add it with `creditlab data fetch {name}`"
            print(f"{'ABSENT':7}  {name:15}  {'':26}  {fix}")
            continue
        for item, ok, message in verify(name):
            label = "OK" if ok else "MISSING" if message.startswith("missing") else "BAD"
            bad += not ok
            print(f"{label:7}  {name:15}  {item:26}  {message}")
    print("all data intact" if not bad else f"{bad} file(s) bad or missing")
    return 0 if not bad else 2


def _absent_optional(spec: DatasetSpec) -> bool:
    """Optional, and none of its files in any root: `data verify` without a name skips it."""
    if not spec.optional:
        return False
    return not any((r / spec.name / f.name).is_file() for r in data_roots() for f in spec.files)


def cmd_remember(args: argparse.Namespace) -> int:
    """Record the data root for this environment (``$CREDITLAB_DATA`` when no DIR is given)."""
    folder = args.folder or os.environ.get(ENV_VAR, "").strip()
    if not folder:
        raise UserError(f"creditlab data remember needs a DIR (or ${ENV_VAR} set)")
    print(f"remembered {remember_root(Path(folder))}: creditlab finds data there when "
          f"${ENV_VAR} is not set ({REMEMBERED_FILE})")  # fmt: skip
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download (or, for mnist1d, generate) a data set; exit 0 once it is in place."""
    folder = fetch(args.name, mirror=args.mirror, dest=args.dest, log=print)
    print(f"{args.name}: ready in {folder}")
    return 0
