"""`workshop train`, `export`, `cloud`, `pipeline` and `first-test`: arguments and terminal output for building models.

Like every module of the command line, this one only parses and prints; the work is in
`pipeline.training` (trainer, gguf_export) and `pipeline.build` (chain, backends, cloud_sync), whose
libraries (torch, transformers, trl, peft, modal) load only when a command here runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from poetry_workshop.cli.command import Command
from poetry_workshop.cli.options import add_backend, add_config, dollars, positive_int
from poetry_workshop.cli.terminal import log as _log
from poetry_workshop.cli.terminal import run_session
from poetry_workshop.errors import ConfigError, ExitCode
from poetry_workshop.names import ROLES


class TrainCommand(Command):
    name = "train"
    needs = "train"

    def register(self, subparsers):
        train = subparsers.add_parser(
            "train", help="train the Educator's or the Poet's adapter from its training set",
            description="Fine-tune a LoRA adapter (QLoRA on CUDA) on data/<role>_training/ with the settings of "
            "config/<role>_training.toml. Checkpoints go to data/checkpoints/<role>/; running it again resumes "
            "from the newest one.")
        train.add_argument("role", choices=ROLES)
        train.add_argument("--num-epochs-override", type=positive_int("--num-epochs-override"), metavar="N",
                           help="epochs for this run instead of the config's")
        train.add_argument("--max-steps", type=positive_int("--max-steps"), metavar="N",
                           help="stop after N optimiser steps (a quick check)")
        add_backend(train)
        return train

    def run(self, args) -> int:
        return cmd_train(args)


class ExportCommand(Command):
    name = "export"
    needs = "train"

    def register(self, subparsers):
        export = subparsers.add_parser(
            "export", help="merge, convert to GGUF, quantize, validate and publish a trained model",
            description="Merge the trained adapter into its base, convert it with llama.cpp's pinned converter, "
            "quantize it (Q4_K_M by default), validate it and publish it with a manifest under models/. "
            "Without a role, exports both that have an adapter. With --adapter, publishes the role as a LoRA adapter "
            "GGUF (models/ROLE.lora.gguf) beside one base GGUF that both roles share when trained on the same base.")
        export.add_argument("role", nargs="?", choices=ROLES)
        export.add_argument("--adapter", action="store_true",
                            help="publish base + adapter instead of a merged model: two roles on one base share its "
                            "memory (runs on this machine)")
        add_backend(export)
        return export

    def run(self, args) -> int:
        return cmd_export(args)


class CloudCommand(Command):
    name = "cloud"
    needs = "pipeline"

    def register(self, subparsers):
        cloud = subparsers.add_parser(
            "cloud", help="send the training sets to Modal, or fetch the exported models from it",
            description="upload: send data/<role>_training/ to the Modal volume poetry-data (only files whose sha256 "
            "changed; the cloud trainer refuses a set that does not match what was uploaded). download: fetch the "
            "exported GGUF and its manifest from the volume poetry-gguf into models/ (skipped when the local copy "
            "already has the manifest's sha256). Needs Modal credentials (`modal setup`).")
        cloud.add_argument("action", choices=["upload", "download"])
        cloud.add_argument("role", nargs="?", choices=ROLES, help="one role (default: both that exist)")
        add_config(cloud)
        return cloud

    def run(self, args) -> int:
        return cmd_cloud(args)


class PipelineCommand(Command):
    name = "pipeline"
    needs = "train"

    def register(self, subparsers):
        pipeline = subparsers.add_parser(
            "pipeline", help="the whole build: teaching data → gate → training sets → train → export",
            description="Generate teaching data with Claude up to the limits in config/generation.toml (records "
            "already made are kept and not paid for again), gate it, build the training sets, train and export "
            "each role. Every stage resumes where it stopped when run again.")
        only = pipeline.add_mutually_exclusive_group()
        only.add_argument("--educator-only", action="store_true", help="build only the Educator")
        only.add_argument("--poet-only", action="store_true", help="build only the Poet")
        pipeline.add_argument("--train-only", action="store_true",
                              help="skip the data stages: train and export from the training sets already prepared")
        pipeline.add_argument("--num-epochs", type=positive_int("--num-epochs"), metavar="N",
                              help="epochs for this run instead of the training configs'")
        pipeline.add_argument("--max-cost", type=dollars("--max-cost"), metavar="USD", help="stop generating before spending more than this")
        pipeline.add_argument("--yes", action="store_true", help="spend on Claude without asking (after the estimate)")
        add_backend(pipeline)
        return pipeline

    def run(self, args) -> int:
        return cmd_pipeline(args)


class FirstTestCommand(Command):
    name = "first-test"
    needs = "train"

    def register(self, subparsers):
        first = subparsers.add_parser(
            "first-test", help="prove the chain on a tiny scale: 3 briefs + 3 lessons → train 1 epoch → export → chat",
            description="Generate 3 briefs and 3 lessons with Claude (ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY as the "
            "SDK reads them), gate them, prepare 5 training samples, train the Educator for 1 epoch, export it to "
            "GGUF and have it critique a short poem. Its data goes to data/first-test/ and its model to "
            "models/first-test/, apart from your own. With --backend local the base is the starter model, so it "
            "runs on this machine in a few minutes.")
        first.add_argument("--base", metavar="MODEL",
                           help="base model (default: the starter GGUF locally, the training config's base on Modal)")
        first.add_argument("--epochs", type=positive_int("--epochs"), default=1, metavar="N",
                           help="epochs to train (default 1; a base that is not yet a chat model, such as Gemma 3 "
                           "270M, needs several to learn to end its turn)")
        first.add_argument("--yes", action="store_true", help="spend on Claude without asking (after the estimate)")
        add_backend(first)
        return first

    def run(self, args) -> int:
        return cmd_first_test(args)


def _layers(args):
    from poetry_workshop.pipeline.build.plan import caller_layers

    return caller_layers(getattr(args, "config", None))




def _show_training(event) -> None:
    _log(f"{event.role}: {event.describe()}")


def cmd_train(args) -> int:
    from poetry_workshop import locations
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.build.backends import open_backend
    from poetry_workshop.pipeline.data_lock import hold_data_folder

    settings = load_settings(getattr(args, "config", None))
    # The training set and the checkpoints are the data folder's: one writer at a time.
    with hold_data_folder(locations.data_dir()) as lock, \
            open_backend(args.backend, settings, _layers(args), _log) as backend:
        if lock.took_over:
            _log(lock.takeover_note())
        if args.backend == "modal":
            backend.upload([args.role])
        result = backend.train(args.role, args.num_epochs_override, args.max_steps, _show_training)
    resumed = f", resumed from {result.resumed_from}" if result.resumed_from else ""
    dropped = f" ({result.dropped} longer than max_seq left out)" if result.dropped else ""
    where = f"adapter on volume {settings.export.modal.checkpoint_volume}" if args.backend == "modal" else \
        f"adapter in {result.adapter}"
    print(f"{args.role}: {result.steps} steps on {result.examples} examples{dropped}{resumed}; {where}")
    return ExitCode.OK


def cmd_export(args) -> int:
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.build.backends import open_backend
    from poetry_workshop.pipeline.training.trainer import checkpoints_dir

    settings = load_settings(getattr(args, "config", None))
    if args.role:
        roles = [args.role]
    elif args.backend == "modal":
        roles = list(ROLES)
    else:
        roles = [r for r in ROLES if (checkpoints_dir(r) / "adapter").is_dir()]
    if not roles:
        raise ConfigError("no trained adapter to export; run `workshop train educator` (or poet) first")
    if getattr(args, "adapter", False):
        return _export_adapters(args, settings, roles)
    with open_backend(args.backend, settings, _layers(args), _log) as backend:
        for role in roles:
            gguf = backend.export(role)
            print(f"{role}: published {gguf} (manifest {gguf.name}.json); use it with "
                  f"`workshop --{role} {gguf}` or set [inference_config.models] {role} in your config")
    return ExitCode.OK


def _export_adapters(args, settings, roles) -> int:
    from poetry_workshop.pipeline.training.adapter_export import export_adapter

    if args.backend != "local":
        raise ConfigError("--adapter exports on this machine, from an adapter trained here: drop --backend modal "
                          "(a Modal export publishes a merged model)")
    for role in roles:
        done = export_adapter(role, settings, log=lambda m, role=role: _log(f"{role}: {m}"))
        base = "the published base, reused" if done.base_reused else "a new base"
        print(f"{role}: published {done.adapter} on {done.base} ({base}; manifest {done.manifest.name}); "
              f"use it with `{done.use_command(role)}`")
    return ExitCode.OK


def _confirm(yes: bool):
    """Ask before spending on Claude, on a terminal; elsewhere --yes says go."""
    if yes:
        return None

    def ask(estimate: str) -> bool:
        print(estimate, file=sys.stderr)
        if not sys.stdin.isatty():
            raise ConfigError("this would spend on the Claude API and there is no terminal to ask; "
                              "add --yes to go ahead")
        return input("Go ahead? [y/N] ").strip().lower() in ("y", "yes")

    return ask


def cmd_cloud(args) -> int:
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.build.backends import modal_credentials_ready
    from poetry_workshop.pipeline.build.cloud_sync import ModalVolume, download, set_files, upload

    settings = load_settings(getattr(args, "config", None))
    if not modal_credentials_ready():
        raise ConfigError("Modal is not set up on this machine: run `modal setup` (or set MODAL_TOKEN_ID and "
                          "MODAL_TOKEN_SECRET), then try again")
    modal = settings.export.modal
    if args.action == "upload":
        roles = [args.role] if args.role else [r for r in ROLES if set_files(r, settings)]
        if not roles:
            raise ConfigError("no training sets to upload; run `workshop data prepare` first")
        result = upload(ModalVolume(modal.data_volume), roles, settings, _log)
        print(f"upload to {modal.data_volume}: {len(result.sent)} file(s) sent, {len(result.unchanged)} unchanged")
        return ExitCode.OK
    volume = ModalVolume(modal.gguf_volume)
    for role in [args.role] if args.role else ROLES:
        got = download(volume, role, settings, _log)
        state = "downloaded" if got.fetched else "already up to date"
        print(f"{role}: {got.path} {state}")
    return ExitCode.OK


def cmd_pipeline(args) -> int:
    from poetry_workshop.pipeline.build.chain import run_chain
    from poetry_workshop.pipeline.build.plan import ChainPlan

    config = getattr(args, "config", None)
    plan = ChainPlan.from_flags(educator_only=args.educator_only, poet_only=args.poet_only,
                                train_only=args.train_only, epochs=args.num_epochs, backend=args.backend,
                                config_path=config, max_cost=args.max_cost)
    state = run_chain(plan, config_path=config, log=_log, confirm=_confirm(args.yes))
    for role, gguf in state.models.items():
        print(f"{role}: {gguf}")
    if state.dollars:
        print(f"Claude: ${state.dollars:.4f} this run", file=sys.stderr)
    from poetry_workshop.pipeline.build.spending import last_build_spending

    build = last_build_spending()  # the whole build's, earlier runs included, from the ledger
    if build is not None and build.total:
        print(build.describe(), file=sys.stderr)
    return ExitCode.OK


FIRST_TEST_TARGETS = {"briefs": 3, "lessons": 3}
FIRST_TEST_SAMPLES = 5
FIRST_TEST_POEM = "the kettle clicks off\nand the house goes on\nwithout me for a minute"


def cmd_first_test(args) -> int:
    from poetry_workshop import locations
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.build.chain import run_chain
    from poetry_workshop.pipeline.build.plan import ChainPlan

    config = getattr(args, "config", None)
    settings = load_settings(config)
    base = args.base
    if base is None and args.backend == "local":
        starter = locations.resolve_project_path(settings.inference.models.starter)
        if not starter.is_file():
            raise ConfigError(f"{starter}: the starter model is missing; run `workshop setup` first")
        base = str(starter)
    out_dir = locations.resolve_project_path(settings.export.export.output_dir) / "first-test"
    run = {"export_pipeline": {"export": {"output_dir": str(out_dir)}}}
    if base:
        run["educator_training"] = {"training": {"base_model": base}}
    plan = ChainPlan(roles=("educator",), backend=args.backend, targets=dict(FIRST_TEST_TARGETS),
                     min_samples=FIRST_TEST_SAMPLES, epochs=args.epochs, layers=[("first-test", run)])
    with locations.using_data_dir(locations.data_dir() / "first-test") as data:
        _log(f"first-test: data in {data}, model in {out_dir}")
        state = run_chain(plan, config_path=config, log=_log, confirm=_confirm(args.yes))
    gguf = Path(state.models["educator"])
    _log(f"first-test: the app loads {gguf.name} as the Educator and critiques a short poem")
    chat = argparse.Namespace(config=config, educator=str(gguf), poet=None, rounds=1)
    status = run_session(chat, "workshop", FIRST_TEST_POEM)
    if status == ExitCode.OK:
        _log(f"first-test: passed. Use this Educator with `workshop --educator {gguf}`")
    return status
