"""`workshop write`, `critique` and `sessions`: workshop sessions from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.cli.command import Command
from poetry_workshop.cli.options import ROUNDS, add_model_options
from poetry_workshop.cli.terminal import TerminalProgress, open_studio, run_session
from poetry_workshop.errors import ExitCode, WorkshopError


class WriteCommand(Command):
    name = "write"

    def register(self, subparsers):
        p = subparsers.add_parser("write", help="write with the Poet: request → brief → drafts and critiques",
                                  description="Turn a request into a brief, a draft and rounds of critique and "
                                  "revision; print the session as Markdown on stdout.")
        p.add_argument("prompt", help="what the poem should be, in your words")
        p.add_argument("--rounds", type=ROUNDS, metavar="N", default=argparse.SUPPRESS,
                       help="critique/revise rounds (default from config)")
        add_model_options(p)
        return p

    def run(self, args) -> int:
        return run_session(args, "write", args.prompt)


class CritiqueCommand(Command):
    name = "critique"

    def register(self, subparsers):
        p = subparsers.add_parser("critique", help="workshop my poem: critique a poem from a file or stdin",
                                  description="Critique your poem (and, with --rounds above 1, let the Poet "
                                  "revise it and critique again); print the session as Markdown on stdout.")
        p.add_argument("poem", help="a text file holding the poem, or - for stdin")
        p.add_argument("--rounds", type=ROUNDS, metavar="N", default=argparse.SUPPRESS,
                       help="rounds (default 1: one critique)")
        add_model_options(p)
        return p

    def run(self, args) -> int:
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
        if getattr(args, "rounds", None) is None:
            args.rounds = 1
        return run_session(args, "workshop", text)


class SessionsCommand(Command):
    name = "sessions"

    def register(self, subparsers):
        p = subparsers.add_parser("sessions", help="list, show, export or resume stored sessions",
                                  description="Without an action, list stored sessions.")
        p.add_argument("action", nargs="?", choices=["list", "show", "export", "resume"], default="list")
        p.add_argument("session", nargs="?", help="session id (a unique prefix is enough)")
        p.add_argument("--out", metavar="FILE", help="export: write Markdown here instead of stdout")
        p.add_argument("--rounds", type=ROUNDS, metavar="N", default=argparse.SUPPRESS,
                       help="resume: run up to N rounds in total")
        add_model_options(p)
        return p

    def run(self, args) -> int:
        if args.action == "resume":
            return self._resume(args)
        from poetry_workshop.files import write_atomic
        from poetry_workshop.workshop.store import SessionStore
        from poetry_workshop.workshop.transcript import to_markdown

        store = SessionStore.open(locations.session_db_file())
        try:
            if store.moved_aside is not None:
                print(f"warning: unreadable database moved to {store.moved_aside}", file=sys.stderr)
            if args.action == "list":
                rows = store.list_sessions()
                if not rows:
                    print("no sessions yet; start one with `workshop write \"...\"`", file=sys.stderr)
                for r in rows:
                    tag = f" [{r.origin}]" if r.headless else ""
                    print(f"{r.id}  {r.updated_at[:16].replace('T', ' ')}  {r.mode:<8}  {r.draft_count:>2} draft(s)  "
                          f"{r.status:<8}  {r.title}{tag}")
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

    def _resume(self, args) -> int:
        from poetry_workshop.workshop.transcript import to_markdown

        if not args.session:
            raise WorkshopError("resume needs a session id; `workshop sessions` lists them")
        studio = open_studio(args)
        try:
            session = studio.resume(args.session, on_event=TerminalProgress())
            session.run(getattr(args, "rounds", None))
            session.refresh()
            sys.stdout.write(to_markdown(session.record, session.tree))
        finally:
            studio.close()
        return ExitCode.OK
