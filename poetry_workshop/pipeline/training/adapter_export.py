"""A role published as a LoRA adapter GGUF beside one base GGUF both roles can share.

Two merged models on one base hold the base's weights twice; a base GGUF and two small
adapters hold them once (llama.cpp maps the base file, and the pages of one file are shared
by every model loaded from it). The chain, beside `gguf_export.export`'s:

1. The base as training left it (gguf_export.trained_base: pad token, seated template tokens
   and their trained rows, EOS made the end-of-turn token), converted with the pinned
   `convert_hf_to_gguf.py` and quantized once. Its file name carries a key of everything
   that makes it (base, vocabulary, seated tokens, trained rows, end of turn, quantization,
   converter), so a second role trained on the same base finds it published and reuses it;
   a base given a template at training has rows trained per role, so each such role gets
   its own base (it still carries the template in its GGUF, from the saved tokenizer).
2. The adapter converted with the pinned `convert_lora_to_gguf.py` (f16: it is small, and
   llama.cpp applies an f16 adapter to a quantized base).
3. Validation on base + adapter, through the app's backend, as for a merged model.
4. Publishing by rename: the base (when new) and its manifest, the adapter, then the
   adapter's manifest, which names the base file and its sha256, so a manifest never names
   a missing file. A failure before that publishes nothing.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError
from poetry_workshop.files import sha256_of
from poetry_workshop.pipeline.training.base_model import TEMPLATE_ROWS, is_local_gguf, resolve_base
from poetry_workshop.pipeline.training.gguf_export import (
    end_turns_with_eos,
    fetch_converter,
    publish,
    quantize,
    run_converter,
    trained_base,
    validate,
)

ADAPTER_SUFFIX = ".lora.gguf"


@dataclass
class AdapterExportResult:
    adapter: Path
    base: Path
    manifest: Path
    base_reused: bool
    validation: dict

    def use_command(self, role: str) -> str:
        return f"workshop models use {role} {self.base} --adapter {self.adapter}"


def adapter_file(role: str) -> str:
    return f"{role}{ADAPTER_SUFFIX}"


def base_recipe(base_name: str, adapter: Path, tokenizer, trained: dict, quantization: str, converter: str) -> dict:
    """Everything the base GGUF is made from: two roles with the same recipe share one file."""
    from poetry_workshop.pipeline.training.chat_examples import end_of_turn_id

    rows = adapter / TEMPLATE_ROWS
    return {"base_model": resolve_base(base_name) if is_local_gguf(base_name) else base_name,
            "vocabulary": len(tokenizer), "pad_token": tokenizer.pad_token,
            "seated_tokens": trained.get("seated_tokens") or [],
            "template_rows_sha256": sha256_of(rows) if rows.is_file() else None,
            "end_of_turn_id": end_of_turn_id(tokenizer), "quantization": quantization, "converter": converter}


def base_file(base_name: str, recipe: dict) -> str:
    stem = Path(base_name).stem if is_local_gguf(base_name) else base_name.rstrip("/").split("/")[-1]
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    return f"{stem}.base-{key}.{recipe['quantization']}.gguf"


def published_base(path: Path, recipe: dict, log) -> dict | None:
    """The manifest of the base published at `path` when it is whole and made from `recipe`."""
    try:
        manifest = json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("recipe") != recipe or not path.is_file():
        return None
    log(f"checking the published base {path.name}")
    if path.stat().st_size != manifest.get("size") or sha256_of(path) != manifest.get("sha256"):
        log(f"{path.name} does not match its manifest; making it again")
        return None
    return manifest


def export_adapter(role: str, settings, log=lambda message: None, work_root: Path | None = None,
                   memory_limit=None) -> AdapterExportResult:
    """Publish `role` as an adapter GGUF beside its base GGUF in export.output_dir, only if
    base + adapter validate."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from poetry_workshop.pipeline.training.device import merge_dtype
    from poetry_workshop.pipeline.training.memory_plan import check_export
    from poetry_workshop.pipeline.training.trainer import checkpoints_dir, data_hash
    from poetry_workshop.workshop.persona import load_persona

    config = settings.educator_training if role == "educator" else settings.poet_training
    ex = settings.export.export
    adapter = checkpoints_dir(role) / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"{adapter}: no trained adapter here; run `workshop train {role}` first")
    trained = json.loads((adapter / "workshop_training.json").read_text(encoding="utf-8")) \
        if (adapter / "workshop_training.json").is_file() else {}
    base_name = trained.get("base_model", config.training.base_model)
    out_dir = _folder(locations.resolve_project_path(ex.output_dir))
    converter = fetch_converter(ex.converter_version, ex.converter_sha256, log)
    converter_name = f"llama-cpp-python {ex.converter_version}"
    recipe = base_recipe(base_name, adapter, AutoTokenizer.from_pretrained(str(adapter)), trained,
                         ex.quantization, converter_name)
    base_name_out = base_file(base_name, recipe)
    base_path = out_dir / base_name_out
    reused = published_base(base_path, recipe, log)
    name = adapter_file(role)
    with tempfile.TemporaryDirectory(prefix=f".export-{role}.", dir=_folder(work_root or out_dir)) as tmp:
        work = Path(tmp)
        dtype = getattr(torch, merge_dtype())
        if reused is None:
            check_export(base_name, adapter, ex.quantization, settings.export.modal, merge_dtype(), log, memory_limit)
            log("preparing the base as training left it")
            model, tokenizer = trained_base(base_name, adapter, dtype, log)
            eot = end_turns_with_eos(model, tokenizer)
            model.save_pretrained(str(work / "base"), safe_serialization=True)
            del model
            tokenizer.save_pretrained(str(work / "base"))
            log("converting the base to GGUF (f16)")
            run_converter(converter, "convert_hf_to_gguf.py",
                          [str(work / "base"), "--outfile", str(work / "base.f16.gguf"), "--outtype", "f16"],
                          work / "base", work / "base.f16.gguf")
            log(f"quantizing the base to {ex.quantization}")
            quantize(work / "base.f16.gguf", work / base_name_out, ex.quantization)
            (work / "base.f16.gguf").unlink()
            base_gguf = work / base_name_out
        else:
            log(f"reusing the published base {base_name_out}")
            # The adapter converter reads only the base's config; validation, its tokenizer.
            tokenizer = AutoTokenizer.from_pretrained(str(adapter))
            base_config = AutoConfig.from_pretrained(resolve_base(base_name, log))
            base_config.vocab_size = max(base_config.vocab_size, len(tokenizer))
            eot = end_turns_with_eos(_ConfigOnly(base_config), tokenizer)
            base_config.save_pretrained(str(work / "base"))
            tokenizer.save_pretrained(str(work / "base"))
            base_gguf = base_path
        log("converting the adapter to GGUF (f16)")
        run_converter(converter, "convert_lora_to_gguf.py",
                      [str(adapter), "--base", str(work / "base"), "--outfile", str(work / name), "--outtype", "f16"],
                      adapter, work / name)
        from poetry_workshop.inference.gguf_file import read_adapter, read_gguf

        read_adapter(work / name, read_gguf(base_gguf, tensors=True))  # the check the app makes
        log("validating base + adapter")
        persona = load_persona()
        system = persona.educator_system if role == "educator" else persona.poet_system
        report = validate(base_gguf, work / "base", eot["end_of_turn_id"], system, getattr(settings.inference.sampling, role),
                          max_tokens=getattr(settings.inference.max_tokens, "critique" if role == "educator" else "draft"),
                          adapter=work / name)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if reused is None:
            base_manifest = {"file": base_name_out, "sha256": sha256_of(base_gguf), "size": base_gguf.stat().st_size,
                             "recipe": recipe, "converter": f"{converter_name} convert_hf_to_gguf.py",
                             "exported": stamp}
            (work / f"{base_name_out}.json").write_text(json.dumps(base_manifest, indent=2), encoding="utf-8")
        else:
            base_manifest = reused
        manifest = {
            "role": role, "file": name, "kind": "lora adapter", "sha256": sha256_of(work / name),
            "base": {"file": base_name_out, "sha256": base_manifest["sha256"]},
            "base_model": base_name,
            "data_hash": trained.get("data_hash") or data_hash(locations.resolve_data_path(config.data.train),
                                                               locations.resolve_data_path(config.data.valid)),
            "training": {"run": {**asdict(config.training), "num_epochs": trained.get("epochs", config.training.num_epochs)},
                         "lora": asdict(config.lora), "steps": trained.get("steps")},
            "converter": f"{converter_name} convert_lora_to_gguf.py (f16)",
            "quantization": ex.quantization, "validation": report, "exported": stamp,
        }
        (work / f"{name}.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if reused is None:  # the base first: no manifest ever names a missing file
            publish(base_gguf, base_path)
            publish(work / f"{base_name_out}.json", out_dir / f"{base_name_out}.json")
        publish(work / name, out_dir / name)
        publish(work / f"{name}.json", out_dir / f"{name}.json")
    return AdapterExportResult(out_dir / name, base_path, out_dir / f"{name}.json", reused is not None, report)


class _ConfigOnly:
    """What end_turns_with_eos needs of a model when only its config is written."""

    def __init__(self, config):
        self.config = config
        self.generation_config = None


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
