"""The memory plan: before a heavy step loads a weight, estimate its peak memory from the
base's config and refuse in one line when it cannot fit.

This module owns reading a base's shape without its weights (a local folder's config.json,
a local GGUF's metadata, or config.json from the Hugging Face hub, nested `text_config`
included), counting its parameters, the estimates for each heavy step, the memory that step
may use (this machine's RAM, a CUDA GPU's free memory, Apple's unified RAM, or a Modal
function's configured memory) and the refusal that names the way out.

The estimates, each part a line of the plan:
- train: the weights in the training dtype (device.py), or on CUDA with
  `quantization.load_in_4bit` NF4 with double quantization for the linear layers (about
  4.13 bits a parameter) while the embeddings and lm_head stay in bf16, as bitsandbytes
  leaves them; the LoRA weights with their gradients and AdamW's two moments (16 bytes a
  parameter in fp32; 8 under QLoRA, where trl casts the adapter to bf16); the activations
  the backward pass keeps (seq × batch × layers × hidden × ACTIVATION_VALUES values of the
  training dtype; with gradient checkpointing, one value a layer plus one layer in full);
  the logits (seq × batch × vocab × 4 bytes, LOGIT_COPIES times); RUNTIME. `seq` is
  max_seq, or less when the training set's longest example is shorter: a batch is padded
  to its longest example, never to max_seq. That length is bounded from the characters
  (CHARS_PER_TOKEN, TEMPLATE_TOKENS), as no tokenizer is loaded yet.
- merge (on the CPU): the base in the merge dtype, the LoRA weights in fp32, the largest
  tensor once more while it is merged and cast, RUNTIME. Saving adds no copy of the model:
  safetensors 0.8 writes from the tensors' own memory (earlier releases copied each shard
  to bytes; pyproject.toml asks for 0.8).
- export: llama.cpp's converter reads lazily and quantize goes tensor by tensor, so their
  peak is the largest tensor in fp32 twice; validation then loads the quantized model with
  a 1024-token KV cache.
- dequantize (a GGUF base, the first time): transformers' fp32 copy and the plain fp32
  model it is copied into (base_model.py), both in memory at once.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.training.base_model import is_local_gguf
from poetry_workshop.pipeline.training.device import BYTES_PER_VALUE, Probes, TrainingDevice, choose_training_device

GIB = 2**30
# Values a layer keeps per token and hidden unit for the backward pass. Counting a Llama layer
# with LoRA (and its dropout) on all seven projections gives 34, as Korthikanti et al. (2022)
# find for a GPT layer; measured, it is more: SmolLM2-135M in fp32 on this project's 2-core
# reference machine, LoRA r=4, batch 2 x 751 tokens peaked at 7.2 GiB of RSS, 5.8 GiB above
# the same run on 2 x 55 tokens, which 48 values and LOGIT_COPIES reproduce (attention and
# allocator slack included).
ACTIVATION_VALUES = 48
# Fewer characters a token than any tokenizer here averages on English (Llama 3, SmolLM2
# and Qwen run near 4), so the bound on an example's length errs long; plus the chat
# template's tokens around each message.
CHARS_PER_TOKEN = 3
TEMPLATE_TOKENS = 8
LOGIT_COPIES = 4  # the fp32 logits, the cross-entropy's log-softmax, and the gradients of both
NF4_BYTES = 4.127 / 8  # 4-bit values, an 8-bit scale per 64, an fp32 scale per 256 scales
RUNTIME = 1 * GIB  # Python, torch and the libraries, the CUDA context, allocator slack
VALIDATION_CONTEXT = 1024  # gguf_export.validate's n_ctx
# Bits per weight of llama.cpp's quantization types (its own `llama-quantize --help` table).
QUANT_BITS = {"Q4_0": 4.55, "Q4_1": 5.0, "Q5_0": 5.5, "Q5_1": 6.0, "Q8_0": 8.5, "Q2_K": 3.0, "Q3_K_S": 3.5,
              "Q3_K_M": 3.9, "Q3_K_L": 4.3, "Q4_K_S": 4.6, "Q4_K_M": 4.9, "Q5_K_S": 5.5, "Q5_K_M": 5.7,
              "Q6_K": 6.6, "F16": 16.0, "BF16": 16.0}
# Memory of one GPU of each kind Modal offers, as torch reports it (GiB, a little under the
# marketed figure).
MODAL_GPU_GIB = {"T4": 15, "L4": 22, "A10": 22, "A10G": 22, "L40S": 44, "A100": 39, "A100-40GB": 39,
                 "A100-80GB": 79, "H100": 79, "H100!": 79, "H200": 139, "B200": 178}
# Architectures whose MLP is two matrices; every other family here gates it (three).
UNGATED_MLP = {"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "starcoder2", "gpt_bigcode"}


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


# ------------------------------------------------------------------------ the base's shape


@dataclass(frozen=True)
class ModelShape:
    """What the estimates need of a decoder-only transformer."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    gated_mlp: bool = True
    experts: int = 1
    vision_parameters: int = 0  # a multimodal checkpoint's vision tower, loaded with it

    @classmethod
    def from_config(cls, config: dict) -> ModelShape:
        """From a config.json as JSON; a multimodal one's text model is in `text_config`."""
        text = {**config, **config["text_config"]} if isinstance(config.get("text_config"), dict) else config

        def first(*keys, default=None):
            for key in keys:
                if isinstance(text.get(key), int) and not isinstance(text.get(key), bool):
                    return text[key]
            return default

        hidden = first("hidden_size", "n_embd", "d_model")
        layers = first("num_hidden_layers", "n_layer", "num_layers")
        heads = first("num_attention_heads", "n_head")
        vocab = first("vocab_size")
        if not (hidden and layers and heads and vocab):
            raise ValueError("no hidden_size, num_hidden_layers, num_attention_heads or vocab_size in it")
        experts = first("num_local_experts", "num_experts", "n_routed_experts", default=1)
        intermediate = (first("moe_intermediate_size") if experts > 1 else None) or \
            first("intermediate_size", "ffn_dim", "n_inner", default=4 * hidden)
        vision = config.get("vision_config") if isinstance(config.get("vision_config"), dict) else None
        vision_parameters = 0
        if vision and vision.get("hidden_size") and vision.get("num_hidden_layers"):
            vh, vi = vision["hidden_size"], vision.get("intermediate_size", 4 * vision["hidden_size"])
            vision_parameters = vision["num_hidden_layers"] * (4 * vh * vh + 2 * vh * vi)
        # transformers' own default is tied, but most families' config classes set it; a
        # config without the key is counted untied, the larger figure.
        tied = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
        return cls(hidden=hidden, layers=layers, intermediate=intermediate, heads=heads,
                   kv_heads=first("num_key_value_heads", "num_kv_heads", default=heads),
                   head_dim=first("head_dim", default=hidden // heads), vocab=vocab, tied=tied,
                   gated_mlp=str(text.get("model_type", "")) not in UNGATED_MLP, experts=experts,
                   vision_parameters=vision_parameters)

    def _projections(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one block, by the names peft targets."""
        q, kv, h, i = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def _is_mlp(self, name: str) -> bool:
        return name in ("gate_proj", "up_proj", "down_proj")

    @property
    def linear_parameters(self) -> int:
        """The blocks' linear layers: what 4-bit loading quantizes."""
        per_block = 0
        for name, (n_in, n_out) in self._projections().items():
            if name == "gate_proj" and not self.gated_mlp:
                continue
            per_block += n_in * n_out * (self.experts if self._is_mlp(name) else 1)
        router = self.hidden * self.experts if self.experts > 1 else 0
        return self.layers * (per_block + router)

    @property
    def parameters(self) -> int:
        embeddings = self.vocab * self.hidden
        norms = self.layers * 2 * self.hidden + self.hidden
        return (self.linear_parameters + embeddings + (0 if self.tied else embeddings) + norms
                + self.vision_parameters)

    @property
    def largest_tensor(self) -> int:
        return max([self.vocab * self.hidden, *(a * b for a, b in self._projections().values())])

    def lora_parameters(self, r: int, targets) -> int:
        """A and B of every targeted projection (names the shape does not know add nothing)."""
        projections = self._projections()
        per_block = sum(r * sum(projections[t]) * (self.experts if self._is_mlp(t) else 1)
                        for t in targets if t in projections)
        return self.layers * per_block


def _gguf_config(path: Path) -> dict:
    """The config.json fields a GGUF's metadata holds. Whether lm_head is tied is not among
    them (only the tensor list says), so it is counted untied: the larger figure."""
    from poetry_workshop.inference.gguf_file import read_gguf

    info = read_gguf(path)
    meta, arch = info.metadata, info.architecture

    def value(key):
        found = meta.get(f"{arch}.{key}")
        return found if isinstance(found, int) else None

    vocab = value("vocab_size")
    if vocab is None:  # the token list is skipped by read_gguf, which leaves its length
        match = re.search(r"\d+", str(meta.get("tokenizer.ggml.tokens", "")))
        vocab = int(match.group()) if match else None
    return {"model_type": arch, "hidden_size": value("embedding_length"), "num_hidden_layers": value("block_count"),
            "intermediate_size": value("feed_forward_length"), "num_attention_heads": value("attention.head_count"),
            "num_key_value_heads": value("attention.head_count_kv"), "head_dim": value("attention.key_length"),
            "num_experts": value("expert_count"), "vocab_size": vocab, "tie_word_embeddings": False}


def read_base_config(name: str) -> dict | None:
    """The base's config as JSON, from wherever `from_pretrained` would load it; None when a
    local base is missing (loading it says so, with the fix)."""
    if is_local_gguf(name):
        path = locations.resolve_project_path(name)
        return _gguf_config(path) if path.is_file() else None
    for folder in (Path(name).expanduser(), locations.resolve_project_path(name)):
        if folder.is_dir():
            config = folder / "config.json"
            return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(name, "config.json")).read_text(encoding="utf-8"))
    except Exception as exc:  # huggingface_hub raises a different kind for each way a fetch fails
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"base model '{name}': its config.json could not be fetched ({cause}); check the name on "
                          "the Hugging Face hub, the network and HF_TOKEN for gated models, or use a local GGUF")


def with_defaults(config: dict) -> dict:
    """A config.json completed by transformers' config class for its model_type: some leave
    out every value equal to the class default (Gemma 3's text_config has no head counts or
    vocab_size). Only when needed: importing transformers takes seconds."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return CONFIG_MAPPING[config["model_type"]](**{k: v for k, v in config.items() if k != "model_type"}).to_dict()


def base_shape(name: str, log=lambda message: None) -> ModelShape | None:
    """The shape, or None (with a line in the log) when the base's config cannot say."""
    config = read_base_config(name)
    if config is None:
        return None
    try:
        return ModelShape.from_config(config)
    except (ValueError, TypeError) as exc:
        problem = exc
    try:
        return ModelShape.from_config(with_defaults(config))
    except Exception as exc:  # an unknown model_type, or a config its own class refuses
        log(f"no memory plan for {name}: its config is not one this plan reads ({problem}; {type(exc).__name__})")
        return None


# ------------------------------------------------------------------------ what may be used


@dataclass(frozen=True)
class MemoryLimit:
    bytes: int
    where: str  # e.g. "this machine's RAM", "free memory of the GPU (NVIDIA H100)"


def machine_ram() -> MemoryLimit:
    return MemoryLimit(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine's RAM")


def device_memory(device: TrainingDevice) -> MemoryLimit:
    """What training on `device` may use: a CUDA GPU's free memory, or the RAM (on a Mac the
    unified RAM the Apple GPU shares)."""
    if device.kind == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return MemoryLimit(free, f"free memory of the GPU ({device.name or 'CUDA'})")
    ram = machine_ram()
    return MemoryLimit(ram.bytes, "unified RAM shared with the Apple GPU") if device.kind == "mps" else ram


def modal_gpu_memory(gpu: str) -> MemoryLimit | None:
    """One GPU of the kind named in [modal] gpu ("H100", "A100-80GB", "L40S:2" counts one)."""
    kind = gpu.split(":")[0].strip().upper()
    found = MODAL_GPU_GIB.get(kind)
    return MemoryLimit(found * GIB, f"Modal's {kind}") if found else None


def modal_export_memory(modal) -> MemoryLimit:
    return MemoryLimit(modal.export_memory_mib * 2**20, "the Modal export function's memory")


def on_modal() -> bool:
    """Inside a Modal container (Modal sets this for its functions, modal/config.py)."""
    return os.environ.get("MODAL_IS_REMOTE") == "1"


# ------------------------------------------------------------------------ the plans


@dataclass(frozen=True)
class MemoryPlan:
    """One step's estimated peak, part by part, against what it may use."""

    step: str  # "train", "merge", "export" or "dequantize"
    base: str
    parameters: int
    on: str  # the device and dtype, e.g. "cpu, float32"
    parts: tuple[tuple[str, int], ...]
    limit: MemoryLimit

    @property
    def needed(self) -> int:
        return sum(size for _, size in self.parts)

    @property
    def fits(self) -> bool:
        return self.needed <= self.limit.bytes

    def part(self, name: str) -> int:
        return sum(size for label, size in self.parts if label.split(" (")[0] == name)

    def _parts(self) -> str:
        return ", ".join(f"{label} {size / GIB:.1f}" for label, size in self.parts)

    def summary(self) -> str:
        """The line logged before the step."""
        return (f"memory plan for {self.step}: about {gib(self.needed)} of {gib(self.limit.bytes)} ({self.limit.where}); "
                f"{self.base}, {count(self.parameters)} parameters, on {self.on}: {self._parts()} GiB")

    __str__ = summary

    def refusal(self, way_out: str) -> str:
        verb = {"train": "training", "merge": "merging the adapter into", "export": "converting and quantizing",
                "dequantize": "making a trainable copy of"}[self.step]
        return (f"{verb} {self.base} ({count(self.parameters)} parameters) on {self.on} needs about {gib(self.needed)} "
                f"({self._parts()} GiB), more than the {gib(self.limit.bytes)} of {self.limit.where}; {way_out}")


def longest_example(conversations) -> int:
    """An upper bound on the tokens of the longest conversation, from its characters."""
    return max((sum(len(str(m.get("content") or "")) // CHARS_PER_TOKEN + TEMPLATE_TOKENS for m in messages)
                for messages in conversations), default=0)


def plan_training(shape: ModelShape, base: str, run, lora, device: TrainingDevice, four_bit: bool,
                  limit: MemoryLimit, longest: int | None = None) -> MemoryPlan:
    """`run` and `lora`: the training config's [training] and [lora]; `longest`: a bound on
    the longest example's tokens (longest_example), when the training set is known."""
    width = BYTES_PER_VALUE[device.dtype]
    if four_bit:
        unquantized = shape.parameters - shape.linear_parameters
        weights = ("weights (NF4)", int(shape.linear_parameters * NF4_BYTES + unquantized * width))
    else:
        weights = ("weights", shape.parameters * width)
    lora_bytes = 8 if four_bit else 16
    seq = min(run.max_seq, longest) if longest else run.max_seq
    tokens = seq * run.batch_size
    kept = shape.layers + ACTIVATION_VALUES if device.gradient_checkpointing else shape.layers * ACTIVATION_VALUES
    parts = (weights,
             ("LoRA and AdamW", shape.lora_parameters(lora.r, lora.target_modules) * lora_bytes),
             (f"activations ({seq} tokens x {run.batch_size})", tokens * shape.hidden * kept * width),
             ("logits", tokens * shape.vocab * 4 * LOGIT_COPIES),
             ("runtime", RUNTIME))
    on = device.describe() + (", 4-bit base" if four_bit else "")
    return MemoryPlan("train", base, shape.parameters, on, parts, limit)


def plan_merge(shape: ModelShape, base: str, lora, dtype: str, limit: MemoryLimit) -> MemoryPlan:
    width = BYTES_PER_VALUE[dtype]
    parts = ((f"base ({dtype})", shape.parameters * width),
             ("LoRA", shape.lora_parameters(lora.r, lora.target_modules) * 4),
             ("largest tensor", shape.largest_tensor * width),
             ("runtime", RUNTIME))
    return MemoryPlan("merge", base, shape.parameters, f"cpu, {dtype}", parts, limit)


def plan_export(shape: ModelShape, base: str, quantization: str, limit: MemoryLimit) -> MemoryPlan:
    bits = QUANT_BITS.get(quantization.upper(), 8.5)
    kv_cache = VALIDATION_CONTEXT * shape.layers * 2 * shape.kv_heads * shape.head_dim * 2  # f16 keys and values
    parts = ((f"{quantization} model", int(shape.parameters * bits / 8)),
             ("KV cache", kv_cache),
             ("conversion buffers", shape.largest_tensor * 4 * 2),
             ("runtime", RUNTIME))
    return MemoryPlan("export", base, shape.parameters, f"cpu, {quantization}", parts, limit)


def plan_dequantize(shape: ModelShape, base: str, limit: MemoryLimit) -> MemoryPlan:
    return MemoryPlan("dequantize", base, shape.parameters, "cpu, float32",
                      (("two fp32 copies", shape.parameters * 4 * 2), ("runtime", RUNTIME)), limit)


# ------------------------------------------------------------------------ the checks


def _enforce(plan: MemoryPlan, way_out: str, log) -> MemoryPlan:
    if not plan.fits:
        raise ConfigError(plan.refusal(way_out))
    log(plan.summary())
    return plan


def _check_dequantize(shape: ModelShape, base: str) -> None:
    """A GGUF base is made trainable once (base_model.py); quiet when that fits, as it is
    usually done already."""
    if is_local_gguf(base):
        _enforce(plan_dequantize(shape, base, machine_ram()), "use a smaller GGUF or the Hugging Face name of the same "
                 "model as training.base_model", log=lambda message: None)


def modal_training_device(modal) -> TrainingDevice:
    """What a Modal training function trains on: its configured GPU, bf16."""
    return choose_training_device(Probes(cuda=True, cuda_bf16=True, gpu_name=modal.gpu))


def _training_way_out(plan: MemoryPlan, shape: ModelShape, config, modal, device: TrainingDevice,
                      four_bit: bool, longest: int | None) -> str:
    run, lora = config.training, config.lora
    ways = []
    if device.kind == "cuda" and not four_bit:
        cut = plan_training(shape, plan.base, run, lora, device, True, plan.limit, longest)
        ways.append(f"set quantization.load_in_4bit = true (about {gib(cut.needed)})")
    if plan.needed - plan.part("activations") - plan.part("logits") <= plan.limit.bytes:
        ways.append(f"use a smaller training.batch_size (a larger gradient_accumulation keeps the effective batch) "
                    f"or training.max_seq ({run.max_seq})")
        return _either(ways)
    if on_modal():
        ways.append("choose a GPU with more memory in [modal] gpu of config/export_pipeline.toml (e.g. H200)")
    else:
        gpu = modal_gpu_memory(modal.gpu)
        on_gpu = plan_training(shape, plan.base, run, lora, modal_training_device(modal),
                               config.quantization.load_in_4bit, gpu or plan.limit, longest)
        size = f"about {gib(on_gpu.needed)}" + (f" of its {gib(gpu.bytes)}" if gpu else "")
        ways.append(f"train with `--backend modal` ({'4-bit ' if config.quantization.load_in_4bit else ''}on "
                    f"{modal.gpu}: {size})")
    ways.append("choose a smaller base (training.base_model)")
    if device.kind != "cuda":
        ways.append("train on a CUDA GPU with quantization.load_in_4bit")
    return _either(ways)


def _either(ways: list[str]) -> str:
    return ways[0] if len(ways) == 1 else ", ".join(ways[:-1]) + ", or " + ways[-1]


def check_training(config, modal, device: TrainingDevice, log=lambda message: None,
                   limit: MemoryLimit | None = None, examples=None) -> MemoryPlan | None:
    """Refuse (ConfigError, one line) a run that cannot fit `device`; log the plan when it
    can. `config` is the role's training config, `modal` the [modal] settings, `examples`
    the conversations it trains and validates on (without them, every batch counts at
    max_seq). Reads only the base's config: no weight is loaded."""
    base = config.training.base_model
    shape = base_shape(base, log)
    if shape is None:
        return None
    _check_dequantize(shape, base)
    four_bit = bool(config.quantization.load_in_4bit) and device.can_load_4bit
    longest = longest_example(examples) if examples else None
    plan = plan_training(shape, base, config.training, config.lora, device, four_bit,
                         limit or device_memory(device), longest)
    way_out = "" if plan.fits else _training_way_out(plan, shape, config, modal, device, four_bit, longest)
    return _enforce(plan, way_out, log)


@dataclass(frozen=True)
class AdapterShape:
    r: int
    target_modules: tuple[str, ...]

    @classmethod
    def read(cls, adapter: Path) -> AdapterShape:
        """From the adapter_config.json peft saved: the shape it was trained with."""
        saved = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
        targets = saved.get("target_modules") or ()
        return cls(int(saved.get("r") or 0), (targets,) if isinstance(targets, str) else tuple(targets))


def check_export(base: str, adapter: Path, quantization: str, modal, merge_dtype: str, log=lambda message: None,
                 limit: MemoryLimit | None = None) -> list[MemoryPlan]:
    """The merge of the adapter in `adapter` into `base`, and the conversion, against `limit`
    (this machine's RAM unless given: the Modal export function passes its own)."""
    shape = base_shape(base, log)
    if shape is None:
        return []
    lora = AdapterShape.read(adapter)
    limit = limit or machine_ram()
    if on_modal():
        way_out = "raise [modal] export_memory_mib in config/export_pipeline.toml"
    else:
        way_out = (f"export with `--backend modal` (its export function has {gib(modal.export_memory_mib * 2**20)}) "
                   "or on a machine with more memory")
    _check_dequantize(shape, base)
    return [_enforce(plan_merge(shape, base, lora, merge_dtype, limit), way_out, log),
            _enforce(plan_export(shape, base, quantization, limit), way_out, log)]
