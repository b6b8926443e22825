"""`workshop data ...`: the teaching-data commands' arguments and terminal output.

Like every module of the command line, this one only parses and prints; the work is in `poetry_workshop.pipeline`.
The pipeline's libraries (anthropic, pydantic, datasets) are imported only when a data
command runs, so `workshop --help` and the app stay light.
"""

from __future__ import annotations

import sys
from pathlib import Path

from poetry_workshop.cli.command import Command
from poetry_workshop.cli.options import add_config, dollars, positive_int
from poetry_workshop.errors import ExitCode
from poetry_workshop.names import ROLES, TASK_NAMES

MAX_WARNINGS_SHOWN = 20


class DataCommand(Command):
    name = "data"
    needs = "pipeline"

    def register(self, subparsers):
        return _register(subparsers)

    def run(self, args) -> int:
        from poetry_workshop import locations
        from poetry_workshop.pipeline.data_lock import hold_data_folder

        actions = {"generate": cmd_generate, "gate": cmd_gate, "prepare": cmd_prepare}
        if args.data_command == "generate" and args.estimate:
            return cmd_generate(args)  # an estimate writes nothing: it may run beside a writer
        # One writer per data folder: a second generate would pay again for the same ids.
        with hold_data_folder(locations.data_dir()) as held:
            if held.took_over:
                print(f"warning: {held.takeover_note()}", file=sys.stderr)
            return actions[args.data_command](args)


def _register(sub):
    data = sub.add_parser("data", help="build teaching data: generate with Claude (then gate and prepare)",
                          description="Teaching data for the Educator and the Poet.")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    gen = data_sub.add_parser(
        "generate", help="generate records for one task with the Claude API",
        description="Generate teaching records for TASK with the Claude API into data/annotated/TASK.jsonl. "
        "Reruns continue where the last run stopped: existing records are skipped, so the target "
        "(--limit) is reached with no duplicates. Needs ANTHROPIC_API_KEY (environment or .env); "
        "ANTHROPIC_BASE_URL points it at another endpoint.",
        epilog="Inputs: critiques, autopsies and comparisons read data/raw/good/ and data/raw/bad/ "
        "(or --from-hf); briefs sample attributes (or derive from --input poems); lessons answer "
        "persona/craft_questions.txt (or --questions); dialogues continue critiques.jsonl (or "
        "--critiques); poet-pairs write from briefs.jsonl (or --briefs).",
    )
    gen.add_argument("task", choices=TASK_NAMES, metavar="TASK", help=f"one of: {', '.join(TASK_NAMES)}")
    gen.add_argument("--limit", type=positive_int("--limit"), metavar="N",
                     help="how many accepted records the file should hold (default from config/generation.toml)")
    gen.add_argument("--output", metavar="PATH", help="records file (default data/annotated/TASK.jsonl); "
                     "rejects and the ledger go beside it")
    gen.add_argument("--model", metavar="M", help="Claude model (default from config/generation.toml)")
    gen.add_argument("--input", metavar="PATH", help="briefs: a file or folder of poems to derive briefs from")
    gen.add_argument("--questions", metavar="PATH", help="lessons: craft questions, one per line (or JSONL 'question')")
    gen.add_argument("--critiques", metavar="PATH", help="dialogues: critique records to continue")
    gen.add_argument("--briefs", metavar="PATH", help="poet-pairs: brief records to write from")
    gen.add_argument("--from-hf", metavar="NAME", help="also read poems from a Hugging Face data set "
                     "(hub name or local folder)")
    gen.add_argument("--hf-field", metavar="FIELD", default="text", help="with --from-hf: the poem field (default text)")
    gen.add_argument("--hf-split", metavar="SPLIT", default="train", help="with --from-hf: the split (default train)")
    gen.add_argument("--concurrency", type=positive_int("--concurrency"), metavar="N",
                     help="requests in flight (default from config)")
    gen.add_argument("--max-cost", type=dollars("--max-cost"), metavar="USD",
                     help="spend at most this many dollars on the records file, earlier runs included (read back "
                     "from the ledger beside it); it stops before a call that could pass it")
    gen.add_argument("--estimate", action="store_true",
                     help="print the expected tokens and dollars, then stop without generating")
    gen.add_argument("--batch-api", action="store_true",
                     help="use the Message Batches API (half price, results within 24 h); a restart resumes polling")
    add_config(gen)

    gate = data_sub.add_parser(
        "gate", help="keep the records good enough to teach from; log every rejection with its evidence",
        description="Check generated records against the quality rules (LLM-isms relative to your own poems, "
        "clichés and the machine-poem signature, form against the brief, grounded critique, focused "
        "revision, hygiene, copying, near-duplicates; thresholds in config/quality_gate.toml). Kept "
        "records go to --output; every rejection (id, rule, evidence) to --reject-log.",
    )
    gate.add_argument("input", metavar="INPUT", help="generated records, e.g. data/annotated/critiques.jsonl")
    gate.add_argument("--output", metavar="PATH", help="kept records (default data/gated/INPUT.jsonl)")
    gate.add_argument("--reject-log", metavar="PATH", help="rejections (default beside --output, .rejects.jsonl)")
    gate.add_argument("--include-older-versions", action="store_true",
                      help="also gate records made with an earlier prompt version (left out and counted by default)")
    add_config(gate)

    prep = data_sub.add_parser(
        "prepare", help="turn gated records into the Educator's and the Poet's training sets",
        description="Build data/educator_training/{train,valid}.jsonl and data/poet_training/{train,valid}.jsonl "
        "from data/gated/*.jsonl: one {\"messages\": [...]} per line in the app's own prompts, split by "
        "source poem so no poem is in both sets, every example checked to fit max_seq.",
    )
    only = prep.add_mutually_exclusive_group()
    only.add_argument("--educator-only", action="store_true", help="only the Educator's sets")
    only.add_argument("--poet-only", action="store_true", help="only the Poet's sets")
    prep.add_argument("--min-samples", type=positive_int("--min-samples"), metavar="N",
                      help="cap each training set at N examples (a quick run)")
    prep.add_argument("--seed", type=int, metavar="N", help="split seed (default: the training config's seed)")
    prep.add_argument("--include-older-versions", action="store_true",
                      help="also use gated records made with an earlier prompt version (left out and counted "
                      "by default, so records from before a persona edit never mix in unasked)")
    add_config(prep)
    return data


class GenerationBar:
    """Progress of a generation run on stderr: a live bar on a terminal, a line per tenth otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.live = stream.isatty()
        self._bar = None
        self._last_tenth = -1

    def __enter__(self) -> GenerationBar:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[counts]}"), TimeRemainingColumn(),
                                 console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._id = self._bar.add_task("generating", total=None, counts="")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, event) -> None:
        counts = f"✓{event.accepted} ✗{event.rejected} !{event.failed} ${event.dollars:.4f}"
        if self._bar is not None:
            self._bar.update(self._id, description=event.task, completed=event.accepted, total=event.total,
                             counts=counts)
            if event.note:
                self._bar.console.print(f"· {event.note}")
            return
        tenth = int(10 * event.accepted / event.total) if event.total else 0
        if event.note or tenth != self._last_tenth:
            self._last_tenth = tenth
            note = f" · {event.note}" if event.note else ""
            print(f"{event.task}: {event.accepted}/{event.total} accepted, {event.rejected} rejected, "
                  f"{event.failed} failed, ${event.dollars:.4f}{note}", file=self.stream, flush=True)


class _Warnings:
    """Warnings printed as they come, the first MAX_WARNINGS_SHOWN in full, then a count."""

    def __init__(self):
        self.count = 0

    def __call__(self, line: str) -> None:
        self.count += 1
        if self.count <= MAX_WARNINGS_SHOWN:
            print(f"warning: {line}", file=sys.stderr)
        elif self.count == MAX_WARNINGS_SHOWN + 1:
            print("warning: … and more like these (not shown)", file=sys.stderr)


def _warn_all(warnings: list[str]) -> None:
    for line in warnings[:MAX_WARNINGS_SHOWN]:
        print(f"warning: {line}", file=sys.stderr)
    if len(warnings) > MAX_WARNINGS_SHOWN:
        print(f"warning: … and {len(warnings) - MAX_WARNINGS_SHOWN} more like these", file=sys.stderr)


def cmd_generate(args) -> int:
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.claude.ledger import format_summary
    from poetry_workshop.pipeline.data.generation import GenerateOptions, TeachingDataRun

    def path(value):
        return Path(value).expanduser() if value else None

    options = GenerateOptions(
        task=args.task, limit=args.limit, output=path(args.output), model=args.model,
        concurrency=args.concurrency, max_cost=args.max_cost, batch_api=args.batch_api,
        input=path(args.input), questions=path(args.questions), critiques=path(args.critiques),
        briefs=path(args.briefs), from_hf=args.from_hf, hf_field=args.hf_field, hf_split=args.hf_split,
    )
    settings = load_settings(args.config)
    bar = GenerationBar()
    run = TeachingDataRun(settings, options, on_progress=bar)
    r = run.poem_report
    if r.files:
        print(f"poems: {r.poems} read from {r.files} file(s); {r.skipped} skipped with a warning, "
              f"{r.duplicates} duplicate(s) dropped", file=sys.stderr)
    coverage = run.brief_coverage()
    if coverage:
        print(f"brief attributes (seed {run.gen.seed}): {coverage}", file=sys.stderr)

    if args.estimate:
        _warn_all(run.warnings)
        e = run.estimate()
        print(f"estimate for {e.calls} {e.task} call(s) with {e.model} "
              f"(prices as of {e.prices_as_of}; {e.existing} of {e.target} records exist):")
        print(f"  input   ~{e.input_tokens:,} tokens ({e.prefix_tokens:,}-token shared prefix, cached "
              f"after the first calls; ~{e.mean_item_tokens:,} per item), counted by {e.counted_by}")
        print(f"  output  ~{e.output_tokens:,} tokens (typical length from config)")
        print(f"  cost    ~${e.dollars:.2f} online, ~${e.dollars_batch_api:.2f} with --batch-api")
        print(f"  prices  {e.prices}")
        if e.spent_before:
            print(f"  spent   ${e.spent_before:.4f} on {run.output.name} by earlier runs (from {run.ledger_path})")
        if e.cap is not None:
            print(f"  cap     ${e.cap:.2f} for {run.output.name}, ${max(0.0, e.cap - e.spent_before):.4f} left")
        print("nothing was generated and nothing was spent")
        return ExitCode.OK

    with bar:
        report = run.run()
    _warn_all(report.warnings)
    if report.totals:
        print(format_summary(report.totals))
    print(f"{report.task}: {report.existing + report.accepted} of {report.target} records in {report.output} "
          f"({report.accepted} new, {report.rejected} rejected, {report.failed} failed, ${report.dollars:.4f}); "
          f"rejects in {report.rejects.name}, costs in {report.ledger}", file=sys.stderr)
    if report.spent_before:
        print(f"{report.task}: ${report.spent_before + report.dollars:.4f} spent on {report.output.name} in all "
              f"(${report.spent_before:.4f} by earlier runs + ${report.dollars:.4f} in this one)", file=sys.stderr)
    if report.stopped:
        print(f"{report.task}: {report.stopped}", file=sys.stderr)
    reached = report.existing + report.accepted >= report.target
    return ExitCode.OK if reached or (report.capped and report.failed == 0) else ExitCode.FAILED


def cmd_gate(args) -> int:
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.gate.run import format_table, gate_file

    def path(value):
        return Path(value).expanduser() if value else None

    settings = load_settings(args.config)
    run = gate_file(settings, Path(args.input).expanduser(), path(args.output), path(args.reject_log),
                    warn=_Warnings(), include_older_versions=args.include_older_versions)
    print(format_table(run.report))
    print(f"gate: kept {run.report.kept} of {run.report.seen} records in {run.output}; "
          f"{run.report.rejected} rejected, reasons in {run.reject_log}; LLM-ism baseline "
          f"{run.baseline:.1f} per 1,000 words from {run.baseline_source}", file=sys.stderr)
    return ExitCode.OK


def cmd_prepare(args) -> int:
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.training.training_sets import prepare

    roles = ["educator"] if args.educator_only else ["poet"] if args.poet_only else list(ROLES)
    settings = load_settings(args.config)
    run = prepare(settings, roles, args.min_samples, args.seed, warn=_Warnings(),
                  include_older_versions=args.include_older_versions)
    for role in run.skipped:
        print(f"prepare: no {role} examples in the gated records; its sets were not written", file=sys.stderr)
    for report in run.reports:
        if report.token_note:
            print(f"warning: {report.token_note}", file=sys.stderr)
        print(f"{report.role}: {report.paths['train']} and {report.paths['valid'].name}")
        print("\n".join(report.table()))
    return ExitCode.OK
