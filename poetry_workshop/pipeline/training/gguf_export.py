"""From a trained adapter to the GGUF the app runs: merge, convert, quantize, validate, publish.

1. Merge the adapter into the base in bf16, fp16 where bf16 is unsupported (never into a
   4-bit base), after the memory plan says it fits (memory_plan.py), make the
   template's end-of-turn token the EOS, and save the tokenizer and chat template with it.
2. Convert with llama.cpp's `convert_hf_to_gguf.py` at a pinned version: it ships in the
   source distribution of the pinned llama-cpp-python release, with its `conversion/`
   package and `gguf-py/`. It is fetched once from PyPI, checked by sha256, and only those
   files are unpacked.
3. Quantize with `llama_cpp.llama_model_quantize` (no separate binary).
4. Validate before publishing, through the app's own backend with thinking off: the GGUF
   loads; its EOS is the end-of-turn token; the app sends a fixed conversation as the same
   ids the training template renders; golden prompts get an answer that ends its turn
   before `max_tokens` and leaks no special token. A failure publishes nothing.
5. Publish the GGUF and a manifest (base, data hash, config, converter, quant, sha256) by
   rename (from another file system, such as the Modal container's own disk, by a copy under
   a temporary name and a rename), so `models/` never holds half a file.

`adapter_export.py` publishes a role as a LoRA adapter GGUF beside one base GGUF instead;
it shares the converter, the base as training changed it, validation and publishing here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError, WorkshopError
from poetry_workshop.files import copy_atomic, sha256_of
from poetry_workshop.pipeline.training.base_model import (
    load_template_rows,
    quiet_transformers,
    resolve_base,
    seat_template_tokens,
)

CONVERTER_MEMBERS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/")
# Real tokenizers and chat templates of the families a user trains on, from the same pinned
# archive: the family tests build tiny models on them, and they are small (about 15 MB).
REFERENCE_MEMBERS = ("models/ggml-vocab-llama-bpe.gguf", "models/ggml-vocab-qwen2.gguf",
                     "models/ggml-vocab-llama-spm.gguf", "models/templates/")
GOLDEN = ["Workshop this draft. Its lines are numbered for reference:\n\n 1  the kettle clicks off\n 2  and the house goes on\n\nWrite your critique.",
          "Brief:\nForm: free verse\nLength: 6-8 lines\nSpeaker: a night-shift baker, first person\nAnchor: the first tray "
          "at 4 a.m.\nRegister: plain\nConstraint: no rhyme\nAvoid: we/us/our\n\nWrite the poem. Output only the poem."]


class ExportError(WorkshopError):
    """The chain failed; nothing was published."""


@dataclass
class ExportResult:
    gguf: Path
    manifest: Path
    validation: dict


# ------------------------------------------------------------------------ converter


def converter_dir(version: str) -> Path:
    """Beside the models, like the starter model: set-up places it, export finds it."""
    return locations.models_dir() / ".converter" / f"llama-cpp-python-{version}"


def fetch_converter(version: str, sha256: str, log=lambda message: None) -> Path:
    """The pinned converter, unpacked once into the user folder; returns its folder."""
    target = converter_dir(version)
    # A folder unpacked by an older release of this module lacks the later members: fetch again.
    if all((target / m).is_file() for m in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", REFERENCE_MEMBERS[0])):
        return target
    log(f"fetching llama.cpp's converter from the llama-cpp-python {version} source distribution")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"llama-cpp-python=={version}", "-d", tmp, "--quiet", "--disable-pip-version-check"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise ExportError(f"could not download llama-cpp-python {version} for its converter "
                              f"({(done.stderr or '').strip().splitlines()[-1:] or 'no archive'}); check the network")
        archive = archives[0]
        got = sha256_of(archive)
        if sha256 and got != sha256:
            raise ExportError(f"{archive.name}: sha256 {got} is not the pinned {sha256} "
                              "(export.converter_sha256); refusing to run it")
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        work = Path(tempfile.mkdtemp(prefix=".converter.", dir=_mkdir(target.parent)))
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = member.name[len(prefix):] if member.name.startswith(prefix) else None
                wanted = CONVERTER_MEMBERS + REFERENCE_MEMBERS
                if name and any(name == m or (m.endswith("/") and name.startswith(m)) for m in wanted) and member.isfile():
                    member.name = name
                    tar.extract(member, work, filter="data")
        if not (work / "convert_hf_to_gguf.py").is_file():
            shutil.rmtree(work, ignore_errors=True)
            raise ExportError(f"{archive.name} holds no convert_hf_to_gguf.py under {prefix}")
        if target.is_dir():  # unpacked by an older release without some of the members
            shutil.rmtree(target)
        os.replace(work, target)
    return target


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------------ the steps


def trained_base(base_name: str, adapter: Path, dtype, log=lambda message: None):
    """The base as training left it, without the LoRA: the tokenizer training saved (its pad
    token), the embeddings resized for an added pad token, a given template's tokens seated
    and their trained rows put back. Returns (model, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"{adapter}: no trained adapter here; run `workshop train` first")
    quiet_transformers()
    base = resolve_base(base_name, log)
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))  # carries the pad token training chose
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:  # training added a pad token
        model.resize_token_embeddings(len(tokenizer))
    trained = json.loads((adapter / "workshop_training.json").read_text(encoding="utf-8")) \
        if (adapter / "workshop_training.json").is_file() else {}
    if trained.get("seated_tokens"):  # as training did, for a base it gave a template
        seat_template_tokens(model, tokenizer, trained["seated_tokens"])
    load_template_rows(model, adapter)  # the template's rows as training left them
    return model, tokenizer


def end_turns_with_eos(model, tokenizer) -> dict:
    """Make the template's end-of-turn token the EOS (tokenizer, config, generation config),
    so llama.cpp stops where a trained turn ends."""
    from poetry_workshop.pipeline.training.chat_examples import end_of_turn_id

    eot = end_of_turn_id(tokenizer)
    eot_text = tokenizer.convert_ids_to_tokens(eot)
    tokenizer.eos_token = eot_text
    model.config.eos_token_id = eot
    if model.generation_config is not None:
        model.generation_config.eos_token_id = eot
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return {"end_of_turn_id": eot, "end_of_turn": eot_text}


def merge(base_name: str, adapter: Path, out: Path, log=lambda message: None) -> dict:
    """The merged model in bf16 (device.py), EOS set to the end-of-turn token."""
    import torch
    from peft import PeftModel

    from poetry_workshop.pipeline.training.device import merge_dtype

    dtype = getattr(torch, merge_dtype())  # bf16 (fp16 where unsupported): half of fp32's memory
    model, tokenizer = trained_base(base_name, adapter, dtype, log)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    info = end_turns_with_eos(merged, tokenizer)
    merged.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return info


def convert(converter: Path, merged: Path, out: Path) -> None:
    run_converter(converter, "convert_hf_to_gguf.py", [str(merged), "--outfile", str(out), "--outtype", "f16"],
                  merged, out)


def run_converter(converter: Path, script: str, args: list[str], source: Path, out: Path) -> None:
    """One of llama.cpp's pinned converter scripts, with its own gguf-py and conversion package."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(converter / "gguf-py"), str(converter)]))
    done = subprocess.run([sys.executable, str(converter / script), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0 or not out.is_file():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ExportError(f"llama.cpp's converter failed on {source} ({script}): {tail}; nothing was published")


def quantize(source: Path, out: Path, kind: str, requantize: bool = False) -> None:
    """`requantize`: `source` is itself quantized (llama.cpp refuses that unless asked, as
    it loses precision twice; the tests make other types of the starter this way)."""
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}", None)
    if ftype is None:
        raise ConfigError(f"export.quantization '{kind}' is not a llama.cpp type (e.g. Q4_K_M, Q5_K_M, Q8_0)")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = requantize
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):  # a line per tensor on stdout otherwise
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    if status != 0 or not out.is_file():
        raise ExportError(f"quantizing {source.name} to {kind} failed")


def validate(gguf: Path, merged: Path, eot_id: int, system: str, sampling, max_tokens: int = 450,
             adapter: Path | None = None) -> dict:
    """The checks a GGUF must pass before the app may use it, run through the app's own
    backend (its template rendering, stop tokens and reasoning filter) with thinking off, as
    the model was trained; `system` and `sampling` are the role's own. `merged` is a folder
    with the tokenizer as exported; `adapter`, a LoRA adapter GGUF applied to `gguf` the way
    the app applies it to a role's base."""
    from transformers import AutoTokenizer

    from poetry_workshop.config.schema import Runtime
    from poetry_workshop.inference.gguf_file import read_gguf, require_chat_template
    from poetry_workshop.inference.inference_thread import InferenceThread
    from poetry_workshop.inference.llama_backend import LlamaBackend
    from poetry_workshop.pipeline.training.chat_examples import conversation_ids

    info = read_gguf(gguf)
    require_chat_template(info)
    problems = []
    eos = info.metadata.get("tokenizer.ggml.eos_token_id")
    if eos != eot_id:
        problems.append(f"EOS is token {eos}, not the end-of-turn token {eot_id}")
    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    conversation = [{"role": "system", "content": "You are the Educator."},
                    {"role": "user", "content": "What is a volta?"},
                    {"role": "assistant", "content": "The turn in a sonnet."},
                    {"role": "user", "content": "And in free verse?"}]
    thread = InferenceThread()
    backend = LlamaBackend(gguf, Runtime(n_ctx=2048, seed=7), thread, thinking=False, adapter=adapter)
    try:
        # What the app sends for a conversation, against what training rendered for it.
        gguf_ids = backend.prompt_tokens(conversation)
        train_ids = conversation_ids(tokenizer, conversation, generation_prompt=True)
        golden = _golden_runs(backend, system, sampling, max_tokens)
    finally:
        backend.close()
        thread.close()
    if gguf_ids != train_ids:
        problems.append("its chat template renders a fixed conversation to different tokens than training did")
    specials = [t for t in tokenizer.all_special_tokens if t]
    for runs in golden:
        texts = [r.pop("text") for r in runs]  # the manifest keeps the figures, not the words
        leaked = sorted({t for text in texts for t in specials if t in text})
        if leaked:
            problems.append(f"a golden prompt leaked special tokens {leaked}")
        if not any(r["finish_reason"] == "stop" and r["answered"] for r in runs):
            problems.append(f"a golden prompt did not end its turn with an answer within max_tokens ({max_tokens}) "
                            f"in {len(runs)} samples")
    result = {"eos_token_id": eos, "end_of_turn_id": eot_id, "template_matches": gguf_ids == train_ids,
              "golden": golden, "problems": problems}
    if problems:
        tested = f"{gguf.name} with {adapter.name}" if adapter else gguf.name
        raise ExportError(f"{tested} failed validation, nothing published: " + "; ".join(problems))
    return result


def _golden_runs(backend, system: str, sampling, max_tokens: int) -> list[list[dict]]:
    """Each golden prompt with the role's sampling. A broken EOS never stops; a small model
    sometimes rambles past the limit. So each prompt gets up to three seeded samples and
    passes when one ends its turn with an answer."""
    golden = []
    for prompt in GOLDEN:
        runs = []
        for offset in range(3):
            reply = backend.generate([{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                                     max_tokens, sampling, seed_offset=offset)
            answered = bool(reply.text.strip())
            runs.append({"seed": 7 + offset, "finish_reason": reply.stats.finish_reason,
                         "tokens": reply.stats.generated_tokens, "answered": answered, "text": reply.text})
            if reply.stats.finish_reason == "stop" and answered:
                break
        golden.append(runs)
    return golden


def published_is_current(role: str, settings) -> Path | None:
    """The published GGUF when it was exported from the adapter there now, else None."""
    from poetry_workshop.pipeline.training.trainer import checkpoints_dir

    ex = settings.export.export
    gguf = locations.resolve_project_path(ex.output_dir) / f"{role}.{ex.quantization}.gguf"
    try:
        manifest = json.loads(gguf.with_name(gguf.name + ".json").read_text(encoding="utf-8"))
        trained = json.loads((checkpoints_dir(role) / "adapter" / "workshop_training.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = (manifest.get("data_hash") == trained.get("data_hash") and manifest.get("base_model") == trained.get("base_model")
            and (manifest.get("training") or {}).get("steps") == trained.get("steps"))
    return gguf if same and gguf.is_file() else None


def publish(source: Path, target: Path) -> None:
    """Into place by rename; from another file system (Modal's local disk to a volume) by a
    copy under a temporary name beside the target, then a rename."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy_atomic(source, target)


def export(role: str, settings, log=lambda message: None, work_root: Path | None = None,
           memory_limit=None) -> ExportResult:
    """The whole chain for one role; publishes into export.output_dir only if it validates.
    The merged model and the f16 GGUF are written in a folder under `work_root` (by default
    the output folder itself); `memory_limit` (a memory_plan.MemoryLimit) replaces this
    machine's RAM in the memory plan."""
    from poetry_workshop.pipeline.training.device import merge_dtype
    from poetry_workshop.pipeline.training.memory_plan import check_export
    from poetry_workshop.pipeline.training.trainer import checkpoints_dir, data_hash

    config = settings.educator_training if role == "educator" else settings.poet_training
    ex = settings.export.export
    adapter = checkpoints_dir(role) / "adapter"
    trained = json.loads((adapter / "workshop_training.json").read_text(encoding="utf-8")) \
        if (adapter / "workshop_training.json").is_file() else {}
    out_dir = _mkdir(locations.resolve_project_path(ex.output_dir))
    name = f"{role}.{ex.quantization}.gguf"
    base_name = trained.get("base_model", config.training.base_model)
    if (adapter / "adapter_config.json").is_file():  # without one, merge says to train first
        check_export(base_name, adapter, ex.quantization, settings.export.modal, merge_dtype(), log, memory_limit)
    with tempfile.TemporaryDirectory(prefix=f".export-{role}.", dir=_mkdir(work_root or out_dir)) as tmp:
        work = Path(tmp)
        log("merging the adapter into the base")
        merged_info = merge(base_name, adapter, work / "merged", log)
        converter = fetch_converter(ex.converter_version, ex.converter_sha256, log)
        log("converting to GGUF (f16)")
        convert(converter, work / "merged", work / "model.f16.gguf")
        log(f"quantizing to {ex.quantization}")
        quantize(work / "model.f16.gguf", work / name, ex.quantization)
        log("validating")
        from poetry_workshop.workshop.persona import load_persona

        persona = load_persona()
        system = persona.educator_system if role == "educator" else persona.poet_system
        sampling = getattr(settings.inference.sampling, role)
        report = validate(work / name, work / "merged", merged_info["end_of_turn_id"], system, sampling,
                          max_tokens=getattr(settings.inference.max_tokens, "critique" if role == "educator" else "draft"))
        manifest = {
            "role": role, "file": name, "sha256": sha256_of(work / name),
            "base_model": trained.get("base_model", config.training.base_model),
            "data_hash": trained.get("data_hash") or data_hash(locations.resolve_data_path(config.data.train),
                                                               locations.resolve_data_path(config.data.valid)),
            # The epochs trained, not the config's: `first-test --epochs` and `--num-epochs-override` change them.
            "training": {"run": {**asdict(config.training), "num_epochs": trained.get("epochs", config.training.num_epochs)},
                         "lora": asdict(config.lora), "steps": trained.get("steps")},
            "converter": f"llama-cpp-python {ex.converter_version} convert_hf_to_gguf.py",
            "quantization": ex.quantization, "validation": report,
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (work / f"{name}.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        publish(work / name, out_dir / name)  # the model first: a manifest never names a missing file
        publish(work / f"{name}.json", out_dir / f"{name}.json")
    return ExportResult(out_dir / name, out_dir / f"{name}.json", report)
