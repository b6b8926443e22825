"""`modal run poetry_workshop/pipeline/build/modal_main.py`: the whole build, the Modal way.

The same chain as `workshop pipeline --backend modal`, started by Modal's own command. It
lives apart from `modal_app` so the app module (which the chain's Modal backend imports)
never imports the chain back.
"""

from __future__ import annotations

from poetry_workshop.pipeline.build import modal_app
from poetry_workshop.pipeline.build.chain import run_chain
from poetry_workshop.pipeline.build.modal_app import app  # `modal run` looks for the app in this module
from poetry_workshop.pipeline.build.plan import ChainPlan

__all__ = ["app", "main"]


@app.local_entrypoint()
def main(educator_only: bool = False, poet_only: bool = False, train_only: bool = False, num_epochs: int = 0):
    """Build the Educator and the Poet on Modal: flags as `workshop pipeline`."""
    plan = ChainPlan.from_flags(educator_only=educator_only, poet_only=poet_only, train_only=train_only,
                                epochs=num_epochs or None, backend="modal")
    # The app that `modal run` started is the one in the package module imported above.
    run_chain(plan, log=print, running=modal_app)
