"""Epoch plans and batches: kohya's counting, pure and seeded order, resume, sharding, workers, augmentation."""

from collections import Counter

import pytest
import torch

from library.config import load_train_config
from library.data import dataset as dataset_module
from library.data.dataset import build_training_data, iterate_batches
from library.data.images import load_rgb
from library.data.pixels import Augment, render, to_batch
from library.data.plan import BatchPlan
from library.sample_data import write_sample_dataset


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample_dataset(tmp_path_factory.mktemp("plan") / "sample", seed=0)


def build(sample, *extra):
    loaded = load_train_config(["--train_data_dir", str(sample.root / "train"), "--reg_data_dir",
                                str(sample.root / "reg"), "--caption_extension", ".txt", "--resolution", "128",
                                "--enable_bucket", "--min_bucket_reso", "64", "--max_bucket_reso", "256",
                                "--bucket_reso_steps", "32", "--train_batch_size", "4", *extra])
    return build_training_data(loaded.datasets, loaded.train)


@pytest.fixture(scope="module")
def data(sample):
    return build(sample, "--flip_aug", "--shuffle_caption", "--keep_tokens", "1")


def contents(plans):
    return [(plan.dataset, plan.bucket, plan.samples) for plan in plans]


def same_batch(a, b):
    return a.captions == b.captions and a.keys == b.keys and torch.equal(a.loss_weights, b.loss_weights) and \
        torch.equal(a.pixels, b.pixels)


def test_batches_per_epoch_counts_like_kohya(data):
    per_bucket = Counter()
    for item in data.items:
        per_bucket[item.placement.bucket] += item.repeats
    expected = sum(-(-count // 4) for count in per_bucket.values())  # ceil per bucket
    assert data.batches_per_epoch() == expected == len(data.epoch_plan(0, seed=1))
    assert data.batches_per_epoch(world_size=2) == -(-expected // 2)


def test_every_batch_holds_one_bucket(data):
    for plan in data.epoch_plan(0, seed=1):
        assert {data.items[index].placement.bucket for index, _ in plan.samples} == {plan.bucket}
        assert 1 <= len(plan.samples) <= 4


def test_a_plan_is_a_pure_function_of_its_arguments(data):
    assert data.epoch_plan(3, seed=7) == data.epoch_plan(3, seed=7)


def test_each_epoch_has_its_own_order_and_seeds_but_the_same_samples(data):
    first, second = data.epoch_plan(0, seed=7), data.epoch_plan(1, seed=7)
    assert contents(first) != contents(second)
    assert {s for p in first for _, s in p.samples}.isdisjoint({s for p in second for _, s in p.samples})

    def counts(plans):
        return Counter(index for plan in plans for index, _ in plan.samples)
    assert counts(first) == counts(second) == {i: item.repeats for i, item in enumerate(data.items)}
    assert contents(data.epoch_plan(0, seed=8)) != contents(first)


def test_resume_skips_the_first_plans_without_loading_them(data, monkeypatch):
    plans = data.epoch_plan(2, seed=7)
    loaded = []

    def recording_load(path):
        loaded.append(path)
        return load_rgb(path)
    monkeypatch.setattr(dataset_module, "load_rgb", recording_load)
    resumed = list(iterate_batches(data, data.epoch_plan(2, seed=7)[5:], num_workers=0))  # as the loop resumes
    needed = [data.items[index].path for plan in plans[5:] for index in dict.fromkeys(i for i, _ in plan.samples)]
    assert needed and loaded == needed  # each remaining batch decodes its own images once, the skipped five none
    assert all(same_batch(a, data.load_batch(p)) for a, p in zip(resumed, plans[5:], strict=True))


def test_plans_know_the_optimizer_step_for_token_warmup(sample):
    data = build(sample, "--gradient_accumulation_steps", "3", "--max_train_epochs", "4")
    plans = data.epoch_plan(1, seed=0)
    steps_per_epoch = -(-len(plans) // 3)
    assert [plan.step for plan in plans[:7]] == [steps_per_epoch + i // 3 for i in range(7)]
    assert {plan.max_steps for plan in plans} == {4 * steps_per_epoch}


def test_shards_are_disjoint_equal_and_cover_the_epoch(data):
    whole = contents(data.epoch_plan(0, seed=3))
    shards = [contents(data.epoch_plan(0, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert len({len(shard) for shard in shards}) == 1
    assert len(shards[0]) == data.batches_per_epoch(world_size=3)
    padding = 3 * len(shards[0]) - len(whole)
    assert sorted(b for shard in shards for b in shard) == sorted(whole + whole[:padding])
    assert shards[1][0] == whole[1]  # rank r takes every world_size-th batch from r


def test_a_batch_is_rebuilt_exactly_from_its_plan(data):
    plan = data.epoch_plan(0, seed=1)[0]
    rebuilt = BatchPlan(plan.dataset, plan.bucket, tuple(plan.samples), plan.epoch, plan.step, plan.max_steps)
    first, second = data.load_batch(plan), data.load_batch(rebuilt)
    assert same_batch(first, second)
    width, height = plan.bucket
    assert first.pixels.shape == (len(plan.samples), 3, height, width)
    assert first.pixels.min() >= -1 and first.pixels.max() <= 1 and first.stream == "train"


def test_flip_aug_mirrors_about_half_the_samples_by_their_seed(data):
    samples = [sample for plan in data.epoch_plan(0, seed=1)[:10] for sample in plan.samples]
    flipped = 0
    for index, seed in samples:
        item = data.items[index]
        pixels = data.load_batch(BatchPlan(0, item.placement.bucket, ((index, seed),), 0, 0, 100)).pixels[0]
        plain = to_batch([render(load_rgb(item.path), item.placement, None, Augment())])[0]
        assert torch.equal(pixels, plain) or torch.equal(pixels, plain.flip(-1))
        flipped += not torch.equal(pixels, plain)
    assert 0 < flipped < len(samples)


def test_captions_follow_the_sample_seed(data):
    plans = data.epoch_plan(0, seed=1)
    captions = [c for plan in plans[:10] for c in data.load_batch(plan).captions]
    assert all(c.startswith("sks girl") or c.startswith("1girl") for c in captions)  # keep_tokens 1
    assert captions == [c for plan in plans[:10] for c in data.load_batch(plan).captions]


def test_workers_give_the_same_batches_as_the_main_process(data):
    plans = data.epoch_plan(0, seed=1)[:6]
    direct = list(iterate_batches(data, plans, num_workers=0))
    with_workers = list(iterate_batches(data, plans, num_workers=2))
    assert len(direct) == len(with_workers) == 6
    assert all(same_batch(a, b) for a, b in zip(direct, with_workers))


def test_persistent_workers_serve_each_epoch_its_own_plans(data):
    for epoch in (0, 1):
        plans = data.epoch_plan(epoch, seed=1)[:3]
        batches = list(iterate_batches(data, plans, num_workers=2, persistent=True))
        assert all(same_batch(a, data.load_batch(p)) for a, p in zip(batches, plans, strict=True))
