"""The GPU device check: QLoRA with bitsandbytes on the starter and a tiny Llama 3.1, export, load.

Run where CUDA is: `.venv/bin/python -m bench.gpu_check [--steps 40]`. It trains the
Educator's adapter on a small set built from the eval poems for a few dozen steps through
the project's own trainer (4-bit NF4 base on CUDA), exports it through the project's chain
(merge in bf16, convert, Q4_K_M, validate: the GGUF loads and its golden prompts stop), and
prints steps/s, peak GPU memory and the validation result, for two bases: the starter
(SmolLM2) and a tiny model of Llama 3.1's shape on its real vocabulary and template (from
tests/support/families.py; needs `workshop setup --converter`). It ends with a `goal` line
per figure. On the device machine, carry `models/` (the starter and the converter).
`--cpu` runs the same path without CUDA (LoRA, no bitsandbytes) to check the script itself.
Everything goes to a temporary folder; nothing of yours is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def training_set(folder: Path, n: int) -> None:
    """Short, real conversations: a question about a line and an answer that quotes it."""
    lines = ["the kettle clicks off", "rain on the tin roof all night", "my father's coat still on the hook",
             "the dog asleep by the door", "frost on the inside of the glass", "a bus goes by with no one on it"]
    rows = []
    for i in range(n):
        line = lines[i % len(lines)]
        rows.append({"messages": [
            {"role": "system", "content": "You are the Educator, a poetry workshop mentor."},
            {"role": "user", "content": f"Workshop this line: {line}"},
            {"role": "assistant", "content": f'"{line}" works because it stays concrete. What happens in the '
                                             "next line: does the poem move, or only describe?"}]})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]), encoding="utf-8")


def check_base(label: str, base: str, work: Path, steps: int, cuda: bool) -> list[str]:
    """Train, export and validate one base; returns its goal lines."""
    import torch

    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.training.gguf_export import export
    from poetry_workshop.pipeline.training.trainer import train

    layers = [("gpu check", {
        "educator_training": {"training": {"base_model": base, "batch_size": 8, "gradient_accumulation": 1,
                                           "max_seq": 256, "checkpoint_steps": max(1, steps // 2)},
                              "quantization": {"load_in_4bit": True}},
        "export_pipeline": {"export": {"output_dir": str(work / "models")}}})]
    settings = load_settings(extra=layers)
    steps_at: list[tuple[int, float]] = []

    def progress(event) -> None:
        steps_at.append((event.step, time.perf_counter()))

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train("educator", settings, max_steps=steps, on_progress=progress, log=print)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    # Steps/s over the steps after the first, which carries the warm-up and compilation.
    timed = [(s, t) for s, t in steps_at if s >= 1]
    rate = (timed[-1][0] - timed[0][0]) / (timed[-1][1] - timed[0][1]) if len(timed) > 1 and timed[-1][1] > timed[0][1] else 0.0
    print(f"{label} train: {result.steps} steps in {seconds:.1f}s, {rate:.2f} steps/s after the first, "
          f"loss {result.train_loss}, peak GPU memory {peak:.2f} GiB, device {'cuda' if cuda else 'cpu'}"
          f"{' ' + torch.cuda.get_device_name() if cuda else ''}, 4-bit base: {cuda}")
    started = time.perf_counter()
    exported = export("educator", settings, log=print)
    v = exported.validation
    print(f"{label} export: {exported.gguf.name} in {time.perf_counter() - started:.1f}s; validation: EOS "
          f"{v.get('eos_token_id')}, template matches {v.get('template_matches')}, problems {v.get('problems')}")
    (work / "models" / exported.gguf.name).rename(work / "models" / f"{label}.{exported.gguf.name}")

    def goal(name: str, measured: str, target: str, met: bool) -> str:
        return f"goal {label}_{name}: {measured} (target {target}) {'met' if met else 'missed'}"

    return [goal("four_bit", "NF4" if cuda else "fp32 (no CUDA)", "NF4 on CUDA", cuda),
            goal("steps", str(result.steps), str(steps), result.steps == steps),
            goal("steps_per_s", f"{rate:.2f}", ">= 1" if cuda else "> 0", rate >= (1 if cuda else 0.0001)),
            goal("peak_gpu_gib", f"{peak:.2f}", "<= 10", cuda and peak <= 10),
            goal("validation", "passed" if not v.get("problems") else "; ".join(v["problems"]), "passed",
                 not v.get("problems") and bool(v.get("template_matches")))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--cpu", action="store_true", help="check the script on a CPU (no bitsandbytes)")
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu:
        print("gpu_check: no CUDA device here; run it on a GPU machine (or --cpu to check the script)")
        return 2
    from poetry_workshop import locations

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    os.environ[locations.DATA_ENV] = str(work / "data")
    os.environ[locations.HOME_ENV] = str(work / "home")
    training_set(work / "data" / "educator_training", 64)
    starter = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    # A tiny model of Llama 3.1's shape (its vocabulary, template, rope scaling and GQA) from
    # the family tests: the 4-bit path on the architecture of the default base.
    sys.path.insert(0, str(ROOT))
    from tests.support.families import tiny_base

    goals = []
    for label, base in (("starter", str(starter)), ("llama31_tiny", str(tiny_base("llama3.1")))):
        goals += check_base(label, base, work, args.steps, cuda)
    print("\n".join(goals))
    return 0 if all(g.endswith(" met") for g in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
