"""The `workshop` command: the parser, built from the table of command groups, and `main`.

stdout is data (poems, critiques, JSON, tables); stderr is progress and diagnostics.
Expected failures are one line on stderr and an exit code (2 for usage/config errors);
anything else is a bug and keeps its traceback. Without a command, `workshop` opens the app;
with `--batch FILE`, it runs sessions unattended.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from poetry_workshop import __version__, locations
from poetry_workshop.cli.build import CloudCommand, ExportCommand, FirstTestCommand, PipelineCommand, TrainCommand
from poetry_workshop.cli.command import Command
from poetry_workshop.cli.data import DataCommand
from poetry_workshop.cli.evaluate import EvalCommand
from poetry_workshop.cli.models import ModelsCommand, SetupCommand
from poetry_workshop.cli.options import ROUNDS, add_model_options
from poetry_workshop.cli.sessions import CritiqueCommand, SessionsCommand, WriteCommand
from poetry_workshop.cli.terminal import open_studio
from poetry_workshop.errors import ExitCode, WorkshopError

COMMANDS: list[Command] = [
    WriteCommand(), CritiqueCommand(), ModelsCommand(), SetupCommand(), SessionsCommand(), DataCommand(),
    TrainCommand(), ExportCommand(), CloudCommand(), PipelineCommand(), FirstTestCommand(), EvalCommand(),
]


def build_parser(commands: list[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workshop",
        description="Poetry Workshop: an Educator that critiques and a Poet that writes and "
        "revises, on local GGUF models. Without a command, opens the app.",
        epilog="Run `workshop COMMAND --help` for a command's options. Config lives in config/*.toml; "
        f"sessions are stored under {locations.HOME_ENV} (default: the user data folder).",
    )
    parser.add_argument("--version", action="version", version=f"workshop {__version__}")
    parser.add_argument("--batch", metavar="FILE",
                        help="run many sessions unattended: one request per line, or JSONL with "
                        "'prompt' or 'poem' and optional 'rounds'")
    parser.add_argument("--rounds", type=ROUNDS, metavar="N",
                        help="critique/revise rounds per session (default from config)")
    parser.add_argument("--out", metavar="DIR", default="out",
                        help="with --batch: folder for transcripts (default: out)")
    add_model_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands:
        command.register(sub).set_defaults(handler=command)  # not "run": `eval --run` has that name
    return parser


def run_batch_file(args) -> int:
    from poetry_workshop.cli.batch_sessions import read_items, run_batch

    read_items(Path(args.batch))  # a bad batch file fails before any model loads
    studio = open_studio(args)
    try:
        return run_batch(studio, Path(args.batch), Path(args.out), args.rounds)
    finally:
        studio.close()


def run_app(args) -> int:
    from poetry_workshop.tui.app import run_app as run

    studio = open_studio(args)  # the same checks and warnings as every other command
    try:
        return run(studio)
    finally:
        studio.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.batch:
            if args.command:
                parser.error("--batch runs on its own; drop the subcommand")
            return run_batch_file(args)
        if args.command is None:
            return run_app(args)
        return args.handler(args)
    except WorkshopError as exc:
        print(f"workshop: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nworkshop: stopped", file=sys.stderr)
        return ExitCode.INTERRUPTED
