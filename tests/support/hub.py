"""A fresh project for `workshop models` tests: its own models/ folder, a loopback hub, and
model stores (HF cache, LM Studio, Ollama) that are empty unless a test fills them."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from poetry_workshop import locations
from tests.support.cli import ROOT, run_cli


@dataclass
class FreshProject:
    root: Path
    env: dict[str, str]

    @property
    def models(self) -> Path:
        return self.root / "models"

    def run(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None):
        return run_cli(*args, env={**self.env, **(env or {})}, stdin=stdin)

    def models_listing(self) -> set[str]:
        """Everything under models/, hidden files and folders included."""
        return {p.relative_to(self.models).as_posix() for p in self.models.rglob("*")}


def fresh_project(tmp_path: Path, hub_url: str | None = None) -> FreshProject:
    """A project folder as a fresh clone has it (config/ and persona/ shared with this one,
    an empty models/), with every model store pointed into tmp_path and no Hub token."""
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    for shared in ("config", "persona"):
        (root / shared).symlink_to(ROOT / shared)
    env = {locations.ROOT_ENV: str(root), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": "",
           **store_env(tmp_path / "stores")}
    if hub_url:
        env["HF_ENDPOINT"] = hub_url
    return FreshProject(root, env)


def isolate_stores(monkeypatch, tmp_path: Path) -> Path:
    """In-process: every model store and the Hub settings under tmp_path."""
    stores = tmp_path / "stores"
    for name, value in store_env(stores).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return stores


def store_env(stores: Path) -> dict[str, str]:
    return {"HF_HOME": str(stores / "hf-home"), "HF_HUB_CACHE": str(stores / "hf-cache"),
            "POETRY_WORKSHOP_LMSTUDIO_MODELS": str(stores / "lmstudio"), "OLLAMA_MODELS": str(stores / "ollama")}


def place(source: Path, target: Path) -> Path:
    """A model file at `target` without copying its bytes (a symlink, as the tools' stores use)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source, target)
    return target


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_tiny_gguf(path: Path, metadata: dict[str, int | str]) -> Path:
    """A small but well-formed GGUF v3: the given metadata (ints as uint32, strings) and one
    f32 tensor of 8 values. Enough for every header check; llama.cpp cannot run it."""
    kv = b""
    for key, value in metadata.items():
        if isinstance(value, str):
            kv += _gguf_string(key) + struct.pack("<I", 8) + _gguf_string(value)
        else:
            kv += _gguf_string(key) + struct.pack("<I", 4) + struct.pack("<I", value)
    tensor = _gguf_string("token_embd.weight") + struct.pack("<IQIQ", 1, 8, 0, 0)
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, len(metadata)) + kv + tensor
    header += b"\0" * (-len(header) % 32)  # tensor data starts aligned
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + struct.pack("<8f", *range(8)))
    return path


QWEN3_TEMPLATE = ("{%- for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
                  "{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- if enable_thinking is "
                  "defined and enable_thinking is false %}<think>\n\n</think>\n\n{%- endif %}{%- endif %}")


def tiny_thinking_gguf(path: Path) -> Path:
    """A Qwen3-shaped header: a thinking template, a 32k context, eight KV heads of 128."""
    return write_tiny_gguf(path, {
        "general.architecture": "qwen3", "general.name": "Tiny Qwen3", "general.file_type": 15,
        "qwen3.context_length": 32768, "qwen3.block_count": 4, "qwen3.embedding_length": 256,
        "qwen3.attention.head_count": 4, "qwen3.attention.head_count_kv": 2, "qwen3.attention.key_length": 64,
        "qwen3.attention.value_length": 64, "tokenizer.chat_template": QWEN3_TEMPLATE,
    })
