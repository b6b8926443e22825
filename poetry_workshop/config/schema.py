"""The typed shape of every config file, with a line of help on every field.

Each top-level class is one TOML file in config/ (its `FILE` names it); each nested class
is one table in it. Defaults here are what a missing key means; the shipped TOML files
spell the same values out so a person can see and edit them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, is_dataclass


def setting(default, help: str):  # "help" shadows the builtin on purpose: it reads best in the schema
    """A config field with its help text (shown in `--help` texts and in errors)."""
    if isinstance(default, (list, dict)) or is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


# ---------------------------------------------------------------- inference_config.toml


@dataclass
class ModelPaths:
    educator: str = setting("", "GGUF file for the Educator; empty means the starter model")
    poet: str = setting("", "GGUF file for the Poet; empty means the starter model")
    educator_adapter: str = setting("", "LoRA adapter GGUF applied to the Educator's model at load; empty: none")
    poet_adapter: str = setting("", "LoRA adapter GGUF applied to the Poet's model at load; empty: none")
    starter: str = setting(
        "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "where set-up places the starter model (relative to the project folder)",
    )


@dataclass
class Runtime:
    n_ctx: int = setting(4096, "context window in tokens, per role")
    n_threads: int = setting(0, "CPU threads for llama.cpp; 0 means all cores but one (at most 8)")
    n_threads_batch: int = setting(
        0, "CPU threads for a batch (a prompt, a set of lookup candidates); 0 means all cores (at most 8)"
    )
    n_batch: int = setting(512, "prompt tokens evaluated per llama.cpp batch")
    n_gpu_layers: int = setting(-1, "layers offloaded to Metal/CUDA; -1 means all, 0 none")
    seed: int = setting(42, "sampling seed, so a run can be repeated")


@dataclass
class Sampling:
    temperature: float = setting(0.8, "sampling temperature; 0 is greedy")
    top_p: float = setting(0.95, "nucleus sampling threshold")
    top_k: int = setting(40, "sample among the k most likely tokens; 0 disables")
    min_p: float = setting(0.05, "drop tokens below this share of the top token's probability")
    repeat_penalty: float = setting(1.1, "penalty on recently used tokens; 1.0 disables")


@dataclass
class RoleSampling:
    educator: Sampling = setting(
        Sampling(temperature=0.6), "sampling for the Educator (critiques, briefs, answers)"
    )
    poet: Sampling = setting(Sampling(temperature=0.9), "sampling for the Poet (drafts, revisions)")


@dataclass
class RoleThinking:
    educator: bool = setting(False, "let a thinking model (Qwen3, QwQ, DeepSeek-R1) reason before it critiques")
    poet: bool = setting(False, "let a thinking model (Qwen3, QwQ, DeepSeek-R1) reason before it writes")


@dataclass
class PromptLookup:
    educator: bool = setting(True, "prompt-lookup decoding for the Educator: its quotes are checked in batches")
    poet: bool = setting(True, "prompt-lookup decoding for the Poet: what a revision copies is checked in batches")


@dataclass
class MaxTokens:
    brief: int = setting(200, "longest brief the Educator may write")
    draft: int = setting(320, "longest poem the Poet may write")
    critique: int = setting(450, "longest critique the Educator may write")
    answer: int = setting(450, "longest answer to a craft question")


@dataclass
class SessionDefaults:
    rounds: int = setting(2, "critique/revise rounds when --rounds is not given")


@dataclass
class InferenceConfig:
    FILE = "inference_config"
    models: ModelPaths = setting(ModelPaths(), "which GGUF serves which role")
    runtime: Runtime = setting(Runtime(), "llama.cpp settings shared by both roles")
    sampling: RoleSampling = setting(RoleSampling(), "sampling per role")
    thinking: RoleThinking = setting(RoleThinking(), "reasoning before the answer, per role; never shown or stored")
    lookup: PromptLookup = setting(PromptLookup(), "prompt-lookup decoding per role: the same text as plain decoding, sooner")
    max_tokens: MaxTokens = setting(MaxTokens(), "generation length limits per step")
    session: SessionDefaults = setting(SessionDefaults(), "defaults of the workshop loop")


# ------------------------------------------------- educator_training / poet_training.toml


@dataclass
class TrainingRun:
    base_model: str = setting(
        "meta-llama/Llama-3.1-8B-Instruct",
        "Hugging Face causal LM with a chat template, or a local GGUF path",
    )
    num_epochs: int = setting(4, "passes over the training set")
    max_seq: int = setting(1024, "longest example in tokens; longer ones are dropped by prepare")
    learning_rate: float = setting(2e-4, "peak learning rate")
    batch_size: int = setting(4, "examples per device step")
    gradient_accumulation: int = setting(4, "device steps per optimiser step")
    warmup_ratio: float = setting(0.03, "share of steps spent warming up the learning rate")
    checkpoint_steps: int = setting(50, "save a checkpoint every N optimiser steps")
    seed: int = setting(42, "training seed")


@dataclass
class LoraSettings:
    r: int = setting(64, "LoRA rank")
    alpha: int = setting(128, "LoRA alpha")
    dropout: float = setting(0.05, "LoRA dropout")
    target_modules: list[str] = setting(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "module names the adapter attaches to",
    )


@dataclass
class QuantSettings:
    load_in_4bit: bool = setting(True, "QLoRA: load the base in 4 bits on CUDA")
    quant_type: str = setting("nf4", "bitsandbytes 4-bit type")


@dataclass
class TrainingData:
    train: str = setting("", "training set (JSONL of {messages})")
    valid: str = setting("", "validation set (JSONL of {messages})")
    valid_share: float = setting(0.1, "share of source poems whose examples go to the validation set")


@dataclass
class TrainingConfig:
    FILE = "training"  # instantiated as educator_training and poet_training
    training: TrainingRun = setting(TrainingRun(), "the run")
    lora: LoraSettings = setting(LoraSettings(), "the adapter")
    quantization: QuantSettings = setting(QuantSettings(), "4-bit loading on CUDA")
    data: TrainingData = setting(TrainingData(), "where prepare writes the sets")


# ------------------------------------------------------------------ export_pipeline.toml


@dataclass
class ExportSettings:
    quantization: str = setting("Q4_K_M", "llama.cpp quantization type of the published GGUF")
    converter_version: str = setting(
        "0.3.36", "llama-cpp-python release whose convert_hf_to_gguf.py is used"
    )
    converter_sha256: str = setting(
        "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
        "sha256 of that release's source distribution (the converter is checked before it runs)",
    )
    output_dir: str = setting("models", "where exported GGUF files and manifests go")


@dataclass
class ModalSettings:
    gpu: str = setting("A100-80GB", "GPU type for training")
    gpu_fallbacks: list[str] = setting(["H100", "A100-40GB"], "tried in order when gpu is busy")
    timeout_s: int = setting(6 * 3600, "limit for one training attempt")
    retries: int = setting(2, "attempts after a preemption or failure (resume from checkpoint)")
    export_memory_mib: int = setting(65536, "memory of the export function: the merge holds the base in bf16")
    export_cpu: float = setting(8.0, "CPU cores of the export function (merge, convert and quantize run on CPUs)")
    data_volume: str = setting("poetry-data", "volume holding the training sets")
    checkpoint_volume: str = setting("poetry-checkpoints", "volume holding checkpoints")
    gguf_volume: str = setting("poetry-gguf", "volume holding exported GGUF files")
    hf_secret: str = setting("huggingface-secret", "Modal secret with HF_TOKEN")


@dataclass
class ExportPipelineConfig:
    FILE = "export_pipeline"
    export: ExportSettings = setting(ExportSettings(), "GGUF conversion")
    modal: ModalSettings = setting(ModalSettings(), "Modal cloud backend")


# ----------------------------------------------------------------------- generation.toml


@dataclass
class ClaudeSettings:
    model: str = setting("claude-sonnet-5-5", "Claude model that writes the teaching data")
    max_tokens: int = setting(8000, "longest response per call (thinking included), unless [max_tokens] names the task")
    effort: str = setting("", "output_config.effort (low, medium, high, xhigh, max); empty: not sent, the model's default")
    concurrency: int = setting(8, "requests in flight")
    prompt_cache: bool = setting(True, "mark the shared persona prefix for prompt caching (cache reads cost a tenth)")
    temperature: float | None = setting(None, "sent only when set; Sonnet 5 and later refuse non-default values")
    top_p: float | None = setting(None, "sent only when set")
    max_retries: int = setting(4, "retries of a retryable failure before recording it failed")
    timeout_s: float = setting(120.0, "seconds before one request counts as timed out")
    retry_base_s: float = setting(1.0, "first backoff delay; it doubles per retry (retry-after wins)")
    retry_max_s: float = setting(60.0, "longest single backoff delay")


@dataclass
class BatchSettings:
    poll_s: float = setting(30.0, "seconds between polls of a submitted Message Batch")
    max_rounds: int = setting(3, "batches submitted per run: later ones retry errored and expired requests")


@dataclass
class RawPoemSettings:
    max_file_bytes: int = setting(5_000_000, "raw files larger than this are skipped with a warning")
    max_poem_chars: int = setting(8_000, "longer poems are skipped with a warning")
    min_poem_chars: int = setting(20, "shorter texts are skipped with a warning")


@dataclass
class PriceTier:
    above_prompt_tokens: int = setting(0, "applies to a call whose prompt (input, cache write and cache read "
                                          "tokens together) is longer than this")
    input_per_mtok: float = setting(0.0, "dollars per million input tokens")
    output_per_mtok: float = setting(0.0, "dollars per million output tokens")
    cache_write_per_mtok: float = setting(0.0, "dollars per million cache-write tokens")
    cache_read_per_mtok: float = setting(0.0, "dollars per million cache-read tokens")


@dataclass
class Price:
    input_per_mtok: float = setting(0.0, "dollars per million input tokens")
    output_per_mtok: float = setting(0.0, "dollars per million output tokens")
    cache_write_per_mtok: float = setting(0.0, "dollars per million cache-write tokens")
    cache_read_per_mtok: float = setting(0.0, "dollars per million cache-read tokens")
    tiers: list[PriceTier] = setting([], "higher prices for long prompts ([[...tiers]] tables); the whole call "
                                         "is priced at the tier its prompt length reaches")


@dataclass
class PriceTable:
    as_of: str = setting("", "date the prices were read (YYYY-MM-DD)")
    batch_discount: float = setting(0.5, "share of the price the Message Batches API charges")
    models: dict[str, Price] = setting({}, "price per model id")


@dataclass
class JudgeSettings:
    max_tokens: int = setting(8000, "longest verdict per call (thinking included)")
    max_cost: float = setting(2.0, "most dollars one eval's judging may spend; --judge-max-cost overrides")
    expected_output_tokens: int = setting(800, "typical verdict length (thinking included), for the estimate")


@dataclass
class GenerationConfig:
    FILE = "generation"
    claude: ClaudeSettings = setting(ClaudeSettings(), "the Claude client")
    batch: BatchSettings = setting(BatchSettings(), "the Message Batches API (--batch-api)")
    raw: RawPoemSettings = setting(RawPoemSettings(), "reading data/raw/{good,bad}")
    prices: PriceTable = setting(PriceTable(), "dated price table for the cost ledger")
    judge: JudgeSettings = setting(JudgeSettings(), "the Claude judge of `workshop eval --judge`")
    seed: int = setting(1234, "seed of the brief attribute samplers and of poem pairing")
    limits: dict[str, int] = setting({}, "default --limit per task")
    max_tokens: dict[str, int] = setting({}, "max_tokens per task, where it differs from claude.max_tokens")
    expected_output_tokens: dict[str, int] = setting({}, "typical output tokens per task, for --estimate")


# ------------------------------------------------------------------------ quality_gate.toml


@dataclass
class LlmIsmRule:
    max_ratio_to_baseline: float = setting(2.0, "reject above this multiple of the human rate per 1,000 words")
    default_baseline_per_1k: float = setting(7.0, "human rate when data/raw/good/ has no poems to measure")
    min_weighted_hits: float = setting(6.0, "never reject below this many weighted hits (short texts swing)")


@dataclass
class PoeticDefaultsRule:
    max_cliche_weight: float = setting(3.0, "weighted dead-metaphor and poetic-default hits allowed in a poem")
    max_end_rhyme_share: float = setting(0.5, "share of rhyming line ends allowed when the brief did not ask for rhyme")
    max_we_share: float = setting(0.5, "share of we/us/our among pronouns allowed unless the brief asks for it")
    min_we_count: int = setting(3, "the we-voice check applies from this many we/us/our")


@dataclass
class FormRule:
    line_slack: int = setting(2, "lines a poem may fall outside the brief's length range")
    syllable_slack: int = setting(1, "syllables a line of a syllabic form may be off by")


@dataclass
class CritiqueRule:
    max_praise_share: float = setting(0.6, "largest share of sentences that may be praise")
    min_suggestions: int = setting(1, "actionable suggestions a critique needs")
    max_new_verse_lines: int = setting(3, "lines of new verse (not the poem's) before a critique counts as rewriting")


@dataclass
class RevisionRule:
    min_flagged_changed: float = setting(0.5, "share of the lines the critique quoted that the revision must change")
    max_unflagged_change: float = setting(0.6, "largest change (1 - similarity) allowed in the lines it did not quote")


@dataclass
class HygieneRule:
    min_chars: int = setting(40, "shortest text a record's main field may hold")
    max_chars: int = setting(12_000, "longest text a record's main field may hold")
    copy_ngram: int = setting(6, "word n-gram length for the verbatim-copying check")
    max_copy_share: float = setting(0.3, "share of a poem's n-grams allowed to come from a source poem")
    near_duplicate_jaccard: float = setting(0.8, "shingle similarity at which two records count as one")


@dataclass
class QualityGateConfig:
    FILE = "quality_gate"
    llm_isms: LlmIsmRule = setting(LlmIsmRule(), "LLM-isms relative to the human baseline")
    poetic_defaults: PoeticDefaultsRule = setting(PoeticDefaultsRule(), "clichés and the machine-poem signature")
    form: FormRule = setting(FormRule(), "form against the brief")
    critique: CritiqueRule = setting(CritiqueRule(), "grounded, actionable critique")
    revision: RevisionRule = setting(RevisionRule(), "revisions change what was flagged")
    hygiene: HygieneRule = setting(HygieneRule(), "length, template tokens, copying, near-duplicates")


# ------------------------------------------------------------------------------ app.toml


@dataclass
class AppSettings:
    auto_rounds: int = setting(3, "revise/critique rounds the auto action runs unattended")
    max_paste_chars: int = setting(10_000, "longest poem or request accepted; longer pastes are truncated")
    export_dir: str = setting("", "where exports (x, t) go; empty: an exports folder in the user data folder")
    gutter: bool = setting(True, "show the craft gutter (syllables, stress, rhyme per line) beside the poem at start")


@dataclass
class BuildScreenSettings:
    roles: str = setting("both", "what the build screen builds: both, educator or poet")
    backend: str = setting("local", "where it trains: local (this machine) or modal")
    max_cost: float = setting(5.0, "dollars of Claude calls one build may spend (0: no cap)")
    epochs: int = setting(0, "training epochs (0: the training configs')")
    base_model: str = setting("", "base model for both roles (empty: the training configs'; 'starter': the starter GGUF)")


@dataclass
class AppConfig:
    FILE = "app"
    app: AppSettings = setting(AppSettings(), "the Textual app")
    build: BuildScreenSettings = setting(BuildScreenSettings(), "the build screen's per-run settings")
    keys: dict[str, str] = setting({}, "key remapping: binding id = key(s), e.g. revise = \"ctrl+r\"")
