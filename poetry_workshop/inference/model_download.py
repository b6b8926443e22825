"""Fetching a GGUF from the Hugging Face Hub into models/: resumable, checked, whole or absent.

The order is what makes it safe: the file's metadata first (size, and the sha256 that is
its LFS object id), then a free-space check, then the bytes into a partial file under
`models/.downloads/`, resumed with an HTTP Range request when a previous run was stopped,
then the sha256 of the whole file against the Hub's, then the app's own GGUF checks; only
then is it renamed into models/. A wrong checksum or a file that is not a usable GGUF is
deleted with its partial folder: nothing is left behind to be mistaken for a model.

huggingface_hub does the HTTP (its HEAD metadata, redirects, retries, error types and
progress bars): `hf_hub_download` itself discards a partial download when a run stops,
so the resumable part file is kept here and filled with its `http_get`. `HF_ENDPOINT` is
read on each call (huggingface_hub reads it once, at import), which is how the tests
point it at a loopback hub.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from poetry_workshop.errors import ExitCode, ModelFileError, WorkshopError
from poetry_workshop.files import fsync_folder, sha256_of, write_atomic
from poetry_workshop.inference.catalogue import HUB, CatalogueEntry
from poetry_workshop.inference.gguf_file import GGUFInfo, read_gguf, require_chat_template

PARTIAL_FOLDER = ".downloads"
SPACE_MARGIN = 64 * 2**20  # room left over, so the disk is never filled to the last byte
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
LOGIN_STEP = ("log in with `huggingface-cli login` (or `hf auth login`), or set HF_TOKEN to a read token "
              "from https://huggingface.co/settings/tokens")


class DownloadError(WorkshopError):
    """The Hub refused or failed a download, or what arrived is not the file it described."""

    exit_code = ExitCode.FAILED


class DownloadStopped(Exception):
    """Raised by a `report` callback to stop a download; the partial file stays for a resume."""


@dataclass(frozen=True)
class HubFile:
    """What the Hub says about a file before a byte of it is fetched."""

    url: str  # where the bytes are (the Hub, or the storage it redirects to)
    size: int
    sha256: str
    commit: str


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    fetched_bytes: int  # bytes this run fetched (less than the size when it resumed)
    resumed_from: int
    info: GGUFInfo


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", HUB).rstrip("/")


def _explain(exc: Exception, entry: CatalogueEntry) -> DownloadError:
    """One line for each way the Hub says no."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    page = f"{endpoint()}/{entry.repo}"
    if isinstance(exc, GatedRepoError):
        return DownloadError(f"{entry.repo} is gated: accept its license on {page} while logged in, then "
                             f"{LOGIN_STEP}, and run this again", ExitCode.USAGE)
    if isinstance(exc, RepositoryNotFoundError):
        return DownloadError(f"{entry.repo}: no such repository on {endpoint()}, or it is private; check the "
                             f"name, or {LOGIN_STEP} if it is yours", ExitCode.USAGE)
    if isinstance(exc, (RemoteEntryNotFoundError, RevisionNotFoundError)):
        return DownloadError(f"{entry.repo} has no file {entry.filename}; see the files on {page}/tree/main",
                             ExitCode.USAGE)
    if isinstance(exc, HfHubHTTPError) and exc.response is not None and exc.response.status_code in (401, 403):
        return DownloadError(f"{entry.repo}: the Hub refused access ({exc.response.status_code}); {LOGIN_STEP}",
                             ExitCode.USAGE)
    cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return DownloadError(f"{entry.repo}/{entry.filename}: the download failed ({cause}); check the network "
                         "and run the same command again: it resumes where it stopped")


def hub_file(entry: CatalogueEntry, token: str | bool | None = None) -> HubFile:
    """The file's size and sha256 from the Hub (a HEAD request; nothing is downloaded)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(entry.repo, entry.filename, endpoint=endpoint())
    try:
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint())
    except Exception as exc:  # the network boundary: each kind huggingface_hub raises becomes one line
        raise _explain(exc, entry) from None
    sha = (meta.etag or "").lower()
    if not _SHA256.match(sha):
        raise DownloadError(f"{entry.repo}/{entry.filename}: the Hub gives no sha256 for it (not an LFS file), so "
                            "it cannot be checked; download it yourself and pass its path", ExitCode.USAGE)
    if not meta.size:
        raise DownloadError(f"{entry.repo}/{entry.filename}: the Hub does not say its size; try again later")
    return HubFile(url=meta.location, size=meta.size, sha256=sha, commit=meta.commit_hash or "")


def _partial_paths(models_dir: Path, filename: str) -> tuple[Path, Path]:
    folder = models_dir / PARTIAL_FOLDER
    return folder / f"{filename}.part", folder / f"{filename}.part.json"


def _discard(part: Path, note: Path) -> None:
    part.unlink(missing_ok=True)
    note.unlink(missing_ok=True)
    try:
        part.parent.rmdir()  # only when no other download is in progress there
    except OSError:
        pass


def check_free_space(folder: Path, needed: int, filename: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + SPACE_MARGIN:
        raise DownloadError(f"{folder}: {filename} needs {needed / 1e9:.1f} GB more and the disk has "
                            f"{free / 1e9:.1f} GB free; free some space and run this again", ExitCode.USAGE)


class _Reporter:
    """A progress bar as huggingface_hub's `http_get` drives one, reporting to a callback."""

    def __init__(self, report: Callable[[int, int], None], total: int | None = None, initial: int = 0, **_):
        self.report, self.total, self.n = report, total or 0, initial
        report(self.n, self.total)

    def update(self, n: int = 1) -> None:
        self.n += n
        self.report(self.n, self.total)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def download(entry: CatalogueEntry, models_dir: Path, *, token: str | bool | None = None,
             report: Callable[[int, int], None] | None = None, log: Callable[[str], None] = lambda m: None,
             ) -> Downloaded:
    """Fetch `entry` into `models_dir`, verified. `report(done, total)` follows the bytes
    (and may raise `DownloadStopped`); without it huggingface_hub draws its own bar on a
    terminal."""
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / Path(entry.filename).name
    remote = hub_file(entry, token)
    if target.is_file():
        if target.stat().st_size == remote.size and sha256_of(target) == remote.sha256:
            log(f"{target.name} is already in {models_dir} and matches the Hub's sha256")
            return Downloaded(target, remote.sha256, 0, remote.size, _checked(target))
        raise DownloadError(f"{target}: a different file of that name is already there; move it away and run "
                            "this again", ExitCode.USAGE)
    part, note = _partial_paths(models_dir, target.name)
    have = 0
    if part.is_file():
        kept = json.loads(note.read_text(encoding="utf-8")) if note.is_file() else {}
        if kept.get("sha256") == remote.sha256 and part.stat().st_size <= remote.size:
            have = part.stat().st_size
        else:  # a partial of another version of the file (or of unknown origin): start over
            _discard(part, note)
    check_free_space(models_dir, remote.size - have, target.name)
    part.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(note, json.dumps({"repo": entry.repo, "filename": entry.filename, "sha256": remote.sha256,
                                   "size": remote.size, "commit": remote.commit}) + "\n")
    headers = build_hf_headers(token=token)
    if urlparse(remote.url).netloc != urlparse(endpoint()).netloc:
        headers.pop("authorization", None)  # a token never leaves the Hub for its storage host
    if have:
        log(f"resuming {target.name} at {have / 1e6:.0f} of {remote.size / 1e6:.0f} MB")
    tqdm_class = None if report is None else (lambda **kw: _Reporter(report, **kw))
    with part.open("ab") as fh:
        try:
            http_get(remote.url, fh, resume_size=have, headers=headers, expected_size=remote.size,
                     displayed_filename=target.name, tqdm_class=tqdm_class)
        except DownloadStopped:
            raise  # the partial file stays: the next run resumes from it
        except Exception as exc:  # likewise
            raise _explain(exc, entry) from None
        fh.flush()
        os.fsync(fh.fileno())
    fetched = part.stat().st_size - have
    log(f"checking the sha256 of {target.name}…")
    actual = sha256_of(part)
    if actual != remote.sha256:
        _discard(part, note)
        raise DownloadError(f"{entry.repo}/{entry.filename}: the downloaded file's sha256 {actual[:12]}… is not "
                            f"the Hub's {remote.sha256[:12]}…; it was deleted, nothing was kept; run this again")
    try:
        info = _checked(part)
    except ModelFileError as exc:
        _discard(part, note)
        raise DownloadError(f"{entry.repo}/{entry.filename}: not a model the workshop can use "
                            f"({str(exc).split(': ', 1)[-1]}); it was deleted", ExitCode.USAGE) from None
    os.replace(part, target)
    fsync_folder(models_dir)
    _discard(part, note)
    info.path = target
    return Downloaded(target, actual, fetched, have, info)


def _checked(path: Path) -> GGUFInfo:
    """The same checks a model gets before llama.cpp sees it: a GGUF, with a chat template."""
    info = read_gguf(path)
    require_chat_template(info)
    return info
