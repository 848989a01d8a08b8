"""Sample images during training, from a kohya prompt file, through the one shared generation function.

Files go to `<output_dir>/sample/` named as kohya does (`<name>_<e000003 | 000500>_<02 prompt>_<time>_<seed>.png`)
with an A1111 infotext, plus one labelled grid per sampling event, so progress can be seen at a glance.
The prompt file is re-read every time, so it can be edited while training runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..plugins import Callback, LoopContext, StepResult

if TYPE_CHECKING:
    from ..models.sd_model import SDModel


@dataclass
class SampleOptions:
    prompts_file: Path
    every_n_steps: int | None = None
    every_n_epochs: int | None = None  # when set, every_n_steps is ignored (kohya)
    at_first: bool = False
    sampler: str = "euler_a"
    default_size: tuple[int, int] = (512, 512)


@dataclass
class SampleImages(Callback):
    options: SampleOptions
    output_dir: Path
    output_name: str | None = None
    last_sampled_step: int | None = None

    def on_train_start(self, ctx: LoopContext) -> None:
        if self.options.at_first and ctx.global_step == 0:
            self._sample(ctx, "e000000")

    def on_step_end(self, ctx: LoopContext, result: StepResult) -> None:
        s = self.options
        if not s.every_n_epochs and s.every_n_steps and s.every_n_steps > 0 and result.step % s.every_n_steps == 0:
            self._sample(ctx, f"{result.step:06d}")

    def on_epoch_end(self, ctx: LoopContext) -> None:
        s = self.options
        if s.every_n_epochs and s.every_n_epochs > 0 and ctx.epoch % s.every_n_epochs == 0:
            self._sample(ctx, f"e{ctx.epoch:06d}")

    def on_train_end(self, ctx: LoopContext, interrupted: bool) -> None:
        """kohya samples once more at the end when the last step was not already sampled (a partial epoch)."""
        s = self.options
        if not interrupted and (s.every_n_steps or s.every_n_epochs) and self.last_sampled_step != ctx.global_step:
            self._sample(ctx, f"{ctx.global_step:06d}")

    def _sample(self, ctx: LoopContext, tag: str) -> None:
        self.last_sampled_step = ctx.global_step
        with ctx.sampling_model() as model:  # on every process, so their weights stay identical
            if ctx.is_main:
                self._write_samples(ctx, model, tag)
        ctx.wait_for_everyone()

    def _write_samples(self, ctx: LoopContext, model: SDModel, tag: str) -> None:
        from ..errors import UserError
        from ..sampling.generate import generate
        from ..sampling.grid import make_grid
        from ..sampling.infotext import ModelIdentity, save_png
        from ..sampling.sample_prompts import load_sample_prompts

        try:
            requests = load_sample_prompts(self.options.prompts_file, default_size=self.options.default_size,
                                           default_sampler=self.options.sampler)
        except UserError as e:  # a broken prompt file must not stop a long run
            ctx.log_event("note", message=f"sample images skipped: {e}")
            return
        identity = ModelIdentity(name=f"{self.output_name or 'last'}@step{ctx.global_step}")
        # The weights in memory have no file hash yet: the infotext names the run and step instead.
        images = generate(model, requests, device=ctx.device, identity=identity)
        folder = self.output_dir / "sample"
        stamp = time.strftime("%Y%m%d%H%M%S")
        prefix = f"{self.output_name}_" if self.output_name else ""
        files = []
        for index, image in enumerate(images):
            path = folder / f"{prefix}{tag}_{index:02d}_{stamp}_{image.seed}.png"
            save_png(image.image, path, image.infotext)
            files.append(str(path))
        grid = make_grid([i.image for i in images], rows=1, cols=len(images),
                         labels=[i.request.prompt[:40] for i in images])
        grid_path = folder / f"{prefix}{tag}_grid.png"
        save_png(grid, grid_path, f"step {ctx.global_step}")
        ctx.log_event("sample", step=ctx.global_step, files=files, grid=str(grid_path))
