"""The tab's widgets, one code path for gradio 3.41 (A1111 1.10), 4.x (Forge) and the standalone app: only what
those share (`gr.update`, constructor arguments, `every=` polling; no `.style()`, `gr.Box`, `_js`, `source=`).
The work is in `train_tab.py`; this file only places widgets and wires them.
"""

from __future__ import annotations

from typing import Callable

import gradio as gr

from . import runs_tab, similarity_tab, train_tab
from .jobs import JobRunner
from .settings import UiSettings

POLL_SECONDS = 2


def build_ui(settings: UiSettings, checkpoints: Callable[[], list[str]] = lambda: []) -> gr.Blocks:
    """The Certain Strategy tab; `checkpoints`: the WebUI's checkpoint files (paths), empty standalone."""
    runner = JobRunner(settings.output / ".jobs", settings.toolkit, settings.python)
    presets = {p.stem: p for p in settings.presets()}
    with gr.Blocks(analytics_enabled=False, title="Certain Strategy") as blocks:
        with gr.Tab("Train"):
            with gr.Row():
                model = gr.Dropdown(label="Base model (a checkpoint file)", choices=checkpoints(), value=None,
                                    allow_custom_value=True)
                dataset = gr.Textbox(label="Dataset folder (train_data_dir, holds `10_name` folders)")
                run = gr.Textbox(label="Run name (folder under the output folder)", value="my-run")
            with gr.Row():
                preset = gr.Dropdown(label="Preset", choices=list(presets), value=None)
                resume = gr.Dropdown(label="Resume from a saved state (newest first)", choices=[], value=None)
            toml = gr.Textbox(label="Args TOML (kohya keys; paste a forum config as it is)", lines=18,
                              elem_id="certain_strategy_toml")
            with gr.Row():
                validate = gr.Button("Validate")
                start = gr.Button("Start", variant="primary")
                stop = gr.Button("Stop")
            message = gr.Textbox(label="Messages", lines=8, interactive=False)
            status = gr.Markdown("no job yet", elem_id="certain_strategy_status")
            with gr.Row():
                plot = gr.HTML()
                sample = gr.Image(label="Latest sample", type="filepath", interactive=False)
            log = gr.Textbox(label="Log (last lines)", lines=10, interactive=False)

        with gr.Tab("Similarity"):
            with gr.Row():
                sim_base = gr.Dropdown(label="Base model", choices=checkpoints(), value=None, allow_custom_value=True)
                sim_others = gr.Dropdown(label="Models to compare with it", choices=checkpoints(), value=[],
                                         multiselect=True)
            sim_paths = gr.Textbox(label="More models, one path per line", lines=3)
            sim_go = gr.Button("Compare", variant="primary")
            sim_table = gr.Markdown()
            sim_blocks = gr.Markdown()
            sim_heatmap = gr.Image(label="Heatmap", type="filepath", interactive=False)
        sim_go.click(lambda base, others, paths: similarity_tab.compare(
            settings, base or "", [*(others or []), *(line.strip() for line in (paths or "").splitlines())]),
                     inputs=[sim_base, sim_others, sim_paths], outputs=[sim_table, sim_blocks, sim_heatmap])

        with gr.Tab("Runs"):
            with gr.Row():
                past = gr.Dropdown(label="Run", choices=runs_tab.list_runs(settings), value=None)
                refresh = gr.Button("Refresh the list")
            report = gr.Markdown()
            report_plot = gr.Image(label="Report", type="filepath", interactive=False)
            run_toml = gr.Textbox(label="The run's TOML (copy it into a new run)", lines=12, interactive=False)

        past.change(lambda name: runs_tab.run_details(settings, name or ""), inputs=[past],
                    outputs=[report, report_plot, run_toml])
        refresh.click(lambda: gr.update(choices=runs_tab.list_runs(settings)), inputs=[], outputs=[past])

        fields = [toml, run, model, dataset, resume]

        def form(toml_text, run_name, model_path, dataset_dir, state) -> train_tab.Form:
            return train_tab.Form(toml_text or "", run_name or "", model_path or "", dataset_dir or "", state or "")

        preset.change(lambda name: presets[name].read_text(encoding="utf-8") if name in presets else gr.update(),
                      inputs=[preset], outputs=[toml])
        run.change(lambda name: gr.update(choices=train_tab.resume_choices(settings, name or ""), value=None),
                   inputs=[run], outputs=[resume])
        validate.click(lambda *values: train_tab.validate(settings, form(*values)), inputs=fields, outputs=[message])
        start.click(lambda *values: train_tab.start(runner, settings, form(*values)), inputs=fields,
                    outputs=[message])
        stop.click(lambda: train_tab.stop(runner), inputs=[], outputs=[message])

        def poll():
            line, svg, image, tail, _ = train_tab.view(runner)
            return line, svg, image, tail

        blocks.load(poll, inputs=[], outputs=[status, plot, sample, log], every=POLL_SECONDS)
    return blocks
