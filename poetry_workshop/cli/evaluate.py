"""`workshop eval`: arguments and terminal output for judging Educator and Poet configurations.

The work is `evaluation.run_eval`, which the app calls too; this module only turns flags into
its arguments, prints progress on stderr (a line per generation), the table of numbers on
stdout and the paths of the written files on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

from poetry_workshop.cli.command import Command
from poetry_workshop.cli.options import add_config, dollars, positive_int


class EvalCommand(Command):
    name = "eval"
    needs = "pipeline"

    def register(self, subparsers):
        return _register(subparsers)

    def run(self, args) -> int:
        return cmd_eval(args)


def _register(sub):
    p = sub.add_parser(
        "eval", help="judge Educator and Poet configurations on a fixed prompt set",
        description="Run the versioned eval set (eval/set_v1.toml: briefs for the Poet, poems with weakened "
        "copies for the Educator, drafts with critiques to revise) through one or more model configurations "
        "with fixed seeds, and write report.md, report.json and a PNG chart per metric group. Without --run, "
        "compares the starter model with the models the config chooses (or runs one when they are the same).",
        epilog="Example: workshop eval --run starter --run mine=educator:models/educator.gguf,"
        "poet:models/poet.gguf --limit 5 --compare data/eval/20260101-120000/report.json",
    )
    p.add_argument("--run", action="append", metavar="LABEL=educator:PATH,poet:PATH",
                   help="a configuration to evaluate (repeat for several); LABEL=PATH uses one file for both "
                   "roles; `starter` and `current` name the starter model and the configured models")
    p.add_argument("--limit", type=positive_int("--limit"), metavar="N",
                   help="only the first N items of each kind (default: the whole set)")
    p.add_argument("--seed", type=int, metavar="N", help="sampling seed (default: the config's runtime seed)")
    p.add_argument("--max-tokens", type=positive_int("--max-tokens"), metavar="N",
                   help="cap every generation at N tokens (default: the config's limits); keeps quick runs quick")
    p.add_argument("--judge", action="store_true",
                   help="also ask Claude to compare the first configuration with each other one, item by item, "
                   "in both orders (needs ANTHROPIC_API_KEY)")
    p.add_argument("--judge-model", metavar="M", help="Claude model for --judge (default: the generation config's)")
    p.add_argument("--judge-max-cost", type=dollars("--judge-max-cost"), metavar="USD",
                   help="spend at most this on the judge in this eval (default: [judge] max_cost in "
                   "config/generation.toml); a call that could pass it is not made")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="folder for the report (default: data/eval/<date-time>/)")
    p.add_argument("--compare", metavar="REPORT.json", type=Path,
                   help="an earlier report.json: the report adds what moved since then")
    p.add_argument("--set", dest="eval_set", metavar="PATH", type=Path,
                   help="another eval set file (default: eval/set_v1.toml)")
    add_config(p)
    return p


def cmd_eval(args) -> int:
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.errors import ExitCode
    from poetry_workshop.evaluation import run_eval
    from poetry_workshop.evaluation.configurations import choose_configurations
    from poetry_workshop.evaluation.report import table

    settings = load_settings(getattr(args, "config", None))
    configurations = choose_configurations(settings, args.run)
    if args.judge and len(configurations) < 2:
        print("note: --judge compares two configurations; with one there is nothing to judge", file=sys.stderr)

    def progress(event) -> None:
        print(f"· {event.text}", file=sys.stderr, flush=True)

    report = run_eval(settings, configurations, limit=args.limit, judge=args.judge, out_dir=args.out,
                      compare=args.compare, on_progress=progress, seed=args.seed, max_tokens=args.max_tokens,
                      judge_model=args.judge_model, eval_set_path=args.eval_set,
                      judge_max_cost=args.judge_max_cost)
    print(table(report))
    for pair in report.judge or []:
        agreement = "n/a" if pair["agreement"] is None else f"{pair['agreement']:.0%}"
        bias = "; position bias detected" if pair["position_bias"] else ""
        print(f"judge {pair['a']} vs {pair['b']}: wins {pair['wins']}, agreement across orders {agreement}{bias}")
    if report.judge_cost:
        cost = report.judge_cost
        print(f"judge: ${cost['dollars']:.4f} for {cost['calls']} Claude calls (cap ${cost['cap']:.2f}; ledger "
              f"{cost['ledger']})" + (f"; {cost['stopped']}" if cost["stopped"] else ""), file=sys.stderr)
    for path in report.files.values():
        print(f"wrote {path}", file=sys.stderr)
    return ExitCode.OK
