"""`workshop train` and `workshop export`: arguments and terminal output for building models.

Like cli.py, this module only parses and prints; the work is in `pipeline.trainer` and
`pipeline.gguf_export`, whose libraries (torch, transformers, trl, peft) load only when a
command here runs.
"""

from __future__ import annotations

import argparse
import sys

from poetry_workshop.data_cli import positive_int
from poetry_workshop.errors import ConfigError, ExitCode

ROLES = ("educator", "poet")


def _backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["local", "modal"], default="local",
                        help="local: this machine (CPU or a local GPU); modal: Modal cloud GPUs")
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="a TOML file of overrides")


def add_build_parsers(sub) -> None:
    train = sub.add_parser(
        "train", help="train the Educator's or the Poet's adapter from its training set",
        description="Fine-tune a LoRA adapter (QLoRA on CUDA) on data/<role>_training/ with the settings of "
        "config/<role>_training.toml. Checkpoints go to data/checkpoints/<role>/; running it again resumes "
        "from the newest one.")
    train.add_argument("role", choices=ROLES)
    train.add_argument("--num-epochs-override", type=positive_int("--num-epochs-override"), metavar="N",
                       help="epochs for this run instead of the config's")
    train.add_argument("--max-steps", type=positive_int("--max-steps"), metavar="N",
                       help="stop after N optimiser steps (a quick check)")
    _backend(train)

    export = sub.add_parser(
        "export", help="merge, convert to GGUF, quantize, validate and publish a trained model",
        description="Merge the trained adapter into its base, convert it with llama.cpp's pinned converter, "
        "quantize it (Q4_K_M by default), validate it and publish it with a manifest under models/. "
        "Without a role, exports both that have an adapter.")
    export.add_argument("role", nargs="?", choices=ROLES)
    _backend(export)


def _local_only(args) -> None:
    if args.backend == "modal":
        raise ConfigError("the Modal backend is not available in this version yet; use --backend local")


def cmd_train(args) -> int:
    from poetry_workshop.config import load_settings
    from poetry_workshop.pipeline.trainer import train

    _local_only(args)
    settings = load_settings(args.config)

    def show(event) -> None:
        parts = [f"{event.role}: step {event.step}/{event.total_steps}"]
        if event.loss is not None:
            parts.append(f"loss {event.loss:.3f}")
        if event.eval_loss is not None:
            parts.append(f"validation loss {event.eval_loss:.3f}")
        parts.append(f"{event.tokens_per_second:.0f} tok/s")
        if event.eta_seconds:
            parts.append(f"about {event.eta_seconds / 60:.1f} min left")
        print(", ".join(parts), file=sys.stderr, flush=True)

    result = train(args.role, settings, epochs=args.num_epochs_override, max_steps=args.max_steps,
                   on_progress=show, log=lambda m: print(m, file=sys.stderr, flush=True))
    resumed = f", resumed from {result.resumed_from}" if result.resumed_from else ""
    dropped = f" ({result.dropped} longer than max_seq left out)" if result.dropped else ""
    print(f"{result.role}: {result.steps} steps on {result.examples} examples{dropped}{resumed}; "
          f"adapter in {result.adapter}")
    return ExitCode.OK


def cmd_export(args) -> int:
    from poetry_workshop.config import load_settings
    from poetry_workshop.pipeline.gguf_export import export
    from poetry_workshop.pipeline.trainer import checkpoints_dir

    _local_only(args)
    settings = load_settings(args.config)
    roles = [args.role] if args.role else [r for r in ROLES if (checkpoints_dir(r) / "adapter").is_dir()]
    if not roles:
        raise ConfigError("no trained adapter to export; run `workshop train educator` (or poet) first")
    for role in roles:
        result = export(role, settings, log=lambda m, role=role: print(f"{role}: {m}", file=sys.stderr, flush=True))
        print(f"{role}: published {result.gguf} (manifest {result.manifest.name}); use it with "
              f"`workshop --{role} {result.gguf}` or set [inference_config.models] {role} in your config")
    return ExitCode.OK
