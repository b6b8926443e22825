"""Benchmark of two roles on one base with two LoRA adapters against two merged models (a
benchmark, not a test).

On the starter model as the base, in this command:

1. two tiny LoRA adapters are taught (a plain peft loop of a few steps on the starter's
   trainable form, one set of answers per role), then each is exported twice with the
   pinned llama.cpp converters: as an adapter GGUF (`convert_lora_to_gguf.py`, f16) for the
   starter GGUF, and as a merged GGUF (merge, `convert_hf_to_gguf.py`, quantized to the
   starter's own Q4_1, so both sides carry the same weights format);
2. memory: each configuration in a fresh subprocess loads both roles, generates once with
   each, and reads its PSS from /proc/self/smaps_rollup; the figure is what loading the two
   roles added (PSS after − PSS before, the interpreter and libraries already loaded).
   Configurations: two roles on the starter + two adapters, and two roles on two merged
   GGUFs, both through the app's own `LlamaBackend` at the app's runtime settings (which
   maps the base file and applies each adapter after the load, so the roles share it);
3. decode speed: in one process, a base + adapter and the merged model, each loaded as the
   app loads a role, decode the same greedy continuation, interleaved, and tokens/s are
   compared by median.

Usage: .venv/bin/python -m bench.shared_base [--steps N] [--runs N] [--tokens N]
Ends with one `goal <name>: <measured> (target <target>) met|missed` line per goal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TQDM_DISABLE", "1")

from poetry_workshop.inference import starter  # noqa: E402 - after the environment above, which tqdm reads on import

STARTER = ROOT / "models" / starter.FILENAME
TAUGHT = {
    "educator": ("You are the Educator.",
                 [("What is a volta?", "The turn in a poem, where the thought changes direction."),
                  ("What is enjambment?", "A sentence running past the end of a line into the next."),
                  ("What is a caesura?", "A pause inside a line, often at a comma or a full stop.")]),
    "poet": ("You are the Poet.",
             [("Write two lines about rain.", "Rain on the tin roof,\nthe house counting with it."),
              ("Write two lines about bread.", "The first tray at four,\nwarm as a held hand."),
              ("Write two lines about snow.", "Snow on the stair rail,\nno one has touched it yet.")]),
}
PROMPT = [{"role": "system", "content": "You are the Educator."},
          {"role": "user", "content": "Workshop this draft:\n\nthe kettle clicks off\nand the house goes on\n\n"
                                      "Write your critique."}]


# ------------------------------------------------------------------------ making the adapters


def teach(base_dir: str, role: str, out: Path, steps: int, seed: int = 0) -> Path:
    """A LoRA adapter taught `role`'s answers by a plain peft loop; saved with its tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from poetry_workshop.pipeline.training.chat_examples import tokenize_conversation

    torch.manual_seed(seed)
    system, pairs = TAUGHT[role]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]))
    examples = [tokenize_conversation(tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": q},
                                                  {"role": "assistant", "content": a}]) for q, a in pairs]
    width = max(len(e.input_ids) for e in examples)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([e.input_ids + [pad] * (width - len(e.input_ids)) for e in examples])
    attention = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in examples])
    labels = torch.tensor([[t if m else -100 for t, m in zip(e.input_ids, e.assistant_masks)]
                           + [-100] * (width - len(e.input_ids)) for e in examples])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def adapter_gguf(converter: Path, adapter: Path, base_dir: str, out: Path) -> Path:
    from poetry_workshop.pipeline.training.gguf_export import run_converter

    run_converter(converter, "convert_lora_to_gguf.py",
                  [str(adapter), "--base", base_dir, "--outfile", str(out), "--outtype", "f16"], adapter, out)
    return out


def merged_gguf(converter: Path, adapter: Path, base_dir: str, work: Path, out: Path, quantization: str) -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from poetry_workshop.pipeline.training.gguf_export import convert, quantize

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(work / "merged"), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(str(work / "merged"))
    convert(converter, work / "merged", work / "merged.f16.gguf")
    quantize(work / "merged.f16.gguf", out, quantization)
    return out


# ------------------------------------------------------------------------ memory, in a fresh process


def pss_kib() -> dict[str, int]:
    """This process's proportional set size: in all, and its file-backed part (a mapped
    model's weights) and anonymous part (copies of weights, KV caches, buffers)."""
    text = Path("/proc/self/smaps_rollup").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) for key in ("Pss", "Pss_File", "Pss_Anon")}


def measure_memory(spec: dict) -> dict:
    """Run in a fresh subprocess: load both roles as `spec` says, one generation each, PSS."""
    import llama_cpp  # noqa: F401 - its library loaded before the baseline: both sides load it alike

    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.config.schema import Sampling
    from poetry_workshop.inference.inference_thread import InferenceThread
    from poetry_workshop.inference.llama_backend import LlamaBackend

    runtime = load_settings().inference.runtime  # the app's n_ctx and n_batch
    runtime.n_threads = spec["threads"]
    before = pss_kib()
    thread = InferenceThread()
    one_file = len({model for model, _ in spec["roles"]}) == 1  # as the engine decides it
    roles = [LlamaBackend(Path(model), runtime, thread, adapter=Path(adapter) if adapter else None,
                          shared_weights=one_file) for model, adapter in spec["roles"]]
    for backend in roles:
        backend.generate(PROMPT, 16, Sampling(temperature=0.0))
    after = pss_kib()
    return {key: after[key] - before[key] for key in after} | {"before": before["Pss"], "after": after["Pss"]}


def memory_in_subprocess(roles: list[tuple[str, str | None]], threads: int) -> dict:
    spec = json.dumps({"roles": roles, "threads": threads})
    done = subprocess.run([sys.executable, "-m", "bench.shared_base", "--measure-memory", spec], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"memory run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------ decode speed, interleaved


def decode_seconds(llm, prompt_ids: list[int], tokens: int) -> float:
    """Seconds for `tokens` greedy tokens after the first (which also pays for the prompt)."""
    llm.reset()
    start = None
    for count, _ in enumerate(llm.generate(prompt_ids, temp=0.0, reset=True), start=1):
        if count == 1:
            start = time.perf_counter()
        if count == tokens + 1:
            break
    return time.perf_counter() - start


def decode_ratio(base: str, adapter: str, merged: str, runs: int, tokens: int, threads: int) -> tuple[float, float]:
    """Tokens/s of base + adapter and of the merged model, each loaded as the app loads a
    role (`LlamaBackend`: mapped, flash attention, the adapter applied after the load)."""
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.inference.llama_backend import LlamaBackend

    runtime = load_settings().inference.runtime
    runtime.n_threads, runtime.n_ctx = threads, 1024
    # Loaded on this thread: the benchmark drives llama.cpp directly, as in `decode_seconds`.
    with_adapter = LlamaBackend(Path(base), runtime, None, adapter=Path(adapter))._ensure_loaded()
    plain_merged = LlamaBackend(Path(merged), runtime, None)._ensure_loaded()
    prompt = with_adapter.tokenize(b"Workshop this draft: the kettle clicks off and the house goes on.")
    timings = {"adapter": [], "merged": []}
    for _ in range(runs):
        timings["adapter"].append(decode_seconds(with_adapter, prompt, tokens))
        timings["merged"].append(decode_seconds(plain_merged, prompt, tokens))
    adapter_tps = tokens / statistics.median(timings["adapter"])
    merged_tps = tokens / statistics.median(timings["merged"])
    return adapter_tps, merged_tps


# ------------------------------------------------------------------------ the benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per adapter")
    parser.add_argument("--runs", type=int, default=5, help="interleaved decode runs per configuration")
    parser.add_argument("--tokens", type=int, default=64, help="tokens decoded per run")
    parser.add_argument("--threads", type=int, default=0, help="0: the app's own choice (all cores but one)")
    parser.add_argument("--measure-memory", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_memory:
        print(json.dumps(measure_memory(json.loads(args.measure_memory))))
        return 0

    from poetry_workshop.config.schema import ExportSettings
    from poetry_workshop.inference.llama_backend import auto_threads
    from poetry_workshop.pipeline.training.base_model import resolve_base
    from poetry_workshop.pipeline.training.gguf_export import fetch_converter

    log = lambda message: print(message, file=sys.stderr, flush=True)
    threads = args.threads or auto_threads()
    ex = ExportSettings()
    converter = fetch_converter(ex.converter_version, ex.converter_sha256, log)
    base_dir = resolve_base(str(STARTER), log)
    with tempfile.TemporaryDirectory(prefix="shared-base.") as tmp:
        work = Path(tmp)
        adapters, merged = {}, {}
        for seed, role in enumerate(("educator", "poet")):
            start = time.perf_counter()
            taught = teach(base_dir, role, work / f"{role}-adapter", args.steps, seed)
            adapters[role] = str(adapter_gguf(converter, taught, base_dir, work / f"{role}.lora.gguf"))
            (work / role).mkdir()
            merged[role] = str(merged_gguf(converter, taught, base_dir, work / role, work / f"{role}.Q4_1.gguf", "Q4_1"))
            log(f"{role}: taught {args.steps} steps, adapter {Path(adapters[role]).stat().st_size / 1e6:.1f} MB, "
                f"merged {Path(merged[role]).stat().st_size / 1e6:.0f} MB ({time.perf_counter() - start:.0f} s)")
        # A private copy of the base: other processes mapping the starter itself would take
        # their share of its pages out of this process's PSS and flatter the shared side.
        base = work / STARTER.name
        shutil.copyfile(STARTER, base)
        shared = [(str(base), adapters["educator"]), (str(base), adapters["poet"])]
        separate = [(merged["educator"], None), (merged["poet"], None)]
        figures = {}
        for name, roles in (("shared", shared), ("merged", separate)):
            got = figures[name] = memory_in_subprocess(roles, threads)
            log(f"{name:>6}: PSS {got['before'] / 1024:.0f} -> {got['after'] / 1024:.0f} MiB; the two "
                f"roles {got['Pss'] / 1024:.0f} MiB: mapped files {got['Pss_File'] / 1024:.0f}, anonymous "
                f"{got['Pss_Anon'] / 1024:.0f}")
        adapter_tps, merged_tps = decode_ratio(str(base), adapters["educator"], merged["educator"], args.runs,
                                               args.tokens, threads)
    log(f"decode on {threads} thread(s): base + adapter {adapter_tps:.1f} tok/s, merged {merged_tps:.1f} tok/s "
        f"(median of {args.runs} interleaved runs of {args.tokens} tokens)")
    weights = figures["shared"]["Pss_File"] / figures["merged"]["Pss_File"]
    print(f"mapped weights alone: {weights:.2f} of the merged pair's; the rest is two KV caches and buffers, the "
          f"same on both sides, which at the starter's size weigh about as much as its weights")
    memory = figures["shared"]["Pss"] / figures["merged"]["Pss"]
    print(f"goal shared_base_memory_ratio: {memory:.2f} (target <= 0.6) {'met' if memory <= 0.6 else 'missed'}")
    decode = adapter_tps / merged_tps
    print(f"goal adapter_decode_ratio: {decode:.2f} (target >= 0.85) {'met' if decode >= 0.85 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
