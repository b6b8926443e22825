"""What a command group is: a name, its parser, what it runs, and the set-up it needs.

`main` builds the parser from a list of these and runs the one chosen, so adding a command
is adding a class to that list. A command whose packages come from an optional set-up step
(`pipeline`, `train`) names it, and a missing package becomes one line naming that step.
"""

from __future__ import annotations

import argparse

from poetry_workshop.errors import WorkshopError


class Command:
    """One command group of `workshop`."""

    name: str = ""
    needs: str | None = None
    """The `scripts/setup.sh --EXTRA` that installs this command's packages, if any."""

    def register(self, subparsers) -> argparse.ArgumentParser:
        """Add this command's parser (and its own subcommands) to `subparsers`."""
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int:
        """Do the command; return the exit code."""
        raise NotImplementedError

    def __call__(self, args: argparse.Namespace) -> int:
        if self.needs is None:
            return self.run(args)
        try:
            return self.run(args)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] == "poetry_workshop":
                raise  # our own module missing is a bug, not a set-up step
            raise WorkshopError(f"this command needs the '{exc.name}' package, which the {self.needs} set-up "
                                f"installs: bash scripts/setup.sh --{self.needs}") from None
