"""The GPU device check: QLoRA on the starter base with bitsandbytes, merge, export, load.

Run where CUDA is: `.venv/bin/python -m bench.gpu_check [--steps 40]`. It trains the
Educator's adapter on a small set built from the eval poems for a few dozen steps through
the project's own trainer (4-bit NF4 base on CUDA), exports it through the project's chain
(merge in full precision, convert, Q4_K_M, validate: the GGUF loads and its golden prompts
stop), and prints steps/s, peak GPU memory and the validation result.
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
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.training.gguf_export import export
    from poetry_workshop.pipeline.training.trainer import train

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    os.environ[locations.DATA_ENV] = str(work / "data")
    os.environ[locations.HOME_ENV] = str(work / "home")
    starter = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    layers = [("gpu check", {
        "educator_training": {"training": {"base_model": str(starter), "batch_size": 8, "gradient_accumulation": 1,
                                           "max_seq": 256, "checkpoint_steps": max(1, args.steps // 2)},
                              "quantization": {"load_in_4bit": True}},
        "export_pipeline": {"export": {"output_dir": str(work / "models")}}})]
    settings = load_settings(extra=layers)
    training_set(work / "data" / "educator_training", 64)

    steps_at: list[tuple[int, float]] = []

    def progress(event) -> None:
        steps_at.append((event.step, time.perf_counter()))

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train("educator", settings, max_steps=args.steps, on_progress=progress, log=print)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    # Steps/s over the steps after the first, which carries the warm-up and compilation.
    timed = [(s, t) for s, t in steps_at if s >= 1]
    rate = (timed[-1][0] - timed[0][0]) / (timed[-1][1] - timed[0][1]) if len(timed) > 1 and timed[-1][1] > timed[0][1] else 0.0
    print(f"train: {result.steps} steps in {seconds:.1f}s, {rate:.2f} steps/s after the first, "
          f"loss {result.train_loss}, peak GPU memory {peak:.2f} GiB, device {'cuda' if cuda else 'cpu'}"
          f"{' ' + torch.cuda.get_device_name() if cuda else ''}, 4-bit base: {cuda}")
    started = time.perf_counter()
    exported = export("educator", settings, log=print)
    v = exported.validation
    print(f"export: {exported.gguf.name} in {time.perf_counter() - started:.1f}s; validation: EOS {v.get('eos_token_id')}, "
          f"template matches {v.get('template_matches')}, problems {v.get('problems')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
