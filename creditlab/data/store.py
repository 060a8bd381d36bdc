"""Where data files live, whether they are intact, and how they are downloaded.

Lookup order: ``$CREDITLAB_DATA`` (if set), then ``~/.cache/creditlab``; a data set lives in a
subfolder named after it, e.g. ``$CREDITLAB_DATA/mnist/t10k-images-idx3-ubyte.gz``. The first
root holding all of a data set's required files wins.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from creditlab.data.catalog import DataFile, DatasetSpec
from creditlab.errors import UserError

ENV_VAR = "CREDITLAB_DATA"
DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20

ContentDigest = Callable[[Path], str]
"""Decodes a data file and returns the md5 of its array content."""


REMEMBERED_FILE = Path(sys.prefix) / "creditlab-data-root"
"""Where ``creditlab data remember`` records a data root for this Python environment (the
venv), so that ``creditlab`` finds the data after ``source .venv/bin/activate`` alone."""


def remembered_root() -> Path | None:
    """The data root recorded for this environment, if any."""
    try:
        text = REMEMBERED_FILE.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Path(text) if text else None


def remember_root(folder: Path) -> Path:
    """Record ``folder`` (an existing directory) as this environment's data root."""
    folder = Path(folder).expanduser().absolute()
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; nothing remembered")
    REMEMBERED_FILE.write_text(f"{folder}\n", encoding="utf-8")
    return folder


def data_roots() -> list[Path]:
    """The folders searched for data, in order: ``$CREDITLAB_DATA`` if set, else the root this
    environment remembers (``creditlab data remember``), then ``~/.cache/creditlab``."""
    roots: list[Path] = []
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        roots.append(Path(env).expanduser().absolute())
    elif (remembered := remembered_root()) is not None:
        roots.append(remembered)
    cache = Path.home() / ".cache" / "creditlab"
    if cache not in roots:
        roots.append(cache)
    return roots


def searched(name: str, roots: Sequence[Path] | None = None) -> str:
    """The folders searched for data set ``name``, for messages."""
    return ", ".join(str(root / name) for root in (roots or data_roots()))


def is_writable(folder: Path) -> bool:
    """Whether ``folder`` (or its nearest existing ancestor) may be written.

    Read-only is any of: a read-only mount (``statvfs``'s ST_RDONLY), permission bits that deny
    writing, or ``os.access`` saying no. The bits count even for root, who could override them:
    a shared data folder set read-only is never written into by a process that ignores its mode.
    """
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if not probe.is_dir() or not probe.stat().st_mode & 0o222:
        return False
    return os.access(probe, os.W_OK) and not os.statvfs(probe).f_flag & os.ST_RDONLY


# ---------------------------------------------------------------------------------------------
# checksums, cached per process by (path, size, mtime, inode) so big files are hashed once
# ---------------------------------------------------------------------------------------------

_digest_cache: dict[tuple[str, str, int, int, int], str] = {}


def _cached(path: Path, kind: str, compute: Callable[[Path], str]) -> str:
    st = path.stat()
    key = (kind, str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _digest_cache:
        _digest_cache[key] = compute(path)
    return _digest_cache[key]


def _md5_of_bytes(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    """md5 of a file's bytes (hashed once per process while the file is unchanged)."""
    return _cached(path, "md5", _md5_of_bytes)


def check_file(
    path: Path, spec: DataFile, content: ContentDigest | None = None
) -> tuple[bool, str]:
    """Check ``path`` against ``spec``: (ok, message). The content md5 is a fallback only."""
    actual = file_md5(path)
    if actual == spec.md5:
        return True, "md5 ok"
    if spec.content_md5 and content is not None:
        try:
            decoded = _cached(path, "content", content)
        except Exception:  # an unreadable file is simply not the expected one
            decoded = None
        if decoded == spec.content_md5:
            return True, "content md5 ok (file bytes differ from the reference copy)"
    return False, f"md5 {actual}, expected {spec.md5}"


def require_intact(
    path: Path, spec: DataFile, dataset: str, content: ContentDigest | None = None
) -> None:
    """Raise a one-line UserError unless ``path`` passes `check_file`."""
    ok, message = check_file(path, spec, content)
    if not ok:
        raise UserError(
            f"corrupt data file {path}: {message}; delete it and run "
            f"`creditlab data fetch {dataset}` (or restore it from the source you copied it from)"
        )


# ---------------------------------------------------------------------------------------------
# locating a data set
# ---------------------------------------------------------------------------------------------


def find_folder(spec: DatasetSpec, roots: Sequence[Path] | None = None) -> Path | None:
    """The first ``<root>/<name>`` holding every required file of ``spec``, or None."""
    for root in roots or data_roots():
        folder = root / spec.name
        if all((folder / f.name).is_file() for f in spec.files if f.required):
            return folder
    return None


def missing_error(spec: DatasetSpec, roots: Sequence[Path] | None = None) -> UserError:
    """The one-line error for a data set found in no root."""
    needed = ", ".join(f.name for f in spec.files if f.required)
    return UserError(
        f"data set '{spec.name}' not found: looked for {needed} in {searched(spec.name, roots)}; "
        f"run `creditlab data fetch {spec.name}` or set {ENV_VAR} to a folder holding "
        f"{spec.name}/"
    )


# ---------------------------------------------------------------------------------------------
# downloading
# ---------------------------------------------------------------------------------------------


def as_base_url(mirror: str) -> str:
    """A mirror as a base URL ending in '/'; a plain folder path becomes a file:// URL."""
    if "://" not in mirror:
        mirror = Path(mirror).expanduser().absolute().as_uri()
    return mirror if mirror.endswith("/") else mirror + "/"


def _stream(url: str, folder: Path, label: str) -> Path:
    """Download ``url`` into a hidden temporary file in ``folder``; the caller renames it."""
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{label}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
        ):
            length = response.headers.get("Content-Length")
            with tqdm(
                total=int(length) if length else None,
                desc=label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                leave=False,
                disable=not sys.stderr.isatty(),
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        tmp.chmod(0o644)  # mkstemp makes it private; a data file is for everyone to read
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}"


def download_file(
    spec: DataFile,
    dataset: str,
    folder: Path,
    bases: Sequence[str],
    *,
    use_source_name: bool,
    convert: Callable[[Path, Path], None] | None = None,
    content: ContentDigest | None = None,
) -> str:
    """Fetch ``spec`` into ``folder`` from the first base URL that serves an intact copy.

    With ``use_source_name`` the file is requested under ``spec.source_name`` (another format
    on the canonical public source) and ``convert(downloaded, local)`` turns it into the local
    format before the check. The file appears in ``folder`` only once verified (atomic rename).
    Returns the URL used; raises a one-line UserError when no base serves a good copy.
    """
    remote = spec.source_name if (use_source_name and spec.source_name) else spec.name
    failures: list[str] = []
    for base in bases:
        url = base + remote
        try:
            downloaded = _stream(url, folder, spec.name)
        except (OSError, ValueError) as error:  # URLError and HTTPError are OSErrors
            failures.append(f"{url}: {_reason(error)}")
            continue
        candidate = downloaded
        try:
            if remote != spec.name and convert is not None:
                candidate = downloaded.with_name(downloaded.name + ".converted")
                convert(downloaded, candidate)
            ok, message = check_file(candidate, spec, content)
        except Exception as error:  # a download that cannot even be decoded is a bad copy
            ok, message = False, f"cannot be read ({type(error).__name__}: {error})"
        except BaseException:  # Ctrl-C: leave no temporary files behind
            candidate.unlink(missing_ok=True)
            raise
        finally:
            if candidate != downloaded:
                downloaded.unlink(missing_ok=True)
        if ok:
            os.replace(candidate, folder / spec.name)
            return url
        candidate.unlink(missing_ok=True)
        failures.append(f"{url}: {message}")
    raise UserError(
        f"could not fetch {spec.name} for '{dataset}': {'; '.join(failures)}; check the network "
        f"connection or pass --mirror URL of a folder serving {spec.name}, or copy the file into "
        f"{folder}"
    )
