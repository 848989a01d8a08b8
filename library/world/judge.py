"""Judge what a model draws: `python -m library.world.judge MODEL --json OUT [--concept "sks girl"] [--grid G.png]`.

A fixed prompt set (one attribute per prompt, every value of every attribute the world has, and the held-out
hair/background pairs the base model never saw together), fixed seeds and fixed A1111 settings; the judge's
classifier (`library.world.judge_net`, trained on the world's ground truth) reads each picture back. Per
attribute the report gives the share of pictures that show what the prompt asked for, beside the chance level:
the share a model that ignored the prompt would get by drawing the world's own frequencies. `--concept` adds
prompts for a learned concept (the quickstart's `sks girl` wears the novel star hair ornament).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

from ..errors import run_reporting_user_errors
from ..sampling.request import GenerationRequest
from .figures import ACCESSORIES, GRADIENT, INK, NOVEL_ACCESSORY, SKIN, STAR, WORLD_BACKGROUNDS, WORLD_EYES, WORLD_HAIR, WORLD_SHIRTS, by_canvas, draw_figure
from .judge_net import ATTRIBUTES, judge_figure, load_judge, read_attributes, truth, with_tag
from .sampling import HELD_OUT_PAIRS, figure_at

DEFAULT_JUDGE = Path(__file__).resolve().parents[2] / "models" / "tiny-world-judge.safetensors"
CONCEPT_HAIR = ("blue", "pink", "black")  # `--concept` also asks for the concept with these hair colours
JUDGE_CEILING_SEED = 7  # true pictures for the VAE ceiling: a judge seed it did not train on
PALETTE_TOLERANCE = 16  # a pixel is "world-coloured" when each channel is within this of a world colour


@dataclass(frozen=True)
class JudgePrompt:
    prompt: str
    asked: tuple[tuple[str, str], ...]  # (attribute, tag) pairs the picture should show
    group: str  # "attributes", "held-out pairs" or "concept"


@dataclass(frozen=True)
class JudgeSettings:
    """How every picture is made: `picture` holds the A1111 settings (its prompt and seed are replaced), `seeds`
    pictures per prompt with seeds first_seed, first_seed + 1, ... The report repeats them."""

    picture: GenerationRequest = GenerationRequest(prompt="", width=128, height=128, steps=20, cfg_scale=7.0,
                                                   sampler="euler_a", clip_skip=1)
    seeds: int = 4
    first_seed: int = 1000

    def requests(self, prompts: Sequence[JudgePrompt]) -> list[GenerationRequest]:
        return [replace(self.picture, prompt=p.prompt, seed=self.first_seed, n_images=self.seeds) for p in prompts]

    def describe(self) -> dict[str, object]:
        picture = {k: v for k, v in asdict(self.picture).items() if k not in ("prompt", "seed", "n_images")}
        return {**picture, "seeds": self.seeds, "first_seed": self.first_seed}


def prompt_set(concept: str | None = None) -> list[JudgePrompt]:
    prompts = [JudgePrompt(f"1girl, solo, {tag}", ((name, tag),), "attributes")
               for name, values in ATTRIBUTES.items() for tag in values
               if tag not in ("no accessory", NOVEL_ACCESSORY)]
    prompts += [JudgePrompt(f"1girl, solo, {hair} hair, {background} background",
                            (("hair", f"{hair} hair"), ("background", f"{background} background")), "held-out pairs")
                for hair, background in HELD_OUT_PAIRS]
    if concept:
        asked_star = ("accessory", NOVEL_ACCESSORY)
        prompts.append(JudgePrompt(f"{concept}, 1girl, solo", (asked_star,), "concept"))
        prompts += [JudgePrompt(f"{concept}, 1girl, solo, {hair} hair", (asked_star, ("hair", f"{hair} hair")), "concept")
                    for hair in CONCEPT_HAIR]
    return prompts


def world_frequencies(count: int = 20_000, seed: int = 0) -> dict[str, dict[str, float]]:
    """How often each tag of each attribute is drawn in the pretraining world: what chance means here."""
    counts: dict[str, Counter] = {name: Counter() for name in ATTRIBUTES}
    for index in range(count):
        for name, tag in truth(figure_at(seed, index)).items():
            counts[name][tag] += 1
    return {name: {tag: counts[name][tag] / count for tag in values} for name, values in ATTRIBUTES.items()}


def world_palette():
    """Every flat colour a world picture can hold, and the gradient's colours every 1/32 of the way."""
    import numpy as np

    colours = [*WORLD_HAIR.values(), *WORLD_EYES.values(), *WORLD_SHIRTS.values(), *WORLD_BACKGROUNDS.values(),
               *ACCESSORIES.values(), SKIN, INK, STAR]
    top, bottom = (np.array(c, dtype=float) for c in GRADIENT)
    colours += [tuple(top + (bottom - top) * t) for t in np.linspace(0, 1, 33)]
    return np.array(colours, dtype=float)


def palette_share(images) -> float:
    """Mean share of pixels within PALETTE_TOLERANCE of a world colour: about 1 for the world's flat drawings,
    low for noise (the "looks like the world" figure)."""
    import numpy as np

    palette = world_palette()
    shares = []
    for image in images:
        pixels = np.asarray(image.convert("RGB").resize((64, 64)), dtype=float).reshape(-1, 1, 3)
        near = (np.abs(pixels - palette[None]).max(axis=2) <= PALETTE_TOLERANCE).any(axis=1)
        shares.append(float(near.mean()))
    return sum(shares) / len(shares)


def score(prompts: list[JudgePrompt], seen: list[dict[str, str]], settings: JudgeSettings,
          frequencies: dict[str, dict[str, float]]) -> dict[str, object]:
    """Per group and attribute: pictures, share showing what was asked, chance. `seen` is per picture, in order."""
    report: dict[str, dict[str, dict[str, float]]] = {}
    for index, item in enumerate(prompts):
        pictures = seen[index * settings.seeds:(index + 1) * settings.seeds]
        if item.group == "attributes":
            (name, tag), = item.asked
            keys = [(name, [picture[name] == tag for picture in pictures], frequencies[name][tag])]
        else:
            chance = 1.0
            for name, tag in item.asked:
                chance *= frequencies[name][tag] if tag != NOVEL_ACCESSORY else 0.0
            label = " + ".join(name for name, _ in item.asked)
            keys = [(label, [all(p[n] == t for n, t in item.asked) for p in pictures], chance)]
        for key, hits, chance in keys:
            entry = report.setdefault(item.group, {}).setdefault(key, {"pictures": 0, "hits": 0, "chance_sum": 0.0})
            entry["pictures"] += len(hits)
            entry["hits"] += sum(hits)
            entry["chance_sum"] += chance * len(hits)
    return {group: {key: {"pictures": e["pictures"], "shown": round(e["hits"] / e["pictures"], 4),
                          "chance": round(e["chance_sum"] / e["pictures"], 4)} for key, e in entries.items()}
            for group, entries in report.items()}


def judge_model(model_path: str | Path, judge_path: str | Path = DEFAULT_JUDGE, settings: JudgeSettings = JudgeSettings(),
                concept: str | None = None, device: str | None = None, progress: bool = True,
                attributes: Sequence[str] | None = None):
    """Generate the prompt set with `model_path` and score it; returns (report, prompts, images).
    `attributes`: ask only about these and the concept (a quick check, without the VAE ceiling); None asks about
    all, with the held-out pairs."""
    from ..generation.txt2img import open_model, pick_device
    from ..models.hashes import file_sha256
    from ..sampling.generate import generate

    net = load_judge(Path(judge_path))
    model = open_model(str(model_path), None)
    prompts = prompt_set(concept)
    if attributes is not None:
        prompts = [p for p in prompts if p.group == "concept" or p.group == "attributes" and p.asked[0][0] in attributes]
    images = [r.image for r in generate(model, settings.requests(prompts), device=pick_device(device), batch_size=16,
                                        progress=progress)]
    seen = read_attributes(net, images)
    real = [draw_figure(figure_at(0, i)) for i in range(48)]
    ceiling = vae_ceiling(model, net) if attributes is None else {}
    report = {
        "model": str(model_path),
        "model_sha256": file_sha256(Path(model_path)) if Path(model_path).is_file() else None,
        "settings": settings.describe(),
        "judge_accuracy_on_world": net.accuracy_on_world,
        **score(prompts, seen, settings, world_frequencies()),
        "vae ceiling": {name: round(share, 4) for name, share in ceiling.items()},
        "looks like the world": {"palette share": round(palette_share(images), 4),
                                 "palette share of true world pictures": round(palette_share(real), 4)},
    }
    return report, prompts, images


def vae_ceiling(model, net, per_value: int = 4) -> dict[str, float]:
    """Per attribute, the share of true world pictures the judge still reads right once the model's VAE has
    encoded and decoded them, every value weighted alike as in the prompt set: about the most the model's pictures
    can show through its VAE (a tiny VAE loses small things, such as the eyes' colour)."""
    import torch

    from ..data.pixels import to_batch
    from ..sampling.decode import decode_latents, to_pil

    vae = model.vae.eval()
    weight = next(vae.parameters())
    asked = [(name, tag) for name, values in ATTRIBUTES.items() for tag in values for _ in range(per_value)]
    figs = [with_tag(judge_figure(JUDGE_CEILING_SEED, index), name, tag) for index, (name, tag) in enumerate(asked)]
    pictures = [None] * len(figs)
    with torch.no_grad():
        for indices in by_canvas(figs).values():
            pixels = to_batch([draw_figure(figs[i]) for i in indices]).to(device=weight.device, dtype=weight.dtype)
            latents = vae.encode(pixels).latent_dist.mean.float() * vae.config.scaling_factor
            for i, picture in zip(indices, to_pil(decode_latents(vae, latents))):
                pictures[i] = picture
    seen = read_attributes(net, pictures)
    right: dict[str, list[bool]] = {name: [] for name in ATTRIBUTES}
    for (name, tag), picture in zip(asked, seen):
        right[name].append(picture[name] == tag)
    return {name: sum(hits) / len(hits) for name, hits in right.items()}


def write_grid(path: Path, prompts: list[JudgePrompt], images, seeds: int) -> None:
    """One row per prompt, one column per seed, the prompt's asked tags as the label of its first picture."""
    from ..sample_data import write_png
    from ..sampling.grid import make_grid

    labels = [", ".join(tag for _, tag in p.asked) if k == 0 else "" for p in prompts for k in range(seeds)]
    write_png(path, make_grid(images, rows=len(prompts), cols=seeds, labels=labels))


def main(argv: list[str] | None = None) -> int:
    defaults = JudgeSettings()
    parser = argparse.ArgumentParser(prog="python -m library.world.judge", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="checkpoint to judge (.safetensors, .ckpt or a diffusers folder)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the report")
    parser.add_argument("--judge", type=Path, default=DEFAULT_JUDGE, help=f"judge weights (default {DEFAULT_JUDGE.name})")
    parser.add_argument("--concept", default=None, help='also ask for a learned concept, e.g. "sks girl"')
    parser.add_argument("--grid", type=Path, default=None, help="also write every picture as a labelled grid PNG")
    parser.add_argument("--seeds", type=int, default=defaults.seeds, help="pictures per prompt")
    parser.add_argument("--steps", type=int, default=defaults.picture.steps)
    parser.add_argument("--clip-skip", type=int, default=defaults.picture.clip_skip)
    parser.add_argument("--cfg-scale", type=float, default=defaults.picture.cfg_scale)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    settings = JudgeSettings(replace(defaults.picture, steps=args.steps, clip_skip=args.clip_skip, cfg_scale=args.cfg_scale),
                             seeds=args.seeds)
    return run_reporting_user_errors(lambda: run(args, settings), status=1)


def run(args: argparse.Namespace, settings: JudgeSettings) -> None:
    """Judge, write the report (and grid), print the figures."""
    from ..atomic import atomic_write_text

    report, prompts, images = judge_model(args.model, args.judge, settings, args.concept, args.device)
    atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    if args.grid:
        write_grid(args.grid, prompts, images, settings.seeds)
    ceiling = report["vae ceiling"]
    for group in ("attributes", "held-out pairs", "concept"):
        for key, entry in report.get(group, {}).items():
            most = f"  VAE ceiling {ceiling[key]:6.1%}" if group == "attributes" and key in ceiling else ""
            print(f"{group:>15} {key:<22} shown {entry['shown']:6.1%}  chance {entry['chance']:6.1%}{most}  "
                  f"({entry['pictures']} pictures)")
    look = report["looks like the world"]
    print(f"palette share {look['palette share']:.1%} (true world pictures {look['palette share of true world pictures']:.1%})")
    print(f"wrote {args.json}")

if __name__ == "__main__":
    sys.exit(main())
