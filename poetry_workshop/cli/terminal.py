"""A workshop session in the terminal: opening the studio with its warnings, session events
on stderr, and the Markdown of the finished session on stdout."""

from __future__ import annotations

import sys
import threading

from poetry_workshop.errors import ExitCode


def log(message: str) -> None:
    """A progress line on stderr (stdout is data)."""
    print(message, file=sys.stderr, flush=True)


class TerminalProgress:
    """Session events to stderr: which role is working, streamed text on a terminal, timings."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.live = stream.isatty()

    def __call__(self, event) -> None:
        from poetry_workshop.workshop.session import Notice, StepFinished, StepStarted, TextChunk

        if isinstance(event, StepStarted):
            print(f"· {event.role.capitalize()}: {event.action}…", file=self.stream, flush=True)
        elif isinstance(event, TextChunk) and self.live:
            self.stream.write(f"\x1b[2m{event.text}\x1b[0m")
            self.stream.flush()
        elif isinstance(event, StepFinished) and event.stats is not None:
            s = event.stats
            end = "\n" if self.live else ""
            thought = f" ({s.thinking_tokens} thinking)" if s.thinking_tokens else ""
            print(f"{end}  {s.generated_tokens} tokens{thought} in {s.seconds:.1f}s ({s.tokens_per_second:.0f} tok/s), "
                  f"{s.evaluated_tokens}/{s.prompt_tokens} prompt tokens evaluated, {s.finish_reason}",
                  file=self.stream, flush=True)
        elif isinstance(event, Notice):
            print(f"note: {event.text}", file=self.stream, flush=True)


def open_studio(args):
    """The studio for this run's --config/--educator/--poet, its warnings printed."""
    from poetry_workshop.inference.model_choice import describe_choices
    from poetry_workshop.workshop.studio import Studio

    studio = Studio.open(args.config, args.educator, args.poet)
    if studio.store.moved_aside is not None:
        print(f"warning: {studio.store.path} could not be read as a database; it was moved to "
              f"{studio.store.moved_aside} and a new one started", file=sys.stderr)
    for line in describe_choices(studio.choices):  # which model each role runs, and from where
        print(line, file=sys.stderr)
    if studio.notice:
        print(f"{studio.notice}", file=sys.stderr)
    return studio


def run_session(args, mode: str, text: str) -> int:
    """Run one session (`write` from a request, `workshop` on a poem) and print it as Markdown."""
    from poetry_workshop.workshop.session import validate_text
    from poetry_workshop.workshop.transcript import to_markdown

    validate_text(text, "request" if mode == "write" else "poem")  # before any model loads
    studio = open_studio(args)
    session = None
    cancel = threading.Event()
    try:
        # Tagged with the command, so the app lists it as headless and never offers it to resume.
        origin = "write" if mode == "write" else "critique"
        session = studio.start(mode, text, getattr(args, "rounds", None), on_event=TerminalProgress(), origin=origin)
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
