"""Whether a GGUF model fits this machine's memory when llama.cpp runs it at a given n_ctx.

Running a model needs its weights (the file, mapped whole), the KV cache (f16 keys and
values: n_ctx × layers × 2 × KV heads × head size × 2 bytes, the figure the build's memory
plan uses for its validation load) and llama.cpp's compute buffers. It is weighed against
the machine's RAM (on a Mac, the unified memory the GPU shares) less what the OS and the
app keep. The training-side plans live in `pipeline/training/memory_plan.py`; this is the
inference side, which the app and `workshop models` need without the pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from poetry_workshop.inference.gguf_file import GGUFInfo

GIB = 2**30
KV_BYTES = 2  # f16, llama.cpp's default cache type
COMPUTE_BUFFERS = GIB // 2  # logits and scratch for a 512-token batch, with allocator slack
OS_RESERVE = 3 * GIB // 2  # the OS, the terminal and the app itself


@dataclass(frozen=True)
class MemoryFit:
    weights: int
    kv_cache: int
    n_ctx: int
    available: int

    @property
    def needed(self) -> int:
        return self.weights + self.kv_cache + COMPUTE_BUFFERS

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    def describe(self) -> str:
        verdict = "fits" if self.fits else "too big"
        return (f"{verdict}: about {self.needed / GIB:.1f} GiB at n_ctx {self.n_ctx} "
                f"of {self.available / GIB:.1f} GiB usable")


def machine_memory() -> int:
    """The memory a model may use here: physical RAM less the OS reserve."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(total - OS_RESERVE, 0)


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def kv_cache_bytes(info: GGUFInfo, n_ctx: int) -> int:
    meta, arch = info.metadata, info.architecture
    layers = _int(meta.get(f"{arch}.block_count")) or 0
    heads = _int(meta.get(f"{arch}.attention.head_count")) or 1
    # Some architectures store per-layer head counts as an array (read_gguf skips arrays):
    # counting every head as a KV head errs large, which is the safe side.
    kv_heads = _int(meta.get(f"{arch}.attention.head_count_kv")) or heads
    embedding = _int(meta.get(f"{arch}.embedding_length")) or 0
    key = _int(meta.get(f"{arch}.attention.key_length")) or embedding // heads
    value = _int(meta.get(f"{arch}.attention.value_length")) or key
    return n_ctx * layers * kv_heads * (key + value) * KV_BYTES


def memory_fit(info: GGUFInfo, n_ctx: int, available: int | None = None) -> MemoryFit:
    return MemoryFit(weights=info.size_bytes, kv_cache=kv_cache_bytes(info, n_ctx), n_ctx=n_ctx,
                     available=machine_memory() if available is None else available)
