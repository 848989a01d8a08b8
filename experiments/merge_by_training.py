"""Does merge by training keep both teachers' traits, and drift less than a weight merge? On the tiny world:

    python -m experiments.merge_by_training OUT            # about 15 minutes on 2 CPU cores
    python -m experiments.merge_by_training OUT --quick    # the same at CI size (the tests run it), no figures to read

Two teachers are fine-tuned from the tiny world base toward different traits: `sks girl` wears the star hair ornament
(in no picture the base learned from) and `zzz girl` has green hair and a hat; neither trait is named in a caption.
Then the teachers are merged by training (`workflow = "merge"`) with weights 0.5 / 0.5 (fixed shares) and 0.7 / 0.3
(`ratio = "auto"`), each beside the plain weight merge with the same weights, and every model is measured alike:
- **star**: the share of `sks girl` pictures in which the judge reads the star;
- **green + hat**: the share of `zzz girl` pictures with green hair and a hat;
- **drift**: the behaviour distance to the base on world words that name neither trait (the drift meter's measure);
- **to A / to B**: the behaviour distance to each teacher over the two concepts and those words;
- **coordinates**: where the model's behaviour lies among the teachers' (`merge_coordinates`; for teachers near
  each other a weight merge lies at its weights).
Writes `OUT/results.json` and `OUT/results.md`; the runs stay in `OUT/` (a rerun reuses what is done).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "models" / "tiny-world-sd1.safetensors"
CONCEPT_WORDS = {"sks girl": 20, "zzz girl": 20}
OTHER_WORDS = ("1girl", "long hair", "short hair", "blue hair", "red hair", "blonde hair", "black hair", "smile",
               "closed mouth", "blue eyes", "white shirt", "hair bow", "glasses", "white background",
               "blue background", "pink background")  # name neither trait: the drift words
COMMON = ["--seed", "1", "--max_data_loader_n_workers", "0", "--cache_latents", "--clip_skip", "2",
          "--stop_text_encoder_training", "-1"]


@dataclass(frozen=True)
class Size:
    """How large each part is: the full experiment, or `QUICK` for CI."""

    pictures: int = 24  # per teacher, and the own data's
    resolution: int = 128
    batch: int = 4
    teacher_steps: int = 150
    student_epochs: int = 24
    teacher_share: float = 2.0  # teacher pictures per own picture: the student sees each concept about as often
    sampling_steps: int = 20  # of the teachers' pictures
    judge_seeds: int = 16
    probe_words: int = 16  # of the behaviour distances (drift meter, shares, report), from each word list
    learning_rate: str = "3e-4"


QUICK = Size(pictures=6, resolution=64, batch=2, teacher_steps=6, student_epochs=3, teacher_share=1.0,
             sampling_steps=4, judge_seeds=1, probe_words=3)
TEACHERS = (("A", 7, "sks girl", {"accessory": "star hair ornament"}),
            ("B", 8, "zzz girl", {"hair": "green", "accessory": "hat"}))
MERGES = (("fixed", (0.5, 0.5), "weights"), ("auto", (0.7, 0.3), "auto"))


def write_pictures(folder: Path, seed: int, count: int, concept: str | None = None, **traits) -> Path:
    """World figures with `traits` forced; captioned with their tags, the concept's first and the traits' left out
    (so the concept word must carry them, as the quickstart's `sks` does)."""
    from library.world.figures import draw_figure, tags
    from library.world.sampling import figure_at

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        fig = replace(figure_at(seed, i), **traits)
        plain = set(tags(replace(fig, **{k: getattr(figure_at(seed, i), k) for k in traits})))
        kept = [t for t in tags(fig) if t in plain or not traits]
        draw_figure(fig).save(folder / f"{i:03d}.png")
        (folder / f"{i:03d}.txt").write_text(", ".join(([concept] if concept else []) + kept), encoding="utf-8")
    return folder


def dataset_toml(path: Path, folder: Path, size: Size, extra: str = "") -> Path:
    path.write_text(f'[general]\ncaption_extension = ".txt"\n[[datasets]]\nresolution = {size.resolution}\n'
                    f'batch_size = {size.batch}\n{extra}  [[datasets.subsets]]\n  image_dir = "{folder.as_posix()}"\n',
                    encoding="utf-8")
    return path


def train(args: list[str]) -> None:
    import train_certain

    code = train_certain.main(args)
    if code != 0:
        raise SystemExit(f"training stopped with exit code {code}: {' '.join(args)}")


def make_teachers(out: Path, size: Size) -> list[Path]:
    teachers = []
    for name, seed, concept, traits in TEACHERS:
        folder = write_pictures(out / "data" / name, seed, size.pictures, concept, **traits)
        model = out / f"teacher-{name}" / f"{name}.safetensors"
        if not model.is_file():
            train(["--pretrained_model_name_or_path", str(BASE), "--dataset_config",
                   str(dataset_toml(out / "data" / f"{name}.toml", folder, size)), "--output_dir", str(model.parent),
                   "--output_name", name, "--max_train_steps", str(size.teacher_steps), "--learning_rate",
                   size.learning_rate, *COMMON])
        teachers.append(model)
    return teachers


def merge_args(out: Path, teachers: list[Path], size: Size, name: str, weights: tuple[float, ...], ratio: str
               ) -> list[str]:
    # Nothing held out: the base already draws the world best, so a validation loss on world pictures rises from
    # the first step whatever the teachers teach, and would stop the student before its first checkpoint.
    own = dataset_toml(out / "data" / "own.toml", write_pictures(out / "data" / "own", 5, size.pictures), size)
    words = out / "words.txt"
    words.write_text("".join(f"{w}\t{c}\n" for w, c in {**CONCEPT_WORDS, **dict.fromkeys(OTHER_WORDS, 5)}.items()),
                     encoding="utf-8")
    return ["--pretrained_model_name_or_path", str(BASE), "--dataset_config", str(own), "--output_dir",
            str(out / name), "--max_train_epochs", str(size.student_epochs), "--learning_rate", size.learning_rate,
            "--progress_jsonl", "progress.jsonl", *COMMON, "--reg_steps", str(size.sampling_steps),
            "--drift_word_count", str(size.probe_words), "--workflow_teacher_share", str(size.teacher_share),
            "--workflow", "merge", "--workflow_teachers", *map(str, teachers), "--workflow_weights",
            *map(str, weights), "--workflow_ratio", ratio, "--workflow_word_list", str(words)]


def trait_shares(model: Path, size: Size) -> dict[str, float]:
    """The share of `sks girl` pictures with the star and of `zzz girl` pictures with green hair and a hat."""
    from library.generation.txt2img import open_model
    from library.sampling.generate import generate
    from library.world.judge import DEFAULT_JUDGE, JudgeSettings
    from library.world.judge_net import load_judge, read_attributes

    net, picture = load_judge(DEFAULT_JUDGE), JudgeSettings().picture
    loaded = open_model(str(model), None)
    shares = {}
    for concept, wanted in (("sks girl", {"accessory": "star hair ornament"}),
                            ("zzz girl", {"hair": "green hair", "accessory": "hat"})):
        request = replace(picture, prompt=f"{concept}, 1girl, solo", seed=1000, n_images=size.judge_seeds)
        seen = read_attributes(net, [r.image for r in generate(loaded, [request], batch_size=16)])
        shares[concept] = sum(all(s[k] == v for k, v in wanted.items()) for s in seen) / len(seen)
    return shares


def behaviour(models: dict[str, Path], teachers: list[Path], size: Size) -> dict[str, dict[str, float]]:
    """Per model: drift from the base on the other words, distance to each teacher on the concepts and those."""
    from library.models.sd_model import load_model
    from library.similarity.behaviour import ProbeInputs, drift_of, predictions
    from library.workflows.teacher_mix import merge_coordinates

    words = OTHER_WORDS[:size.probe_words]
    every = ProbeInputs.make([*CONCEPT_WORDS, *words], (16, 16))
    other = ProbeInputs.make(words, (16, 16))
    made = {}
    for path in {BASE, *teachers, *models.values()}:
        model = load_model(path)
        made[path] = (predictions(model, every), predictions(model, other))
    return {name: {"drift": drift_of(other, made[BASE][1], made[path][1]).mean,
                   "to A": drift_of(every, made[teachers[0]][0], made[path][0]).mean,
                   "to B": drift_of(every, made[teachers[1]][0], made[path][0]).mean,
                   "coordinates": merge_coordinates(made[path][0], [made[t][0] for t in teachers])}
            for name, path in models.items()}


def run(out: Path, size: Size) -> dict:
    out = out.absolute()
    teachers = make_teachers(out, size)
    models: dict[str, Path] = {"base": BASE, "teacher A (star)": teachers[0], "teacher B (green + hat)": teachers[1]}
    histories = {}
    for name, weights, ratio in MERGES:
        train(merge_args(out, teachers, size, name, weights, ratio))
        record = json.loads((out / name / "run.json").read_text(encoding="utf-8"))
        stages = {s["name"]: s for s in record["stages"]}
        label = f"{weights[0]:.1f} / {weights[1]:.1f}"
        models[f"merge by training {label}, {ratio}"] = Path(stages["student"]["outputs"]["chosen"])
        models[f"weight merge {label}"] = Path(stages["weight_merge"]["outputs"]["model"])
        events = [json.loads(line) for line in (out / name / "student" / "progress.jsonl").read_text().splitlines()]
        histories[name] = [{"after epoch": e["after_epoch"], "shares": e["ratios"], "distances": e["distances"],
                            "coordinates": e["coordinates"]}
                           for e in events if e["event"] == "merge"]
    measured = behaviour(models, teachers, size)
    rows = [{"model": name, "file": str(path), **trait_shares(path, size), **measured[name]}
            for name, path in models.items()]
    results = {"size": vars(size), "rows": rows, "shares by epoch": histories}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    return results


def markdown(results: dict) -> str:
    seeds = results["size"]["judge_seeds"]
    lines = [f"| model | star in `sks girl` ({seeds}) | green + hat in `zzz girl` ({seeds}) | drift on other words "
             "| distance to A | distance to B | coordinates A / B |", "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['model']} | {r['sks girl']:.0%} | {r['zzz girl']:.0%} | {r['drift']:.4f} | "
                     f"{r['to A']:.4f} | {r['to B']:.4f} | {r['coordinates'][0]:.2f} / {r['coordinates'][1]:.2f} |")
    for name, history in results["shares by epoch"].items():
        lines.append(f"\n{name}: after each epoch, coordinates A/B (then the shares) " + ", ".join(
            f"{h['after epoch']}: {h['coordinates'][0]:.2f}/{h['coordinates'][1]:.2f} "
            f"({h['shares'][0]:.2f}/{h['shares'][1]:.2f})" for h in history))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder for the runs and results")
    parser.add_argument("--quick", action="store_true", help="CI size: a few steps of everything")
    args = parser.parse_args(argv)
    results = run(args.out, QUICK if args.quick else Size())
    print(markdown(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
