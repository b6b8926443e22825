"""`workshop eval`: is a trained Educator or Poet better than what came before?

A fixed, versioned set of briefs, poems and drafts (eval/set_v1.toml) runs through one or
more model configurations with fixed seeds; the outputs are measured (poet, educator and
revision metrics), optionally judged pairwise by Claude, and written as a Markdown report
with PNG charts and a JSON file of the numbers. The app and the command line call the same
`run_eval`.
"""

from poetry_workshop.evaluation.configurations import Configuration
from poetry_workshop.evaluation.report import EvalReport
from poetry_workshop.evaluation.run import EvalProgress, run_eval

__all__ = ["Configuration", "EvalProgress", "EvalReport", "run_eval"]
