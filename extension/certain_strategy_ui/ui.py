"""The tab's widgets, one code path for gradio 3.41 (A1111 1.10), 4.x (Forge) and the standalone app: only what
those share (`gr.update`, constructor arguments, `every=` polling; no `.style()`, `gr.Box`, `_js`, `source=`).
The work is in the `*_tab.py` modules; this file only places widgets and wires them.
"""

from __future__ import annotations

from typing import Callable

import gradio as gr

from . import compare_tab, images_tab, runs_tab, similarity_tab, train_tab
from .jobs import JobRunner
from .settings import UiSettings

POLL_SECONDS = 2


def build_ui(settings: UiSettings, checkpoints: Callable[[], list[str]] = lambda: [],
             webui_model: train_tab.WebuiModel | None = None, css: str | None = None) -> gr.Blocks:
    """The Certain Strategy tab; `checkpoints`: the WebUI's checkpoint files (paths), empty standalone;
    `webui_model`: the WebUI's model to free while training (None standalone: the option is hidden)."""
    runner = JobRunner(settings.output / ".jobs", settings.toolkit, settings.python)
    presets = {p.stem: p for p in settings.presets()}
    prompt_files = compare_tab.prompt_files(settings)
    with gr.Blocks(analytics_enabled=False, title="Certain Strategy", css=css) as blocks:
        with gr.Tab("Train"):
            with gr.Row():
                model = gr.Dropdown(label="Base model (a checkpoint file)", choices=checkpoints(), value=None,
                                    allow_custom_value=True)
                dataset = gr.Textbox(label="Dataset folder (train_data_dir, holds `10_name` folders)",
                                     elem_id="certain_strategy_dataset")
                run = gr.Textbox(label="Run name (folder under the output folder)", value="my-run")
            with gr.Row():
                preset = gr.Dropdown(label="Preset", choices=list(presets), value=None)
                resume = gr.Dropdown(label="Resume from a saved state (newest first)", choices=[], value=None,
                                     elem_id="certain_strategy_resume")
                states = gr.Button("Refresh the states", elem_id="certain_strategy_states")
            toml = gr.Textbox(label="Args TOML (kohya keys; paste a forum config as it is)", lines=18,
                              elem_id="certain_strategy_toml")
            free_model = gr.Checkbox(label="Free the WebUI's model while training (reloaded when the job ends)",
                                     value=False, visible=webui_model is not None)
            with gr.Row():
                validate = gr.Button("Validate", elem_id="certain_strategy_validate")
                start = gr.Button("Start", variant="primary", elem_id="certain_strategy_start")
                stop = gr.Button("Stop", elem_id="certain_strategy_stop")
            message = gr.Textbox(label="Messages", lines=8, interactive=False, elem_id="certain_strategy_message")
            status = gr.Markdown("no training job yet", elem_id="certain_strategy_status")
            with gr.Row():
                plot = gr.HTML()
                sample = gr.Image(label="Latest sample", type="filepath", interactive=False)
            log = gr.Textbox(label="Log (last lines)", lines=10, interactive=False)

        with gr.Tab("Regularization images"):
            with gr.Row():
                reg_model = gr.Dropdown(label="Model that draws the set", choices=checkpoints(), value=None,
                                        allow_custom_value=True, elem_id="certain_strategy_reg_model")
                reg_mode = gr.Radio(label="Mode", choices=list(images_tab.MODES), value=images_tab.MODES[0])
                reg_name = gr.Textbox(label="Set name (folder under reg_images/, e.g. 1_girl)", value="1_words",
                                      elem_id="certain_strategy_reg_name")
            reg_source = gr.Textbox(label="Word list (tag CSV, `word count` file or dataset folder) or class prompt",
                                    elem_id="certain_strategy_reg_source")
            with gr.Row():
                reg_count = gr.Number(label="Images in the set", value=200, precision=0,
                                      elem_id="certain_strategy_reg_count")
                reg_steps = gr.Number(label="Steps", value=28, precision=0, elem_id="certain_strategy_reg_steps")
                reg_sampler = gr.Dropdown(label="Sampler", choices=list(images_tab.SAMPLERS), value="Euler a")
                reg_cfg = gr.Number(label="CFG scale", value=7)
                reg_seed = gr.Number(label="Seed (a set resumes with its own)", value=1, precision=0)
                reg_width = gr.Number(label="Width", value=512, precision=0, elem_id="certain_strategy_reg_width")
                reg_height = gr.Number(label="Height", value=512, precision=0, elem_id="certain_strategy_reg_height")
            reg_negative = gr.Textbox(label="Negative prompt")
            with gr.Row():
                reg_start = gr.Button("Generate", variant="primary", elem_id="certain_strategy_reg_start")
                reg_stop = gr.Button("Stop")
            reg_message = gr.Textbox(label="Messages", lines=3, interactive=False)
            reg_status = gr.Markdown("no regularization images job yet", elem_id="certain_strategy_reg_status")
            reg_gallery = gr.Gallery(label="Newest images of the set", columns=8, height=420)
            reg_log = gr.Textbox(label="Log (last lines)", lines=6, interactive=False)

        with gr.Tab("Similarity"):
            with gr.Row():
                sim_base = gr.Dropdown(label="Base model", choices=checkpoints(), value=None, allow_custom_value=True)
                sim_others = gr.Dropdown(label="Models to compare with it", choices=checkpoints(), value=[],
                                         multiselect=True)
            sim_paths = gr.Textbox(label="More models, one path per line (the first is the base when none is chosen)",
                                   lines=3,
                                   elem_id="certain_strategy_sim_paths")
            sim_go = gr.Button("Compare", variant="primary", elem_id="certain_strategy_sim_go")
            sim_message = gr.Textbox(label="Messages", lines=2, interactive=False)
            sim_status = gr.Markdown()
            sim_table = gr.Markdown(elem_id="certain_strategy_sim_table")
            sim_blocks = gr.Markdown()
            sim_heatmap = gr.Image(label="Heatmap", type="filepath", interactive=False)

        with gr.Tab("Compare"):
            with gr.Row():
                cmp_models = gr.Dropdown(label="Models (the grid's columns)", choices=checkpoints(), value=[],
                                         multiselect=True)
                cmp_name = gr.Textbox(label="Comparison name (folder under compare/)", value="comparison",
                                      elem_id="certain_strategy_cmp_name")
            cmp_paths = gr.Textbox(label="More models, one path per line", lines=2,
                                   elem_id="certain_strategy_cmp_paths")
            with gr.Row():
                cmp_file = gr.Dropdown(label="Prompt file", choices=list(prompt_files),
                                       value=next(iter(prompt_files), None))
                cmp_size = gr.Textbox(label="Size override (WxH, quick looks; empty: each prompt's)",
                                      elem_id="certain_strategy_cmp_size")
                cmp_steps = gr.Textbox(label="Steps override (empty: each prompt's)",
                                       elem_id="certain_strategy_cmp_steps")
            cmp_prompts = gr.Textbox(label="Prompts: infotext blocks separated by blank lines (A1111 settings each)",
                                     lines=12, value=next((p.read_text(encoding="utf-8") for p in
                                                           prompt_files.values()), ""),
                                     elem_id="certain_strategy_cmp_prompts")
            with gr.Row():
                cmp_start = gr.Button("Generate the grid", variant="primary", elem_id="certain_strategy_cmp_start")
                cmp_stop = gr.Button("Stop")
            cmp_message = gr.Textbox(label="Messages", lines=3, interactive=False)
            cmp_status = gr.Markdown("no comparison yet", elem_id="certain_strategy_cmp_status")
            cmp_grid = gr.Image(label="Grid (rows: prompts, columns: models)", type="filepath", interactive=False)
            cmp_log = gr.Textbox(label="Log (last lines)", lines=6, interactive=False)

        with gr.Tab("Runs"):
            with gr.Row():
                past = gr.Dropdown(label="Run", choices=runs_tab.list_runs(settings), value=None,
                                   elem_id="certain_strategy_runs")
                refresh = gr.Button("Refresh the list", elem_id="certain_strategy_runs_refresh")
            report = gr.Markdown()
            report_plot = gr.Image(label="Report", type="filepath", interactive=False)
            run_toml = gr.Textbox(label="The run's TOML (copy it into a new run)", lines=12, interactive=False)

        # ---- wiring ----------------------------------------------------------------------------------------
        def paths(chosen, typed) -> list[str]:
            return [*(chosen or []), *(line.strip() for line in (typed or "").splitlines() if line.strip())]

        fields = [toml, run, model, dataset, resume]

        def form(toml_text, run_name, model_path, dataset_dir, state) -> train_tab.Form:
            return train_tab.Form(toml_text or "", run_name or "", model_path or "", dataset_dir or "", state or "")

        preset.change(lambda name: presets[name].read_text(encoding="utf-8") if name in presets else gr.update(),
                      inputs=[preset], outputs=[toml])
        for event in (run.change, states.click):
            event(lambda name: gr.update(choices=train_tab.resume_choices(settings, name or ""), value=None),
                  inputs=[run], outputs=[resume])
        validate.click(lambda *values: train_tab.validate(settings, form(*values)), inputs=fields, outputs=[message])
        start.click(lambda free, *values: train_tab.start(runner, settings, form(*values),
                                                          webui_model if free else None),
                    inputs=[free_model, *fields], outputs=[message])
        def stopper(kind: str) -> Callable[[], str]:
            return lambda: runner.stop_current(kind)

        for button, output, kind in ((stop, message, train_tab.KIND), (reg_stop, reg_message, images_tab.KIND),
                                     (cmp_stop, cmp_message, compare_tab.KIND)):
            button.click(stopper(kind), inputs=[], outputs=[output])

        reg_fields = [reg_model, reg_mode, reg_source, reg_count, reg_name, reg_negative, reg_steps, reg_sampler,
                      reg_cfg, reg_seed, reg_width, reg_height]
        reg_start.click(lambda *values: images_tab.start(runner, settings, images_tab.ImagesForm(
            *(v if v is not None else "" for v in values))), inputs=reg_fields, outputs=[reg_message])

        sim_go.click(lambda base, others, typed: similarity_tab.start(runner, settings, base or "",
                                                                      paths(others, typed)),
                     inputs=[sim_base, sim_others, sim_paths], outputs=[sim_message])

        cmp_file.change(lambda name: prompt_files[name].read_text(encoding="utf-8") if name in prompt_files
                        else gr.update(), inputs=[cmp_file], outputs=[cmp_prompts])
        cmp_start.click(lambda chosen, typed, prompts, name, size, steps: compare_tab.start(
            runner, settings, compare_tab.CompareForm(paths(chosen, typed), prompts or "", name or "", size or "",
                                                      steps or "")),
            inputs=[cmp_models, cmp_paths, cmp_prompts, cmp_name, cmp_size, cmp_steps], outputs=[cmp_message])

        past.change(lambda name: runs_tab.run_details(settings, name or ""), inputs=[past],
                    outputs=[report, report_plot, run_toml])
        refresh.click(lambda: gr.update(choices=runs_tab.list_runs(settings)), inputs=[], outputs=[past])

        def poll():
            """Every tab's view; one that fails (a file replaced while read) shows its error, not the others'."""
            views = ((lambda: train_tab.view(runner)[:4], 4), (lambda: images_tab.view(runner), 3),
                     (lambda: compare_tab.view(runner), 3), (lambda: similarity_tab.view(runner, settings), 4))
            shown = []
            for view, count in views:
                try:
                    shown += view()
                except Exception as error:  # noqa: BLE001 - shown on the page, polled again in 2 s
                    shown += [f"could not read the job's files: {error!r}", *(gr.update() for _ in range(count - 1))]
            return tuple(shown)

        blocks.load(poll, inputs=[], outputs=[status, plot, sample, log, reg_status, reg_gallery, reg_log,
                                              cmp_status, cmp_grid, cmp_log, sim_status, sim_table, sim_blocks,
                                              sim_heatmap], every=POLL_SECONDS)

        def last_form():
            """The last training's form (a reloaded page gets back what was started), else the fields as they are."""
            form = train_tab.last_form(runner)
            return (form.toml, form.run, form.model, form.dataset) if form else tuple(gr.update() for _ in range(4))

        blocks.load(last_form, inputs=[], outputs=[toml, run, model, dataset])
    return blocks
