"""Self-generated word-frequency regularization (issue 7): schedule, stream, monitor, config and whole runs.

The runs train the tiny model at 64 px and generate their regularization images with 2 sampling steps, so a run
takes seconds; the behaviour checked does not depend on the step count.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import train_certain
from library.config import load_train_config
from library.config.errors import ConfigError
from library.errors import UserError
from library.models.sd_model import load_model
from library.regularization import WordList, WordSampler, target_probabilities
from library.regularization.monitor import fit_figures, histogram_rows
from library.regularization.pregenerated import PregeneratedStream, RegImage, cycle_order
from library.regularization.setup import trigger_words
from library.regularization.stream import GenerationSettings, RegMix, SelfGeneratedStream
from library.sampling.generate import generate
from run_args import without_seed

FAST = ("--reg_steps", "2", "--max_data_loader_n_workers", "0")


def events(out: Path, kind: str) -> list[dict]:
    return [e for e in map(json.loads, (out / "progress.jsonl").read_text().splitlines()) if e["event"] == kind]


# ---------------------------------------------------------------------------------------------- schedule


def test_ratio_one_to_four_gives_one_image_per_step_of_four():
    schedule, credit, counts = RegMix(ratio=0.25), 0.0, []
    for step in range(6):
        n, credit = schedule.images(step, 4, credit)
        counts.append(n)
    assert counts == [1] * 6


def test_fractional_ratios_add_up_exactly_over_steps():
    schedule, credit, counts = RegMix(ratio=0.1), 0.0, []
    for step in range(25):
        n, credit = schedule.images(step, 4, credit)
        counts.append(n)
    assert sum(counts) == 10 and set(counts) == {0, 1}


def test_every_n_steps_batches_the_images_of_the_steps_between():
    schedule, credit, counts = RegMix(ratio=0.25, every_n_steps=4), 0.0, []
    for step in range(8):
        n, credit = schedule.images(step, 4, credit)
        counts.append(n)
    assert counts == [1, 0, 0, 0, 4, 0, 0, 0]  # the first due step has only its own step's share


def test_warmup_and_fixed_batch():
    schedule = RegMix(batch=3, every_n_steps=2, warmup_steps=5)
    assert [schedule.images(step, 4, 0.0)[0] for step in range(10)] == [0, 0, 0, 0, 0, 3, 0, 3, 0, 3]


def test_trigger_words_are_the_class_tokens_and_the_identifier():
    assert trigger_words(["sks girl", "sks girl", None, "ohwx"]) == ("sks girl", "sks", "ohwx")


# ---------------------------------------------------------------------------------------------- the stream

WORDS = WordList(("1girl", "solo", "long hair", "smile", r"star \(symbol\)"), (50, 30, 10, 6, 4), "test list")


class StandInContext:
    """The `LoopContext` a stream gets, around a real model (the weights being trained) and recording its events."""

    def __init__(self, model, rank: int = 0, world: int = 1):
        self.model, self.rank, self.world_size, self.log = model, rank, world, []
        self.device, self.dtype, self.global_step, self.is_main = torch.device("cpu"), torch.float32, 0, rank == 0

    def sampling_model(self):
        return contextlib.nullcontext(self.model)

    def log_event(self, name, **fields):
        self.log.append((name, fields))


def make_stream(seed: int = 5, ratio: float = 0.5) -> SelfGeneratedStream:
    return SelfGeneratedStream(WordSampler(WORDS, seed), RegMix(ratio=ratio),
                               GenerationSettings(width=64, height=64, steps=2), seed, train_images_per_step=4)


@pytest.fixture(scope="module")
def model(tiny_sd1):
    return load_model(tiny_sd1)


def test_generated_latents_go_straight_into_the_batch(model):
    ctx = StandInContext(model)
    [batch] = make_stream().batches_for_step(ctx, 0)
    assert batch.stream == "reg" and batch.pixels is None and batch.latents.shape == (2, 4, 8, 8)
    words = WordSampler(WORDS, 5).draw(2)
    assert batch.captions == [w.replace("\\", "") for w in words]  # captions are literal, as the trainer reads them
    direct = generate(model, [GenerationSettings(width=64, height=64, steps=2).request(w, 5 + i)
                              for i, w in enumerate(words)], output="latents", batch_size=2)
    assert torch.equal(batch.latents, torch.stack([d.latents for d in direct]))
    name, fields = ctx.log[0]
    assert name == "reg_images" and fields["words"] == words and fields["seeds"] == [5, 6] and fields["step"] == 1


def test_generation_uses_the_current_weights(tiny_sd1):
    model = load_model(tiny_sd1)
    ctx = StandInContext(model)
    before = make_stream().batches_for_step(ctx, 0)[0].latents
    again = make_stream().batches_for_step(ctx, 0)[0].latents
    with torch.no_grad():
        model.unet.conv_out.bias += 0.05  # as an optimizer step would change it
    after = make_stream().batches_for_step(ctx, 0)[0].latents
    assert torch.equal(before, again)
    assert not torch.allclose(before, after)


def test_each_process_generates_its_own_share_with_distinct_seeds(model):
    alone = StandInContext(model)
    single = make_stream(ratio=1.0)
    words_single = [single.batches_for_step(alone, step)[0] for step in range(2)]
    shares = []
    for rank in (0, 1):
        stream = make_stream(ratio=0.5)  # 2 images per process per step: 4 in all, as the single process above
        shares.append([stream.batches_for_step(StandInContext(model, rank, 2), step)[0] for step in range(2)])
        assert stream.images_made == 8 and sum(stream.counts.values()) == 8  # every process counts all words
        assert stream.generated_here == 4  # and generates its half: its images per second count only those
    for step in range(2):
        together = shares[0][step].keys + shares[1][step].keys
        assert together == words_single[step].keys  # the same words and seeds, split between the processes
        assert not set(shares[0][step].keys) & set(shares[1][step].keys)


def test_state_round_trip_continues_the_word_stream(model):
    ctx = StandInContext(model)
    straight = make_stream(ratio=0.3)  # 1.2 images per step: the fraction carried over must survive a resume
    keys = [k for step in range(6) for b in straight.batches_for_step(ctx, step) for k in b.keys]
    first = make_stream(ratio=0.3)
    resumed_keys = [k for step in range(3) for b in first.batches_for_step(ctx, step) for k in b.keys]
    state = json.loads(json.dumps(first.state_dict()))  # it is saved in progress.json
    second = make_stream(ratio=0.3)
    second.load_state_dict(state)
    resumed_keys += [k for step in range(3, 6) for b in second.batches_for_step(ctx, step) for k in b.keys]
    assert resumed_keys == keys and len(keys) == 7
    assert second.counts == straight.counts


def test_a_state_of_the_other_mode_is_refused_not_misread(model, tmp_path):
    images = [RegImage(tmp_path / "0.png", "solo", 0)]
    pregenerated = PregeneratedStream(images, RegMix(), (64, 64), seed=3, train_images_per_step=4)
    with pytest.raises(UserError, match='reg_mode = "self_wordfreq", this run\'s is "pregenerated_wordfreq"'):
        pregenerated.load_state_dict(make_stream().state_dict())
    with pytest.raises(UserError, match='reg_mode = "pregenerated_wordfreq", this run\'s is "self_wordfreq"'):
        make_stream().load_state_dict(pregenerated.state_dict())


# ---------------------------------------------------------------------------------------------- the monitor


def test_realized_frequencies_match_the_target_over_thousands_of_draws():
    sampler = WordSampler(WORDS, 114514)
    counts = Counter(sampler.draw(5000))
    figures = fit_figures(counts, WORDS, 1.0)
    assert figures["drawn"] == 5000 and figures["chi_square_p"] > 0.001
    for word, p in target_probabilities(WORDS).items():
        assert abs(counts[word] / 5000 - p) < 4 * (p * (1 - p) / 5000) ** 0.5


def test_a_wrong_distribution_fails_the_fit():
    counts = Counter({w: 1000 for w in WORDS.words})  # uniform, not the list's ratios
    assert fit_figures(counts, WORDS, 1.0)["chi_square_p"] < 1e-6


def test_histogram_rows_put_drawn_next_to_expected():
    rows = histogram_rows(Counter({"1girl": 6, "solo": 4}), target_probabilities(WORDS), top=2)
    assert rows == [{"word": "1girl", "drawn": 6, "expected": 5.0, "target_probability": 0.5},
                    {"word": "solo", "drawn": 4, "expected": 3.0, "target_probability": 0.3}]


# ---------------------------------------------------------------------------------------------- pregenerated


def test_pregenerated_images_are_each_used_once_per_cycle(tmp_path):
    images = [RegImage(tmp_path / f"{i}.png", f"w{i}", i) for i in range(5)]
    stream = PregeneratedStream(images, RegMix(), (64, 64), seed=3, train_images_per_step=4)
    used = stream.next_images(7) + stream.next_images(8)
    assert sorted(i.seed for i in used[:5]) == [0, 1, 2, 3, 4]
    assert sorted(i.seed for i in used[5:10]) == [0, 1, 2, 3, 4]
    assert cycle_order(5, 3, 0) != cycle_order(5, 3, 1)  # each cycle is shuffled anew


# ---------------------------------------------------------------------------------------------- config


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_regularization_table_takes_short_names(tmp_path):
    toml = write(tmp_path / "args.toml", '[regularization]\nmode = "self_wordfreq"\nword_list = "captions"\n'
                                        'ratio = 0.5\nexclude = ["watermark", "signature"]\nsampler = "Euler a"\n'
                                        'save_reg_images = true\nreg_loss_weight = 0.5\n')
    reg = load_train_config(["--config_file", str(toml)]).train.regularization
    assert (reg.reg_mode, reg.reg_word_list, reg.reg_ratio, reg.reg_exclude, reg.reg_sampler, reg.save_reg_images,
            reg.reg_loss_weight) == ("self_wordfreq", "captions", 0.5, ("watermark", "signature"), "euler_a", True,
                                     0.5)


def test_seed_and_resolution_inside_the_table_are_the_regularizations_own(tmp_path):
    toml = write(tmp_path / "args.toml", 'seed = 1\nresolution = "64"\n[regularization]\nseed = 11\n'
                                        'resolution = "32,48"\n')
    train = load_train_config(["--config_file", str(toml)]).train
    assert (train.training.seed, train.dataset.resolution) == (1, (64, 64))
    assert (train.regularization.reg_seed, train.regularization.reg_resolution) == (11, (32, 48))


@pytest.mark.parametrize("args, needle", [
    (["--reg_mode", "self_wordfreq"], "needs a word list"),
    (["--reg_mode", "pregenerated_wordfreq"], "needs `reg_images_dir`"),
    (["--reg_mode", "prior"], "needs class images"),
    (["--reg_mode", "self"], 'Did you mean "self_wordfreq"'),
    (["--reg_mode", "self_wordfreq", "--reg_word_list", "captions", "--reg_ratio", "0"], "is 0"),
    (["--reg_sampler", "heun"], "not yet supported sampler"),
])
def test_bad_regularization_options_are_named(args, needle):
    with pytest.raises(ConfigError) as caught:
        load_train_config(args)
    assert needle in str(caught.value)


def test_a_word_list_without_a_mode_is_pointed_out():
    notes = load_train_config(["--reg_word_list", "tags.csv"]).notes
    assert any('reg_mode is "none"' in n for n in notes)


# ---------------------------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def reg_run(tmp_path_factory, train_args):
    """Six steps with 1:2 regularization from the training captions, a state saved at step 3, and a log of every
    batch the loop received."""
    out = tmp_path_factory.mktemp("reg")
    args = train_args(out, "--max_train_steps", "6", "--reg_mode", "self_wordfreq", "--reg_word_list", "captions",
                      "--reg_ratio", "0.5", "--save_every_n_steps", "3", "--save_state", "--logging_dir",
                      str(out / "logs"), "--save_reg_images", *FAST)
    received = []
    loaded = load_train_config(args)

    from library.training.loop import Trainer
    from library.training.run import run_training

    original = Trainer.step
    Trainer.step = lambda self, batches, started=None: (received.append(batches), original(self, batches, started))[1]
    try:
        assert run_training(loaded) == 0
    finally:
        Trainer.step = original
    return SimpleNamespace(out=out, args=args, received=received)


def test_every_generated_sample_is_trained_on_exactly_once(reg_run):
    reg_keys = [k for batches in reg_run.received for b in batches if b.stream == "reg" for k in b.keys]
    generated = [(seed, word) for e in events(reg_run.out, "reg_images") for seed, word in zip(e["seeds"], e["words"])]
    assert len(reg_keys) == len(generated) == 12  # 2 per step of 4 training images (ratio 0.5)
    assert len(set(reg_keys)) == 12
    assert sorted(reg_keys) == sorted(f"reg:{seed}:{word}" for seed, word in generated)
    state = json.loads((reg_run.out / "last-state" / "progress.json").read_text())["extra"]["streams"]["reg"]
    assert state["images_made"] == 12 and sum(state["counts"].values()) == 12


def test_saved_reg_images_carry_their_infotext(reg_run):
    from library.sampling.infotext import parse_infotext

    files = sorted((reg_run.out / "reg_images").glob("*.png"))
    generated = {seed: word for e in events(reg_run.out, "reg_images") for seed, word in zip(e["seeds"], e["words"])}
    assert len(files) == 12
    from PIL import Image
    for path in files:
        info = parse_infotext(Image.open(path).text["parameters"])
        assert info["Prompt"] == generated[int(info["Seed"])] and info["Steps"] == "2"


def test_reg_loss_is_logged_apart_from_the_training_loss(reg_run):
    steps = events(reg_run.out, "step")
    assert all(set(e["losses"]) == {"train", "reg"} and e["samples"] == 6 for e in steps)
    [report] = events(reg_run.out, "regularization")
    assert report["step"] == 6 and 0 < report["scalars"]["generation_share"] < 1
    assert report["scalars"]["images_per_second"] > 0
    histogram = json.loads((reg_run.out / "regularization" / "word_histogram.json").read_text())
    assert histogram["drawn"] == 12 and sum(w["drawn"] for w in histogram["words"]) == 12
    assert (reg_run.out / "regularization" / "word_histogram.png").read_bytes()[:4] == b"\x89PNG"
    word_list = (reg_run.out / "regularization" / "word_list.txt").read_text()
    assert "1girl" in word_list and "\tsks girl\n" not in word_list  # the class tokens of `10_sks girl`
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    logs = EventAccumulator(str(next((reg_run.out / "logs").iterdir()))).Reload()
    assert {"loss/reg", "loss/train", "regularization/generation_share"} <= set(logs.Tags()["scalars"])


def test_resume_draws_the_same_words_as_the_uninterrupted_run(reg_run, tmp_path, train_args):
    resumed = tmp_path / "resumed"
    args = [a if a != str(reg_run.out) else str(resumed) for a in reg_run.args]
    args = [a.replace(str(reg_run.out), str(resumed)) for a in args]
    assert train_certain.main(args + ["--resume", str(reg_run.out / "at-step00000003-state")]) == 0
    straight = [(e["step"], e["words"], e["seeds"]) for e in events(reg_run.out, "reg_images") if e["step"] > 3]
    again = [(e["step"], e["words"], e["seeds"]) for e in events(resumed, "reg_images")]
    assert again == straight
    a, b = load_file(str(reg_run.out / "last.safetensors")), load_file(str(resumed / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after resume"


def test_resume_without_a_seed_generates_with_the_same_seeds(tmp_path, train_args):
    """A run without `seed` draws one; the resumed run's images must come from the saved one, not a new draw."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ("--max_train_steps", "4", "--reg_mode", "self_wordfreq", "--reg_word_list", "captions",
              "--save_every_n_steps", "2", "--save_state", *FAST)
    assert train_certain.main(without_seed(train_args(straight, *common))) == 0
    assert train_certain.main(without_seed(train_args(resumed, *common, "--resume",
                                                      str(straight / "at-step00000002-state")))) == 0
    expected = [(e["step"], e["words"], e["seeds"]) for e in events(straight, "reg_images") if e["step"] > 2]
    assert [(e["step"], e["words"], e["seeds"]) for e in events(resumed, "reg_images")] == expected
    assert len(expected) == 2


def test_reg_loss_weight_scales_the_reg_loss(tmp_path, train_args):
    def first_reg_loss(weight: str) -> float:
        out = tmp_path / weight
        assert train_certain.main(train_args(out, "--max_train_steps", "1", "--reg_mode", "self_wordfreq",
                                             "--reg_word_list", "captions", "--reg_loss_weight", weight, *FAST)) == 0
        return events(out, "step")[0]["losses"]["reg"]

    assert first_reg_loss("2.0") == pytest.approx(2 * first_reg_loss("1.0"), rel=1e-5)


def test_pregenerated_folder_trains(tmp_path, tiny_sd1, sample_dataset, train_args):
    from library.generation.cli import main as gen_main

    folder = tmp_path / "wordfreq"
    words = write(tmp_path / "words.txt", "1girl 5\nsolo 3\nsmile 2\n")
    assert gen_main(["txt2img", "--model", str(tiny_sd1), "--wordfreq", str(words), "--count", "3", "--outdir",
                     str(folder), "--steps", "2", "--width", "64", "--height", "64", "--seed", "1"]) == 0
    out, resumed = tmp_path / "out", tmp_path / "resumed"
    common = ("--max_train_steps", "4", "--reg_mode", "pregenerated_wordfreq", "--reg_images_dir", str(folder),
              "--reg_ratio", "0.5", "--save_every_n_steps", "2", "--save_state", *FAST)
    assert train_certain.main(without_seed(train_args(out, *common))) == 0  # the cycle order follows the drawn seed
    steps = events(out, "step")
    assert all("reg" in e["losses"] and e["samples"] == 6 for e in steps)
    assert train_certain.main(without_seed(train_args(resumed, *common, "--resume",
                                                      str(out / "at-step00000002-state")))) == 0
    assert [e["losses"] for e in events(resumed, "step")] == [e["losses"] for e in steps[2:]]
    a, b = load_file(str(out / "last.safetensors")), load_file(str(resumed / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after resume"


def test_word_lists_from_files_filtered_and_summarized(tmp_path, train_args, sample_dataset):
    """A `word,count` .csv is a plain list (tag types are for tag CSVs); the summary is printed and saved."""
    from library.data.dataset import build_training_data
    from library.regularization.setup import regularization_word_list

    words = write(tmp_path / "words.csv", "sks,500\n1girl,300\nsolo,200\nsmile,100\nwatermark,50\n")
    loaded = load_train_config(train_args(tmp_path, "--reg_mode", "self_wordfreq", "--reg_word_list", str(words),
                                          "--reg_exclude", "water*", "--reg_top_k", "2"))
    data = build_training_data(loaded.datasets, loaded.train)
    word_list = regularization_word_list(loaded.train.regularization, data, ",", ".txt")
    assert word_list.words == ("1girl", "solo")  # `sks` of `10_sks girl` dropped, watermark excluded, top 2
    tags = write(tmp_path / "danbooru.csv", '1girl,0,600,"1girls"\nhatsune_miku,4,150,miku\nstar_(symbol),0,90,\n')
    kept = replace(loaded.train.regularization, reg_word_list=str(tags), reg_top_k=0, reg_tag_types=("character",))
    assert regularization_word_list(kept, data, ",", ".txt").words == ("hatsune miku",)


def test_class_images_do_not_remove_their_class_word(tmp_path, train_args, sample_dataset):
    """`reg/1_girl` holds prior-preservation images of `girl`: a word to keep, not a trigger of the training."""
    from library.data.dataset import build_training_data
    from library.regularization.setup import regularization_word_list

    words = write(tmp_path / "words.txt", "girl 5\nsks 3\nsolo 2\n")
    loaded = load_train_config(train_args(tmp_path, "--reg_mode", "self_wordfreq", "--reg_word_list", str(words),
                                          "--reg_data_dir", str(sample_dataset.reg_dir.parent)))
    data = build_training_data(loaded.datasets, loaded.train)
    assert regularization_word_list(loaded.train.regularization, data, ",", ".txt").words == ("girl", "solo")


def test_tag_types_may_be_numbers(tmp_path):
    toml = write(tmp_path / "args.toml", '[regularization]\ntag_types = [0, 4]\n')
    assert load_train_config(["--config_file", str(toml)]).train.regularization.reg_tag_types == ("0", "4")


@pytest.mark.parametrize("extra, needle", [
    (("--reg_include", "nothing*"), "no word matches the include patterns"),
    (("--reg_exclude", "*"), "the filters removed every word"),
    (("--reg_min_count", "1000"), "the filters removed every word"),
])
def test_bad_word_lists_stop_before_the_model_loads(tmp_path, train_args, capsys, extra, needle):
    code = train_certain.main(train_args(tmp_path, "--reg_mode", "self_wordfreq", "--reg_word_list", "captions",
                                         *extra))
    err = capsys.readouterr().err
    assert code == 2 and needle in err
    assert "parameters: unet" not in err  # no model was loaded


def test_a_missing_word_list_file_is_named(tmp_path, train_args, capsys):
    code = train_certain.main(train_args(tmp_path, "--reg_mode", "self_wordfreq", "--reg_word_list",
                                         str(tmp_path / "danbooru.csv")))
    assert code == 2 and "danbooru.csv: no such file" in capsys.readouterr().err


def test_prior_mode_is_kohyas_class_images_and_needs_them(tmp_path, train_args, sample_dataset, capsys):
    out = tmp_path / "prior"
    assert train_certain.main(train_args(out, "--max_train_steps", "2", "--reg_mode", "prior", "--reg_data_dir",
                                         str(sample_dataset.reg_dir.parent), "--prior_loss_weight", "0.5",
                                         "--max_data_loader_n_workers", "0")) == 0
    assert not events(out, "reg_images")  # nothing is generated: the class images are part of the dataset
    empty = tmp_path / "empty_reg"
    (empty / "1_girl").mkdir(parents=True)
    code = train_certain.main(train_args(tmp_path / "none", "--reg_mode", "prior", "--reg_data_dir", str(empty)))
    assert code == 2 and "has no regularization images" in capsys.readouterr().err
