"""Options and argument types that several commands share, defined once."""

from __future__ import annotations

import argparse


def whole_number(flag: str, low: int = 1, high: int | None = None):
    """An argparse type: a whole number from `low` (to `high`), named by its flag in the error."""
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number, got {value!r}")
        if high is not None and not low <= n <= high:
            raise argparse.ArgumentTypeError(f"{flag} must be from {low} to {high}, got {n}")
        if n < low:
            raise argparse.ArgumentTypeError(f"{flag} must be at least {low}, got {n}")
        return n
    return parse


def positive_int(flag: str):
    """A whole number of at least 1."""
    return whole_number(flag, 1)


ROUNDS = whole_number("--rounds", 1, 10)


def dollars(flag: str):
    """An argparse type: a positive amount of dollars, with or without the $."""
    def parse(value: str) -> float:
        try:
            usd = float(value.lstrip("$"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be dollars like 5 or 2.50, got {value!r}")
        if usd <= 0:
            raise argparse.ArgumentTypeError(f"{flag} must be more than 0, got {value!r}")
        return usd
    return parse


def add_config(parser: argparse.ArgumentParser, top: bool = False) -> None:
    # A subcommand's copy defaults to SUPPRESS so a value given before the subcommand is not
    # reset by the subcommand's default.
    parser.add_argument("--config", metavar="PATH", default=None if top else argparse.SUPPRESS,
                        help="a TOML file that overrides the config files, the user file and the environment")


def add_model_options(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """--config, --educator and --poet: every command that runs the workshop's models."""
    add_config(parser, top)
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--educator", metavar="PATH", default=default,
                        help="GGUF file for the Educator for this run (overrides the config)")
    parser.add_argument("--poet", metavar="PATH", default=default,
                        help="GGUF file for the Poet for this run (overrides the config)")


def add_backend(parser: argparse.ArgumentParser) -> None:
    """--backend and --config: the commands that train or export."""
    parser.add_argument("--backend", choices=["local", "modal"], default="local",
                        help="local: this machine (CPU or a local GPU); modal: Modal cloud GPUs")
    add_config(parser)
