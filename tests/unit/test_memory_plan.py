"""The memory plan and the device choice: parameter counts against real models' published
sizes (their real config.json values written here), the estimate of each step, the device and
dtype on every kind of machine as logic (no GPU or Mac is here), and the one-line refusal of
an 8B base on this machine through the real `workshop train`, before any weight loads."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.training import memory_plan as mp
from poetry_workshop.pipeline.training.device import Probes, choose_merge_dtype, choose_training_device
from tests.support.cli import STARTER, run_cli
from tests.support.training import PAIRS, conversation, write_sets

# meta-llama/Llama-3.1-8B-Instruct, config.json as published.
LLAMA_31_8B = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256,
}
# Qwen/Qwen3-0.6B: head_dim 128 is wider than hidden_size / heads (64).
QWEN3_06B = {
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02,
    "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936,
}
# HuggingFaceTB/SmolLM2-135M-Instruct, the starter's model.
SMOLLM2_135M = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 576, "initializer_range": 0.041666666666666664,
    "intermediate_size": 1536, "is_llama_config": True, "max_position_embeddings": 8192, "model_type": "llama",
    "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_interleaved": False, "rope_scaling": None, "rope_theta": 100000,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "transformers_version": "4.42.3", "use_cache": True,
    "vocab_size": 49152,
}
# google/gemma-3-4b-it: a multimodal config whose text_config leaves out every value equal to
# Gemma3TextConfig's defaults (heads, kv heads, head_dim, vocab_size).
GEMMA3_4B = {
    "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
    "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
    "model_type": "gemma3",
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
    "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                      "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 27,
                      "patch_size": 14, "vision_use_head": False},
}
SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CPU = choose_training_device(Probes())
A100 = choose_training_device(Probes(cuda=True, cuda_bf16=True, gpu_name="NVIDIA A100-SXM4-80GB"))


def run(max_seq=1024, batch_size=4):
    return SimpleNamespace(max_seq=max_seq, batch_size=batch_size)


def lora(r=64, targets=SEVEN):
    return SimpleNamespace(r=r, target_modules=targets)


def gib(n):
    return mp.MemoryLimit(int(n * mp.GIB), f"a {n} GiB test machine")


# ------------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize("config, published", [
    (LLAMA_31_8B, 8_030_261_248),  # the safetensors' own total
    (QWEN3_06B, 596_049_920),  # the model card's 0.6B; its q/k norms (7,168) are not counted here
    (SMOLLM2_135M, 134_515_008),
])
def test_parameter_counts_match_the_published_sizes(config, published):
    assert mp.ModelShape.from_config(config).parameters == pytest.approx(published, rel=0.001)


def test_llama_8b_parts_and_its_lora_at_rank_64():
    shape = mp.ModelShape.from_config(LLAMA_31_8B)
    assert shape.parameters == 8_030_261_248
    assert not shape.tied and shape.head_dim == 128 and shape.kv_heads == 8
    # peft prints "trainable params: 167,772,160" for r=64 on all seven projections of Llama 3 8B.
    assert shape.lora_parameters(64, SEVEN) == 167_772_160
    assert shape.lora_parameters(64, ["q_proj", "v_proj"]) == 32 * 64 * ((4096 + 4096) + (4096 + 1024))
    assert shape.largest_tensor == 128256 * 4096


def test_a_multimodal_config_is_read_from_its_text_config_with_the_class_defaults():
    shape = mp.ModelShape.from_config(mp.with_defaults(GEMMA3_4B))
    assert (shape.hidden, shape.layers, shape.heads, shape.kv_heads, shape.head_dim, shape.vocab) == \
        (2560, 34, 8, 4, 256, 262208)
    assert shape.tied and shape.vision_parameters > 0
    assert shape.parameters == pytest.approx(4_300_079_472, rel=0.01)  # gemma-3-4b-it, vision tower included
    with pytest.raises(ValueError, match="num_attention_heads"):
        mp.ModelShape.from_config(GEMMA3_4B)  # the raw JSON alone cannot say


def test_training_an_8b_base_on_this_cpu_needs_far_more_than_24_gib():
    shape = mp.ModelShape.from_config(LLAMA_31_8B)
    plan = mp.plan_training(shape, "llama", run(), lora(), CPU, False, gib(24))
    assert plan.part("weights") == 8_030_261_248 * 4  # fp32 on the CPU
    assert plan.part("LoRA and AdamW") == 167_772_160 * 16
    assert plan.part("activations") == 1024 * 4 * 32 * 4096 * mp.ACTIVATION_VALUES * 4
    assert plan.part("logits") == 1024 * 4 * 128256 * 4 * mp.LOGIT_COPIES
    assert not plan.fits and 130 * mp.GIB < plan.needed < 140 * mp.GIB


def test_qlora_on_an_a100_fits_with_room_and_the_parts_follow_the_device():
    shape = mp.ModelShape.from_config(LLAMA_31_8B)
    four_bit = mp.plan_training(shape, "llama", run(), lora(), A100, True, mp.modal_gpu_memory("A100-80GB"))
    bf16 = mp.plan_training(shape, "llama", run(), lora(), A100, False, mp.modal_gpu_memory("H100"))
    assert four_bit.fits and 10 * mp.GIB < four_bit.needed < 20 * mp.GIB
    assert four_bit.part("weights") < 6 * mp.GIB and bf16.part("weights") == 8_030_261_248 * 2
    # Gradient checkpointing keeps one value a layer plus one layer in full.
    assert four_bit.part("activations") == 1024 * 4 * 4096 * (32 + mp.ACTIVATION_VALUES) * 2
    assert "4-bit base" in four_bit.summary() and "of 79.0 GiB (Modal's A100-80GB)" in four_bit.summary()


def test_merge_is_in_bf16_and_export_loads_the_quantized_model():
    shape = mp.ModelShape.from_config(LLAMA_31_8B)
    merge = mp.plan_merge(shape, "llama", lora(), "bfloat16", gib(24))
    assert merge.part("base") == 8_030_261_248 * 2 and merge.fits
    assert not mp.plan_merge(shape, "llama", lora(), "bfloat16", gib(16)).fits
    export = mp.plan_export(shape, "llama", "Q4_K_M", gib(24))
    assert export.part("Q4_K_M model") == pytest.approx(8_030_261_248 * 4.9 / 8, rel=0.01) and export.fits


# ------------------------------------------------------------------------ reading a base


def test_a_gguf_base_is_read_from_its_metadata_and_the_starter_fits_here():
    shape = mp.base_shape(str(STARTER))
    assert (shape.hidden, shape.layers, shape.intermediate, shape.heads, shape.kv_heads, shape.vocab) == \
        (576, 30, 1536, 9, 3, 49152)
    # lm_head's tying is not in GGUF metadata: counted untied, the larger figure.
    assert shape.parameters == 134_515_008 + 49152 * 576
    settings = load_settings(extra=[("test", {"educator_training": {"training": {"base_model": str(STARTER)}}})])
    lines = []
    plan = mp.check_training(settings.educator_training, settings.export.modal, CPU, lines.append,
                             examples=[conversation(q, a)["messages"] for q, a in PAIRS])
    assert plan.fits and lines == [plan.summary()] and "memory plan for train" in lines[0]
    assert plan.needed < 4 * mp.GIB and "this machine's RAM" in lines[0]


def test_a_batch_is_counted_at_its_longest_example_not_at_max_seq():
    short = [[{"role": "user", "content": "x" * 300}, {"role": "assistant", "content": "y" * 600}]]
    assert mp.longest_example(short) == 300 // 3 + 600 // 3 + 2 * mp.TEMPLATE_TOKENS
    shape = mp.ModelShape.from_config(SMOLLM2_135M)
    at_max = mp.plan_training(shape, "smol", run(4096), lora(), CPU, False, gib(24))
    data = mp.plan_training(shape, "smol", run(4096), lora(), CPU, False, gib(24), mp.longest_example(short))
    assert data.part("activations") * 4096 == at_max.part("activations") * 316
    assert "activations (316 tokens x 4)" in data.summary()
    long = mp.plan_training(shape, "smol", run(1024), lora(), CPU, False, gib(24), 10_000)
    assert "activations (1024 tokens x 4)" in long.summary()  # never past max_seq: longer ones are dropped


def test_a_local_folder_and_a_hub_name_are_read_as_json_without_weights(tmp_path, monkeypatch):
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps(LLAMA_31_8B))
    assert mp.base_shape(str(tmp_path / "llama")).parameters == 8_030_261_248
    fetched = []

    def download(name, filename):
        fetched.append((name, filename))
        path = tmp_path / "hub-config.json"
        path.write_text(json.dumps(QWEN3_06B))
        return str(path)

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    assert mp.base_shape("Qwen/Qwen3-0.6B").head_dim == 128 and fetched == [("Qwen/Qwen3-0.6B", "config.json")]

    def offline(name, filename):
        raise OSError("We have no connection\nand a second line")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(ConfigError) as err:
        mp.base_shape("meta-llama/Llama-3.1-8B-Instruct")
    assert "\n" not in str(err.value) and "'meta-llama/Llama-3.1-8B-Instruct'" in str(err.value)
    assert "We have no connection" in str(err.value) and "HF_TOKEN" in str(err.value)
    assert mp.base_shape(str(tmp_path / "missing.gguf")) is None  # loading it names the fix


# ------------------------------------------------------------------------ refusals


def settings_for(base: str, **training):
    training = {"max_seq": 1024, "batch_size": 4, **training}
    return load_settings(extra=[("test", {"educator_training": {"training": {"base_model": base, **training}}})])


def test_the_refusal_is_one_line_with_the_estimate_the_limit_and_the_way_out(tmp_path):
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps(LLAMA_31_8B))
    settings = settings_for(str(tmp_path / "llama"))
    with pytest.raises(ConfigError) as err:
        mp.check_training(settings.educator_training, settings.export.modal, CPU, limit=gib(24))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"training {tmp_path / 'llama'} (8.03B parameters) on cpu")
    assert "needs about 137.2 GiB" in message and "more than the 24.0 GiB of a 24 GiB test machine" in message
    assert "`--backend modal` (4-bit on A100-80GB: about 17.9 GiB of its 79.0 GiB)" in message
    assert "a smaller base" in message and "quantization.load_in_4bit" in message
    # On a CUDA GPU without 4-bit, the first way out is 4-bit.
    with pytest.raises(ConfigError, match=r"set quantization.load_in_4bit = true \(about 17.9 GiB\), or use a smaller training.batch_size"):
        settings = load_settings(extra=[("t", {"educator_training": {
            "training": {"base_model": str(tmp_path / "llama"), "max_seq": 1024, "batch_size": 4},
            "quantization": {"load_in_4bit": False}}})])
        mp.check_training(settings.educator_training, settings.export.modal, A100, limit=gib(20))


def test_when_only_the_batch_is_too_big_the_way_out_is_a_smaller_batch(tmp_path):
    (tmp_path / "qwen").mkdir()
    (tmp_path / "qwen" / "config.json").write_text(json.dumps(QWEN3_06B))
    settings = settings_for(str(tmp_path / "qwen"), max_seq=4096, batch_size=8)
    with pytest.raises(ConfigError, match=r"; use a smaller training.batch_size \(.*\) or training.max_seq \(4096\)$"):
        mp.check_training(settings.educator_training, settings.export.modal, CPU, limit=gib(24))


def test_export_is_checked_with_the_adapters_own_shape(tmp_path):
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps(LLAMA_31_8B))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16, "target_modules": ["q_proj", "v_proj"]}))
    modal = load_settings().export.modal
    lines = []
    merge, export = mp.check_export(str(tmp_path / "llama"), adapter, "Q4_K_M", modal, "bfloat16", lines.append,
                                    gib(64))
    assert merge.part("LoRA") == 32 * 16 * ((4096 + 4096) + (4096 + 1024)) * 4 and len(lines) == 2
    with pytest.raises(ConfigError) as err:
        mp.check_export(str(tmp_path / "llama"), adapter, "Q4_K_M", modal, "bfloat16", limit=gib(12))
    assert str(err.value).startswith("merging the adapter into") and "\n" not in str(err.value)
    assert "`--backend modal` (its export function has 64.0 GiB)" in str(err.value)


# ------------------------------------------------------------------------ device and dtype


@pytest.mark.parametrize("probes, kind, dtype, flags", [
    (Probes(cuda=True, cuda_bf16=True), "cuda", "bfloat16", {"bf16": True, "fp16": False, "gradient_checkpointing": True}),
    (Probes(cuda=True, cuda_bf16=False), "cuda", "float16", {"bf16": False, "fp16": True, "gradient_checkpointing": True}),
    (Probes(mps=True, mps_bf16=True), "mps", "bfloat16", {"bf16": False, "fp16": False, "gradient_checkpointing": True}),
    (Probes(mps=True, mps_bf16=False), "mps", "float16", {"bf16": False, "fp16": False, "gradient_checkpointing": True}),
    (Probes(), "cpu", "float32", {"bf16": False, "fp16": False, "gradient_checkpointing": False}),
])
def test_the_device_and_dtype_for_each_kind_of_machine(probes, kind, dtype, flags):
    device = choose_training_device(probes)
    assert (device.kind, device.dtype, device.trainer_flags()) == (kind, dtype, flags)
    assert device.use_cpu == (kind == "cpu") and device.can_load_4bit == (kind == "cuda")


def test_the_merge_is_bf16_and_fp16_where_bf16_is_unsupported():
    assert choose_merge_dtype(Probes()) == "bfloat16"
    assert choose_merge_dtype(Probes(cpu_bf16=False)) == "float16"
    assert choose_merge_dtype(Probes(cuda=True, cuda_bf16=True)) == "bfloat16"


def test_the_memory_plan_uses_the_devices_dtype():
    shape = mp.ModelShape.from_config(SMOLLM2_135M)
    mps = choose_training_device(Probes(mps=True, mps_bf16=False))
    plan = mp.plan_training(shape, "smol", run(), lora(), mps, False, gib(16))
    assert plan.part("weights") == 134_515_008 * 2 and "mps (Apple GPU), float16" in plan.summary()


def test_the_trainer_takes_the_mps_settings_without_refusing_them(tmp_path):
    """What a Mac would pass to SFTConfig: not on the CPU, no precision flag (the Trainer
    refuses bf16 on MPS before macOS 14), checkpointing on."""
    from poetry_workshop.pipeline.training.trainer import training_arguments

    mps = choose_training_device(Probes(mps=True, mps_bf16=False))
    args = training_arguments(load_settings().educator_training.training, tmp_path, 1, 1, mps, evaluate=False)
    assert (args.use_cpu, args.bf16, args.fp16, args.gradient_checkpointing) == (False, False, False, True)
    on_cpu = training_arguments(load_settings().educator_training.training, tmp_path, 1, 1, CPU, evaluate=False)
    assert (on_cpu.use_cpu, on_cpu.bf16, on_cpu.fp16, on_cpu.gradient_checkpointing) == (True, False, False, False)


# ------------------------------------------------------------------------ the command


def test_workshop_train_refuses_an_8b_base_here_in_one_line_before_loading_it(tmp_path):
    base = tmp_path / "Llama-3.1-8B-Instruct"
    base.mkdir()
    (base / "config.json").write_text(json.dumps(LLAMA_31_8B))  # no weights: loading any would fail
    write_sets(tmp_path / "data")
    env = {"POETRY_WORKSHOP_DATA": str(tmp_path / "data"), "POETRY_WORKSHOP_HOME": str(tmp_path / "home"),
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BASE_MODEL": f'"{base}"'}
    started = time.perf_counter()
    done = run_cli("train", "educator", env=env, timeout=120)
    seconds = time.perf_counter() - started
    print(f"refused in {seconds:.2f} s: {done.stderr.strip()}")
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "8.03B parameters" in lines[0] and "needs about" in lines[0] and "GiB" in lines[0]
    assert "`--backend modal`" in lines[0] and "this machine's RAM" in lines[0]
    assert not (tmp_path / "data" / "checkpoints").exists()  # refused before the run set up anything
    assert seconds < 15  # under 5 s on an idle 2-core machine; the margin is for a loaded one
