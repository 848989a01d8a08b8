"""Merge by training end to end at CI size, by the experiment's quick variant (`experiments/merge_by_training.py
--quick`): two teachers fine-tuned from the tiny world base toward different traits (`sks girl` wears the star,
`zzz girl` has green hair and a hat), their pictures in the student's steps, the pools' reuse limit, the weight merge,
the report; and the teacher mix's bookkeeping on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import train_certain
from experiments.merge_by_training import BASE, MERGES, QUICK, merge_args, run
from library.errors import UserError
from library.models.hashes import file_sha256
from library.regularization.pregenerated import RegImage
from library.workflows.teacher_mix import (MIN_SHARE, Pool, TeacherMix, merge_coordinates, next_ratios,
                                          split_shares)

WORLD = BASE


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("merge")
    return {"out": out, "results": run(out, QUICK)}


@pytest.fixture(scope="module")
def merged(experiment) -> dict:
    """The auto run: weights 0.7 / 0.3; 6 own pictures, batch 2, 3 epochs of 3 steps."""
    out = experiment["out"]
    teachers = [out / "teacher-A" / "A.safetensors", out / "teacher-B" / "B.safetensors"]
    name, weights, ratio = MERGES[1]
    return {"run": out / name, "teachers": teachers, "args": merge_args(out, teachers, QUICK, name, weights, ratio),
            "words": out / "words.txt"}


def test_the_experiment_measures_every_model(experiment):
    rows = experiment["results"]["rows"]
    assert [r["model"] for r in rows] == ["base", "teacher A (star)", "teacher B (green + hat)",
                                          "merge by training 0.5 / 0.5, weights", "weight merge 0.5 / 0.5",
                                          "merge by training 0.7 / 0.3, auto", "weight merge 0.7 / 0.3"]
    base, a, b = rows[:3]
    assert base["drift"] == 0 and a["to A"] == 0 and b["to B"] == 0
    assert all(0 <= r[k] <= 1 for r in rows for k in ("sks girl", "zzz girl"))
    assert "| weight merge 0.7 / 0.3 |" in (experiment["out"] / "results.md").read_text(encoding="utf-8")


def test_the_student_trains_on_pictures_each_teacher_drew_from_the_word_list(merged):
    run, teachers = merged["run"], merged["teachers"]
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in record["stages"]] == ["student", "weight_merge", "report"]
    words = {line.split("\t")[0] for line in merged["words"].read_text(encoding="utf-8").splitlines()}
    for teacher, pool in zip(teachers, record["stages"][0]["outputs"]["pools"]):
        pngs = sorted(Path(pool).glob("*.png"))
        assert pngs and {p.with_suffix(".txt").read_text(encoding="utf-8").strip() for p in pngs} <= words
        assert all(f"Model hash: {file_sha256(teacher)[:10]}" in Image.open(p).info["parameters"] for p in pngs)
    # every step of the student holds teacher pictures: 2 own images a step x share 1.0, split 0.7 / 0.3 with the
    # fractions carried on (the first step gets 1.4 -> 1 and 0.6 -> 0)
    steps = [json.loads(line) for line in (merged["run"] / "student" / "progress.jsonl").read_text().splitlines()]
    trained = [e for e in steps if e["event"] == "step"]
    assert len(trained) == 9 and all("teachers" in e["losses"] for e in trained)
    assert trained[0]["samples"] == 2 + 1 and all(e["samples"] >= 3 for e in trained)
    state = json.loads((run / "student" / "student-state" / "progress.json").read_text())
    assert sum(e["samples"] - 2 for e in trained) == sum(map(sum, state["extra"]["streams"]["teachers"]["uses"]))


def test_no_teacher_picture_is_trained_on_more_than_max_reuse_times(merged):
    state = json.loads((merged["run"] / "student" / "student-state" / "progress.json").read_text())
    mix = state["extra"]["streams"]["teachers"]
    uses = mix["uses"]
    assert 9 * 2 - 2 <= sum(map(sum, uses)) <= 9 * 2  # what the credits have not yet paid out stays below 1 each
    assert max(max(u) for u in uses) <= 2  # workflow_max_reuse's default
    pools = [len(list(Path(p).glob("*.png"))) for p in
             json.loads((merged["run"] / "run.json").read_text())["stages"][0]["outputs"]["pools"]]
    assert [len(u) for u in uses] == pools  # the pools grew only as far as they were used


def test_auto_moves_the_shares_and_logs_them_each_epoch(merged):
    events = [json.loads(line) for line in (merged["run"] / "student" / "progress.jsonl").read_text().splitlines()]
    merges = [e for e in events if e["event"] == "merge"]
    assert [e["after_epoch"] for e in merges] == [0, 1, 2, 3]
    assert merges[0]["ratios"] == [0.7, 0.3]  # the weights, until the student has been measured after an epoch
    for before, after in zip(merges[:2], merges[1:3]):  # each move goes by the gap between weights and coordinates
        gap = 0.7 - after["coordinates"][0]
        assert after["ratios"][0] - before["ratios"][0] == pytest.approx(max(min(gap, 0.95 - before["ratios"][0]),
                                                                             0.05 - before["ratios"][0]))
    assert merges[3]["ratios"] == merges[2]["ratios"]  # no move after the last epoch
    assert all(len(e["distances"]) == 2 and min(e["distances"]) > 0 for e in merges)
    assert all(sum(e["coordinates"]) == pytest.approx(1) for e in merges)


def test_the_weight_merge_is_the_weighted_sum_of_the_teachers(merged):
    a, b = (load_file(str(t)) for t in merged["teachers"])
    merge = load_file(str(merged["run"] / "weight_merge.safetensors"))
    key = next(k for k in merge
               if k.startswith("model.diffusion_model.") and a[k].float().sub(b[k].float()).abs().max() > 0)
    expected = 0.7 * a[key].float() + 0.3 * b[key].float()
    assert torch.allclose(merge[key].float(), expected, atol=2e-3)


def test_the_report_measures_every_checkpoint_and_the_weight_merge_against_base_and_teachers(merged):
    run = merged["run"]
    table = json.loads((run / "merge.json").read_text(encoding="utf-8"))
    assert table["references"] == [WORLD.name, *(t.name for t in merged["teachers"])]
    saved = json.loads((run / "student" / "checkpoints.json").read_text(encoding="utf-8"))
    assert [r["model"] for r in table["models"]] == [c["path"] for c in saved["checkpoints"]] + [
        "weight_merge.safetensors"]
    assert table["chosen"] == saved["chosen"]["path"]
    weight_row = table["models"][-1]
    # the weight merge sits between the teachers, nearer the heavier one; its own distance to neither is 0
    assert 0 < weight_row["distance"][1] < weight_row["distance"][2]
    assert weight_row["similarity"][1] > weight_row["similarity"][2]
    assert weight_row["coordinates"][0] == pytest.approx(0.7, abs=0.1)  # at about its weights
    assert "| **" + table["chosen"] in (run / "merge.md").read_text(encoding="utf-8")


def test_running_it_again_trains_and_draws_nothing_new(merged, capfd):
    run = merged["run"]
    stamps = {p: p.stat().st_mtime_ns for p in (run / "pools").rglob("*.png")}
    record = (run / "run.json").read_text(encoding="utf-8")
    assert train_certain.main(merged["args"]) == 0
    assert (run / "run.json").read_text(encoding="utf-8") == record  # the stages' finish times stay
    err = capfd.readouterr().err
    assert "student: done before" in err and "steps:" not in err
    assert {p: p.stat().st_mtime_ns for p in (run / "pools").rglob("*.png")} == stamps


@pytest.mark.parametrize("change, message", [
    ({"--workflow_teachers": ["{0}"]}, "needs two or more workflow_teachers"),
    ({"--workflow_teachers": ["{0}", "{0}.missing"]}, "not found: "),
    ({"--workflow_weights": ["0.5"]}, "one weight per teacher (2)"),
])
def test_bad_teachers_or_weights_are_refused_before_anything_runs(merged, change, message, capsys, tmp_path):
    args = list(merged["args"])
    args[args.index("--output_dir") + 1] = str(tmp_path / "never")
    for flag, values in change.items():
        start = args.index(flag) + 1
        end = next(i for i in range(start, len(args)) if args[i].startswith("--"))
        args[start:end] = [v.format(merged["teachers"][0]) for v in values]
    assert train_certain.main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_a_teacher_of_another_kind_is_refused_before_anything_runs(merged, capsys, tmp_path):
    from library.models.sd_model import save_model
    from library.tiny import build_random

    sd2 = save_model(build_random("tiny-sd2", seed=1), tmp_path / "sd2.safetensors")
    args = list(merged["args"])
    args[args.index("--output_dir") + 1] = str(tmp_path / "never")
    args[args.index("--workflow_teachers") + 2] = str(sd2)
    assert train_certain.main(args) == 2
    assert f"workflow_teachers must be of the base's kind ({BASE}: sd1, " in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


# ---- the teacher mix on its own ------------------------------------------------------------------------------

def test_the_coordinates_of_a_mix_of_the_teachers_are_its_weights_whatever_drifts_off_their_plane():
    generator = torch.Generator().manual_seed(0)
    a, b, off = (torch.randn(3, 4, 8, 8, generator=generator) for _ in range(3))
    off -= (off * (a - b)).sum() / (a - b).pow(2).sum() * (a - b)  # orthogonal to the teachers' difference
    assert merge_coordinates(0.7 * a + 0.3 * b + 5 * off, [a, b]) == pytest.approx([0.7, 0.3])
    assert merge_coordinates(b, [a, b]) == pytest.approx([0.0, 1.0], abs=1e-9)
    c = torch.randn(3, 4, 8, 8, generator=generator)
    assert merge_coordinates(0.2 * a + 0.5 * b + 0.3 * c, [a, b, c]) == pytest.approx([0.2, 0.5, 0.3])


def test_next_ratios_give_more_to_the_teacher_the_student_lies_short_of():
    # equal weights; the student lies at 0.8 / 0.2: teacher 1 gets the 0.3 it lacks
    assert next_ratios([0.5, 0.5], [0.5, 0.5], [0.8, 0.2]) == pytest.approx([0.2, 0.8])
    # where the coordinates match the weights the shares stay
    assert next_ratios([0.6, 0.4], [0.75, 0.25], [0.75, 0.25]) == pytest.approx([0.6, 0.4])
    # a student far off never starves a teacher, of two or of three
    assert min(next_ratios([0.9, 0.1], [0.99, 0.01], [-1.0, 2.0])) >= MIN_SHARE - 1e-9
    three = next_ratios([0.05, 0.9, 0.05], [0.02, 0.96, 0.02], [0.3, 0.4, 0.3])
    assert min(three) >= MIN_SHARE - 1e-9 and sum(three) == pytest.approx(1)


def test_split_shares_carries_fractions_so_the_counts_add_up():
    credits, total = [0.0, 0.0], [0, 0]
    for _ in range(10):
        counts, credits = split_shares([0.7, 0.3], credits, 2.0)
        total = [t + c for t, c in zip(total, counts)]
    assert total == [14, 6]


def test_a_pool_hands_out_its_least_used_pictures_first():
    pool = Pool([RegImage(Path(f"{i}.png"), "w", i) for i in range(5)])
    first = pool.pick(3, torch.Generator().manual_seed(0), 2)
    second = pool.pick(2, torch.Generator().manual_seed(1), 2)
    assert {i.seed for i in first} | {i.seed for i in second} == set(range(5))  # fresh ones before any reuse
    assert sorted(pool.uses) == [1] * 5 and pool.room(2) == 5


class _Context:
    rank, world_size, global_step, epoch, steps_per_epoch, max_steps = 0, 1, 0, 0, 2, 100

    def log_event(self, name, **fields):
        pass


def _pictures(folder: Path, count: int) -> list[RegImage]:
    images = []
    for i in range(count):
        path = folder / f"{i}.png"
        if not path.exists():
            Image.new("RGB", (16, 16), (i % 256, 0, 0)).save(path)
        images.append(RegImage(path, f"word{i}", i))
    return images


def _mix(folder: Path, pools: list[list[RegImage]], grown: list, **changes) -> TeacherMix:
    def grow(teacher: int, count: int) -> list[RegImage]:  # a teacher that draws more pictures on demand
        grown.append((teacher, count))
        return _pictures(folder / str(teacher), count)

    for teacher in range(len(pools)):
        (folder / str(teacher)).mkdir(exist_ok=True)
    settings = dict(teachers=["a", "b"], pools=[Pool(list(p)) for p in pools], weights=[0.5, 0.5], ratios=[0.6, 0.4],
                    share=1.0, max_reuse=2, per_step=2, batch_size=2, size=(16, 16), seed=3, grow=grow, meters=[])
    return TeacherMix(**{**settings, **changes})


def test_the_pools_grow_so_that_no_picture_is_used_more_than_max_reuse_times(tmp_path):
    grown: list = []
    mix = _mix(tmp_path, [[], []], grown, share=4.0, ratios=[0.75, 0.25])  # 8 pictures a step: 6 and 2
    for step in range(9):
        if step % 2 == 0:
            mix.pending = True  # as after each epoch of 2 steps
        batches = mix.batches_for_step(_Context(), step)
        assert [len(b.captions) for b in batches] == [2] * 4  # in micro-batches of the dataset's batch size
    assert max(max(p.uses) for p in mix.pools) <= 2
    assert [sum(p.uses) for p in mix.pools] == [54, 18]
    assert grown  # the pools were drawn as they were needed


def test_a_restored_mix_draws_what_the_saved_one_would_have(tmp_path):
    grown: list = []
    first = _mix(tmp_path, [[], []], grown)
    for step in range(5):  # the use counts differ now, so the next picks depend on them
        first.batches_for_step(_Context(), step)
    second = _mix(tmp_path, [_pictures(tmp_path / "0", 1), []], grown)  # what the folders held at an earlier save
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    keys = [([b.keys for b in first.batches_for_step(_Context(), s)], [b.keys for b in second.batches_for_step(
        _Context(), s)]) for s in range(5, 12)]
    assert all(a == b for a, b in keys)


def test_a_resume_with_other_teachers_or_weights_is_refused(tmp_path):
    saved = _mix(tmp_path, [[], []], []).state_dict()
    with pytest.raises(UserError, match=r"the saved state merges \['a', 'b'\] with weights \[0.5, 0.5\], not "
                                        r"\['a', 'c'\]"):
        _mix(tmp_path, [[], []], [], teachers=["a", "c"]).load_state_dict(saved)


def test_the_workflow_table_takes_the_merge_keys_by_their_short_names(tmp_path):
    from library.config import load_train_config
    from library.config.errors import ConfigError

    toml = tmp_path / "args.toml"
    toml.write_text('[workflow]\nworkflow = "merge"\nteachers = ["a.safetensors", "b.safetensors"]\n'
                    'weights = [0.7, 0.3]\nratio = "auto"\nteacher_share = 0.5\nmax_reuse = 3\n', encoding="utf-8")
    wf = load_train_config(["--config_file", str(toml)]).train.workflow
    assert (wf.workflow, wf.workflow_teachers, wf.workflow_weights, wf.workflow_ratio, wf.workflow_teacher_share,
            wf.workflow_max_reuse) == ("merge", ("a.safetensors", "b.safetensors"), (0.7, 0.3), "auto", 0.5, 3)
    toml.write_text('[workflow]\nworkflow = "merge"\nweights = [0.7, "most"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"args.toml:3: key `workflow_weights`: expected a list of numbers"):
        load_train_config(["--config_file", str(toml)])
