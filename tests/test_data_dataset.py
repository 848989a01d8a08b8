"""Building the training data from kohya folders, dataset configs and fine-tuning metadata."""

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from library.config import load_train_config
from library.data.dataset import build_training_data
from library.errors import UserError
from library.sample_data import write_sample_dataset

BUCKETS = ["--resolution", "128", "--enable_bucket", "--min_bucket_reso", "64", "--max_bucket_reso", "256",
           "--bucket_reso_steps", "32"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample_dataset(tmp_path_factory.mktemp("data") / "sample", seed=0)


def build(*argv, strict_data=False):
    loaded = load_train_config([str(a) for a in argv])
    return build_training_data(loaded.datasets, loaded.train, strict_data=strict_data)


def folder_mode(sample, *extra):
    return build("--train_data_dir", sample.root / "train", "--reg_data_dir", sample.root / "reg",
                 "--caption_extension", ".txt", *BUCKETS, *extra)


def images(folder: Path, count: int, size=(64, 64)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", size, (index * 10 % 256, 0, 0)).save(folder / f"{index:03d}.png")
    return folder


def dataset_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def samples_per_item(data):
    return {item.path.name: item.repeats for item in data.items}


# DreamBooth folders


def test_folder_repeats_and_class_token_fallback(sample):
    data = folder_mode(sample)
    train = [item for item in data.items if not item.subset.is_reg]
    assert len(train) == 13 and {item.repeats for item in train} == {10}
    captions = {item.path.name: item.caption for item in train}
    assert captions["0010.png"] == captions["0011.png"] == "sks girl"  # no .txt: the folder's class tokens
    assert captions["0000.png"] == (sample.train_dir / "0000.txt").read_text()
    assert any("3 images (0010.png, 0011.png, 0012.png) without a .txt caption use class tokens" in n
               for n in data.notes)


def test_reg_images_balance_the_training_samples_and_carry_the_prior_loss_weight(sample):
    data = folder_mode(sample, "--prior_loss_weight", "0.5")
    reg = [item for item in data.items if item.subset.is_reg]
    assert sum(item.repeats for item in reg) == 130  # 13 images x 10 repeats
    assert [item.repeats for item in reg] == [33, 33, 32, 32]
    assert {item.loss_weight for item in reg} == {0.5}
    assert {item.loss_weight for item in data.items if not item.subset.is_reg} == {1.0}


def test_kohya_balancing_example_scaled_down(tmp_path):
    images(tmp_path / "train" / "8_sks dog", 5)  # T = 40
    images(tmp_path / "reg" / "1_dog", 12)
    data = build("--train_data_dir", tmp_path / "train", "--reg_data_dir", tmp_path / "reg", "--resolution", "64")
    reg = [item.repeats for item in data.items if item.subset.is_reg]
    assert reg == [4] * 4 + [3] * 8
    assert data.batches_per_epoch() == 80


def test_surplus_reg_images_are_unused_with_a_note(tmp_path):
    images(tmp_path / "train" / "1_sks dog", 3)
    images(tmp_path / "reg" / "1_dog", 5)
    data = build("--train_data_dir", tmp_path / "train", "--reg_data_dir", tmp_path / "reg", "--resolution", "64")
    assert [item.repeats for item in data.items if item.subset.is_reg] == [1, 1, 1]
    assert any("2 regularization image(s) are not used" in note for note in data.notes)


def test_empty_caption_file_uses_the_class_tokens_with_a_note(tmp_path):
    folder = images(tmp_path / "train" / "1_sks dog", 2)
    (folder / "000.txt").write_text("\n")
    (folder / "001.txt").write_text("a dog on grass\nsecond line")
    data = build("--train_data_dir", tmp_path / "train", "--resolution", "64", "--caption_extension", ".txt")
    assert {item.path.name: item.caption for item in data.items} == {"000.png": "sks dog", "001.png": "a dog on grass"}
    assert any("with an empty .txt file use class tokens 'sks dog'" in note for note in data.notes)


def test_without_caption_or_class_tokens_the_caption_is_empty_with_a_note(tmp_path):
    folder = images(tmp_path / "pics", 2)
    config = dataset_config(tmp_path / "data.toml", f"""
        [general]
        resolution = 64
        [[datasets]]
        [[datasets.subsets]]
        image_dir = '{folder}'
        num_repeats = 3
    """)
    data = build("--dataset_config", config)
    assert [(item.caption, item.repeats) for item in data.items] == [("", 3), ("", 3)]
    assert any("use an EMPTY caption" in note for note in data.notes)


def test_a_caption_that_is_not_utf8_skips_its_image(tmp_path):
    folder = images(tmp_path / "train" / "1_sks dog", 2)
    (folder / "000.txt").write_bytes("chien égaré".encode("latin-1"))
    data = build("--train_data_dir", tmp_path / "train", "--resolution", "64", "--caption_extension", ".txt")
    assert [item.path.name for item in data.items] == ["001.png"]
    assert data.problems[0].startswith(str(folder / "000.txt")) and "not UTF-8" in data.problems[0]


def test_tag_frequency_per_folder(sample):
    data = folder_mode(sample)
    assert set(data.tag_frequency) == {"10_sks girl", "1_girl"}
    assert data.tag_frequency["10_sks girl"]["sks girl"] == 13  # 10 captions + 3 class-token fallbacks
    assert data.tag_frequency["1_girl"]["1girl"] == 4


def test_describe_shows_subsets_and_the_bucket_table(sample):
    lines = folder_mode(sample, "--train_batch_size", "2").describe()
    text = "\n".join(lines)
    assert "13 images x 10 repeats = 130 samples, class tokens 'sks girl'" in text
    assert "regularization, 4 of 4 images used, 130 samples" in text
    assert "bucket 0: resolution (96, 160), count: " in text and "mean ar error" in text
    buckets = [line for line in lines if line.strip().startswith("bucket ")]
    assert sum(int(line.rsplit(" ", 1)[1]) for line in buckets) == 260


def test_bucket_assignment_follows_the_aspect_ratio(sample):
    data = folder_mode(sample)
    by_size = {item.size: item.placement.bucket for item in data.items}
    assert by_size == {(128, 128): (128, 128), (128, 192): (96, 160), (192, 128): (160, 96)}


def test_no_upscale_buckets_come_from_the_image_size(tmp_path):
    images(tmp_path / "train" / "1_a", 1, size=(100, 70))
    images(tmp_path / "train" / "1_b", 1, size=(300, 300))
    data = build("--train_data_dir", tmp_path / "train", *BUCKETS, "--bucket_no_upscale")
    assert sorted(item.placement.bucket for item in data.items) == [(96, 64), (128, 128)]


def test_without_buckets_small_images_are_enlarged_with_a_note(tmp_path):
    images(tmp_path / "train" / "1_a", 2, size=(32, 48))
    data = build("--train_data_dir", tmp_path / "train", "--resolution", "64")
    assert {item.placement.resized for item in data.items} == {(64, 96)}
    assert any("2 image(s) smaller than the resolution 64x64 are enlarged" in note for note in data.notes)


def test_bucket_steps_must_suit_the_vae(tmp_path):
    images(tmp_path / "train" / "1_a", 1)
    with pytest.raises(UserError, match="bucket_reso_steps` 12 must be a multiple of 8"):
        build("--train_data_dir", tmp_path / "train", "--resolution", "96", "--enable_bucket",
              "--min_bucket_reso", "48", "--max_bucket_reso", "192", "--bucket_reso_steps", "12")


def test_validation_split_holds_out_training_images_only(tmp_path):
    train, reg = images(tmp_path / "train", 8), images(tmp_path / "reg", 4)
    config = dataset_config(tmp_path / "data.toml", f"""
        [general]
        resolution = 64
        [[datasets]]
        validation_split = 0.25
        validation_seed = 1
        [[datasets.subsets]]
        image_dir = '{train}'
        [[datasets.subsets]]
        image_dir = '{reg}'
        is_reg = true
    """)
    data = build("--dataset_config", config)
    assert len(data.held_out) == 2 and all(not item.subset.is_reg for item in data.held_out)
    assert sum(not item.subset.is_reg for item in data.items) == 6
    assert not {item.path for item in data.held_out} & {item.path for item in data.items}


def test_the_same_folder_twice_in_a_dataset_is_used_once(tmp_path):
    folder = images(tmp_path / "pics", 2)
    config = dataset_config(tmp_path / "data.toml", f"""
        [general]
        resolution = 64
        [[datasets]]
        [[datasets.subsets]]
        image_dir = '{folder}'
        [[datasets.subsets]]
        image_dir = '{folder}'
        num_repeats = 5
    """)
    data = build("--dataset_config", config)
    assert [item.repeats for item in data.items] == [1, 1]
    assert any("listed twice" in note for note in data.notes)


def test_two_datasets_keep_their_own_batch_size_and_buckets(tmp_path):
    folder = images(tmp_path / "pics", 3)
    config = dataset_config(tmp_path / "data.toml", f"""
        [[datasets]]
        resolution = 64
        batch_size = 2
        [[datasets.subsets]]
        image_dir = '{folder}'
        [[datasets]]
        resolution = 128
        batch_size = 3
        [[datasets.subsets]]
        image_dir = '{folder}'
    """)
    data = build("--dataset_config", config)
    assert data.batches_per_epoch() == 2 + 1
    plans = data.epoch_plan(0, seed=0)
    assert {(plan.dataset, plan.bucket, len(plan.samples)) for plan in plans} == \
        {(0, (64, 64), 2), (0, (64, 64), 1), (1, (128, 128), 3)}


# Empty datasets


def test_an_empty_dataset_is_an_error_naming_the_folder(tmp_path):
    folder = tmp_path / "train" / "10_sks girl"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("hello")
    (folder / "broken.png").write_text("not an image")
    with pytest.raises(UserError) as error:
        build("--train_data_dir", tmp_path / "train", "--resolution", "64")
    message = str(error.value)
    assert str(folder) in message and ".png" in message and "10_sks girl" in message
    assert "broken.png: not an image" in message


def test_regularization_images_alone_do_not_make_a_dataset(tmp_path):
    images(tmp_path / "train" / "1_a", 0)
    images(tmp_path / "reg" / "1_a", 2)
    with pytest.raises(UserError, match="no training images"):
        build("--train_data_dir", tmp_path / "train", "--reg_data_dir", tmp_path / "reg", "--resolution", "64")


# Fine-tuning metadata


def test_in_json_metadata_with_captions_and_tags(sample):
    data = build("--in_json", sample.meta_file, "--train_data_dir", sample.root, "--dataset_repeats", "2", *BUCKETS)
    meta = json.loads(sample.meta_file.read_text())
    assert len(data.items) == 13 and {item.repeats for item in data.items} == {2}
    first = next(item for item in data.items if item.path.name == "0000.png")
    entry = meta["train/10_sks girl/0000.png"]
    assert first.caption == f"{entry['caption']}, {entry['tags']}"
    last = next(item for item in data.items if item.path.name == "0012.png")
    assert last.caption == meta["train/10_sks girl/0012.png"]["caption"]  # no tags
    assert data.tag_frequency["meta_cap.json"]["sks girl"] == 10  # counted from tags only


def test_jsonl_metadata_with_extensionless_keys_and_a_missing_image(tmp_path):
    folder = images(tmp_path / "pics", 2)
    lines = [{"image_path": "000", "caption": "a red square", "tags": "red, square"},
             {"image_path": str(folder / "001.png"), "caption": "another"},
             {"image_path": "gone.png", "caption": "missing"}]
    meta = tmp_path / "meta.jsonl"
    meta.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    config = dataset_config(tmp_path / "data.toml", f"""
        [general]
        resolution = 64
        [[datasets]]
        [[datasets.subsets]]
        metadata_file = '{meta}'
        image_dir = '{folder}'
    """)
    data = build("--dataset_config", config)
    assert {item.path.name: item.caption for item in data.items} == {"000.png": "a red square, red, square",
                                                                     "001.png": "another"}
    assert data.problems == [f"{folder / 'gone.png'}: not found (listed in {meta})"]


def test_relative_metadata_keys_need_an_image_dir(tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"a.png": {"caption": "x"}}))
    config = dataset_config(tmp_path / "data.toml", f"""
        [general]
        resolution = 64
        [[datasets]]
        [[datasets.subsets]]
        metadata_file = '{meta}'
    """)
    with pytest.raises(UserError, match="relative, so the subset needs `image_dir`"):
        build("--dataset_config", config)


def test_malformed_metadata_is_an_error_with_its_place(tmp_path):
    folder = images(tmp_path / "pics", 1)
    meta = tmp_path / "meta.json"
    meta.write_text('{"000.png": {"caption": "x",}}')
    with pytest.raises(UserError, match=r"meta.json:1:\d+: not valid JSON"):
        build("--in_json", meta, "--train_data_dir", folder, "--resolution", "64")
    meta.write_text(json.dumps({"000.png": {"tags": ["a", "b"]}}))
    with pytest.raises(UserError, match='"tags" must be a string'):
        build("--in_json", meta, "--train_data_dir", folder, "--resolution", "64")


def test_samples_per_epoch_match_repeats(sample):
    data = folder_mode(sample)
    seen = Counter(index for plan in data.epoch_plan(0, seed=5) for index, _ in plan.samples)
    assert all(seen[index] == item.repeats for index, item in enumerate(data.items))
