"""Workflows around the trainer, the method's answers to overfitting and to merging: each a sequence of resumable
stages (training runs, image generation, dataset rewrites) recorded in the run folder's `run.json`.
"""

from __future__ import annotations

import os
import sys

from ..config import LoadedConfig


def run_workflow(loaded: LoadedConfig) -> int:
    """Run the workflow the config names; returns the exit code (a stopped training stage's own)."""
    from .anti_overfit import run_anti_overfit
    from .merge import run_merge
    from .stages import StageStopped

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    from ..errors import UserError

    if not loaded.train.saving.output_dir:
        raise UserError("output_dir is not set: the workflow's stages and run.json go there")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("workflows run in one process for now: start them with python, not with accelerate launch "
                        "on several processes")
    try:
        return {"anti_overfit": run_anti_overfit, "merge": run_merge}[loaded.train.workflow.workflow](loaded, say)
    except StageStopped as stopped:
        say("workflow stopped; run the same command again to continue where it stopped.")
        return stopped.code
