"""Reading a GGUF file's header: is it a GGUF at all, what model is inside, and whether a
LoRA adapter GGUF fits a base model.

Checked before llama.cpp sees the file, because llama.cpp answers every problem with the
same "Failed to load model" (and, without a chat template, silently chats in the llama-2
format). Reading only the metadata is fast even for an 8B file: tensor data is never read.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from poetry_workshop.errors import ModelFileError
from poetry_workshop.inference.thinking import ThinkingTemplate, thinking_template

MAGIC = b"GGUF"

# GGUF value types -> struct format (fixed-size scalars)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Arrays are skipped unless their key is here: a vocabulary is 50k–150k strings.
_KEEP_ARRAYS: set[str] = set()

FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
}


@dataclass
class GGUFInfo:
    path: Path
    size_bytes: int
    version: int
    tensor_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> shape; read on request

    @property
    def kind(self) -> str:
        """`model` or `adapter` (a LoRA adapter GGUF), as the converter wrote `general.type`."""
        return str(self.metadata.get("general.type", "model"))

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", self.path.stem))

    @property
    def chat_template(self) -> str | None:
        template = self.metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    @property
    def quantization(self) -> str:
        ft = self.metadata.get("general.file_type")
        return FILE_TYPES.get(ft, f"type {ft}") if ft is not None else "unknown"

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if value is not None else None

    @property
    def template_family(self) -> str:
        return template_family(self.chat_template)

    @property
    def thinking(self) -> ThinkingTemplate:
        """Whether the model behind the template reasons in think blocks, and can be told not to."""
        return thinking_template(self.chat_template)


def template_family(template: str | None) -> str:
    """Name the chat format a Jinja chat template produces (for people, not for rendering)."""
    if not template:
        return "none"
    markers = [
        ("<|im_start|>", "chatml"),
        ("<|start_header_id|>", "llama3"),
        ("<start_of_turn>", "gemma"),
        ("<|user|>", "phi/zephyr"),
        ("[INST]", "llama2/mistral"),
        ("<|User|>", "deepseek"),
    ]
    for marker, family in markers:
        if marker in template:
            return family
    return "custom"


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path):
        self.fh, self.path = fh, path

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise ModelFileError(
                f"{self.path}: the GGUF header is truncated; download or export the file again"
            )
        return data

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("<Q")
        if n > 1 << 28:
            raise ModelFileError(f"{self.path}: corrupt GGUF header (a string of {n} bytes)")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.scalar("<I"), self.scalar("<Q")
            if itype in _SCALARS and not keep:
                self.fh.seek(struct.calcsize(_SCALARS[itype]) * count, os.SEEK_CUR)
                return f"<array of {count}>"
            items = [self.value(itype, keep) for _ in range(count)]
            return items if keep else f"<array of {count}>"
        raise ModelFileError(f"{self.path}: corrupt GGUF header (unknown value type {vtype})")


def read_gguf(path: str | Path, tensors: bool = False) -> GGUFInfo:
    """Validate that `path` is a readable GGUF file and return its metadata (and, with
    `tensors`, each tensor's name and shape, which follow the metadata: still no tensor data).

    Raises `ModelFileError` with the path and the fix for: a missing file, a folder, an
    empty file, a file that is not GGUF, a truncated or corrupt header.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(
            f"{path}: model file not found; run set-up (scripts/setup.sh) or pass an existing .gguf"
        )
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file; pass the .gguf file inside it")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{path}: the model file is empty (0 bytes); download or export it again")
    try:
        fh = path.open("rb")
    except PermissionError:
        raise ModelFileError(f"{path}: the model file is not readable; check its permissions")
    with fh:
        magic = fh.read(4)
        if magic != MAGIC:
            raise ModelFileError(
                f"{path}: not a GGUF file (it does not start with 'GGUF'); "
                "pass a llama.cpp .gguf model"
            )
        reader = _Reader(fh, path)
        version = reader.scalar("<I")
        if version not in (2, 3):
            raise ModelFileError(
                f"{path}: GGUF version {version} is not supported (2 or 3 expected); "
                "convert it with a current llama.cpp"
            )
        tensor_count, kv_count = reader.scalar("<Q"), reader.scalar("<Q")
        if kv_count > 100_000 or tensor_count > 1_000_000:
            raise ModelFileError(f"{path}: corrupt GGUF header; download or export the file again")
        metadata: dict[str, Any] = {}
        for _ in range(kv_count):
            key = reader.string()
            vtype = reader.scalar("<I")
            metadata[key] = reader.value(vtype, keep=key in _KEEP_ARRAYS)
        shapes = _tensor_shapes(reader, tensor_count) if tensors else {}
    if tensor_count == 0:
        raise ModelFileError(f"{path}: the GGUF holds no tensors; it is not a model")
    return GGUFInfo(path=path, size_bytes=size, version=version, tensor_count=tensor_count, metadata=metadata,
                    tensors=shapes)


def _tensor_shapes(reader: _Reader, count: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for _ in range(count):
        name = reader.string()
        n_dims = reader.scalar("<I")
        if n_dims > 8:
            raise ModelFileError(f"{reader.path}: corrupt GGUF header (a tensor of {n_dims} dimensions)")
        shapes[name] = tuple(reader.scalar("<Q") for _ in range(n_dims))
        reader.read(12)  # its type (uint32) and data offset (uint64)
    return shapes


def require_chat_template(info: GGUFInfo) -> str:
    if info.kind == "adapter":  # it has no template because it is not a model at all
        raise ModelFileError(
            f"{info.path}: a LoRA adapter, not a model; give it with the base it was exported for: "
            f"`workshop models use ROLE BASE.gguf --adapter {info.path}`"
        )
    template = info.chat_template
    if template is None:
        raise ModelFileError(
            f"{info.path}: the GGUF has no chat template (tokenizer.chat_template); "
            "re-export it with its tokenizer's template, or choose another model"
        )
    return template


ADAPTER_FIX = "give the LoRA adapter GGUF that `workshop export ROLE --adapter` writes (models/ROLE.lora.gguf)"


def read_adapter(path: str | Path, base: GGUFInfo) -> GGUFInfo:
    """Check that `path` is a LoRA adapter GGUF made for the model `base`, before llama.cpp
    sees it: llama.cpp answers a wrong adapter with the same "failed to load" as a corrupt
    model, naming neither file. Raises `ModelFileError` naming the adapter and the fix for:
    not a GGUF, a full model given as an adapter, another kind of adapter, an adapter for
    another architecture, and one trained on a base of another size (a tensor the base lacks
    or whose shape differs)."""
    path = Path(path).expanduser()
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "not found"
        raise ModelFileError(f"{path}: adapter file {where}; {ADAPTER_FIX}")
    with path.open("rb") as fh:
        if fh.read(4) != MAGIC:
            raise ModelFileError(f"{path}: not a GGUF file, so not a LoRA adapter; {ADAPTER_FIX}")
    info = read_gguf(path, tensors=True)
    if info.kind != "adapter":
        raise ModelFileError(f"{path}: a full model (general.type '{info.kind}'), not a LoRA adapter; make it the "
                             f"role's model instead (`workshop models use ROLE {path}`), or {ADAPTER_FIX}")
    lora = info.metadata.get("adapter.type")
    if lora != "lora":
        raise ModelFileError(f"{path}: a '{lora}' adapter, not a LoRA adapter; {ADAPTER_FIX}")
    if info.architecture != base.architecture:
        raise ModelFileError(f"{path}: a LoRA adapter for the {info.architecture} architecture, but {base.path.name} "
                             f"is {base.architecture}; give the base the adapter was exported with (its manifest, "
                             f"{path.name}.json, names it)")
    base_shapes = base.tensors or read_gguf(base.path, tensors=True).tensors
    for name, shape in info.tensors.items():
        target, _, part = name.rpartition(".")
        if part not in ("lora_a", "lora_b"):
            continue
        # ggml lists the fastest dimension first: lora_a is (inputs, rank), lora_b (rank, outputs).
        want = base_shapes.get(target)
        got = shape[0] if part == "lora_a" else shape[1]
        have = None if want is None else (want[0] if part == "lora_a" else want[1])
        if have != got:
            found = "has no such tensor" if want is None else f"has {'x'.join(map(str, want))}"
            raise ModelFileError(f"{path}: trained on another base: its {target} needs "
                                 f"{'inputs' if part == 'lora_a' else 'outputs'} of {got}, and {base.path.name} "
                                 f"{found}; give the base the adapter was exported with (its manifest, "
                                 f"{path.name}.json, names it)")
    return info
