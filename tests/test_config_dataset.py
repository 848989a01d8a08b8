"""Dataset configs of both kinds, kohya's fallback chain, and folder mode (`10_sks girl` folders)."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from library.config import ConfigError, load_train_config, parse_folder_name


def _load(tmp_path: Path, dataset: str, *argv: str, name: str = "data.toml"):
    path = tmp_path / name
    path.write_text(dedent(dataset), encoding="utf-8")
    return load_train_config(["--dataset_config", str(path), *argv])


def _make(root: Path, *paths: str) -> None:
    """Create the folders (and the .json/.jsonl files) a dataset config names."""
    for name in paths:
        target = root / name
        if target.suffix in (".json", ".jsonl"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("{}")
        else:
            target.mkdir(parents=True, exist_ok=True)


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Run in tmp_path, as a user runs from the folder of their data (relative paths are read from there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_fallback_chain_subset_dataset_general_args_default(here):
    _make(here, "img/a", "img/b")
    loaded = _load(here, """\
        [general]
        keep_tokens = 1
        caption_extension = ".txt"
        shuffle_caption = true

        [[datasets]]
        resolution = [768, 512]
        keep_tokens = 2

          [[datasets.subsets]]
          image_dir = "img/a"
          keep_tokens = 3

          [[datasets.subsets]]
          image_dir = "img/b"
        """, "--train_batch_size", "4", "--caption_dropout_rate", "0.1", "--flip_aug")
    (dataset,) = loaded.datasets.datasets
    a, b = dataset.subsets
    assert (a.keep_tokens, b.keep_tokens) == (3, 2)  # subset, then dataset
    assert a.caption_extension == b.caption_extension == ".txt"  # [general]
    assert a.shuffle_caption and b.shuffle_caption
    assert a.caption_dropout_rate == 0.1 and a.flip_aug  # args values
    assert dataset.batch_size == 4  # args train_batch_size -> batch_size
    assert (a.num_repeats, a.is_reg, a.class_tokens, a.color_aug) == (1, False, None, False)  # defaults
    assert dataset.resolution == (768, 512) and dataset.kind == "dreambooth"
    assert a.origin.line == 10 and dataset.origin.line == 6  # kept for later messages (image_dir not found ...)


def test_args_default_reaches_subsets_like_kohya(here):
    """kohya's argparse defaults are values too: caption_extension falls back to .caption, not None."""
    _make(here, "a")
    loaded = _load(here, "[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'a'\n", "--resolution", "512")
    (subset,) = loaded.datasets.subsets
    assert subset.caption_extension == ".caption" and subset.caption_separator == ","
    assert loaded.datasets.datasets[0].resolution == (512, 512)  # from the args, as "512"


def test_fine_tuning_dataset_and_dreambooth_dataset_in_one_file(here):
    _make(here, "ft/images", "ft/meta.json", "ft/more.json", "db/10_sks")
    loaded = _load(here, """\
        [general]
        resolution = 512
        class_tokens = "only for DreamBooth subsets"

        [[datasets]]
        batch_size = 2
          [[datasets.subsets]]
          image_dir = "ft/images"
          metadata_file = "ft/meta.json"
          [[datasets.subsets]]
          metadata_file = "ft/more.json"

        [[datasets]]
        resolution = [512, 768]
          [[datasets.subsets]]
          image_dir = "db/10_sks"
          num_repeats = 10
        """, "--dataset_repeats", "3")
    ft, db = loaded.datasets.datasets
    assert ft.kind == "fine_tuning" and db.kind == "dreambooth"
    assert [s.metadata_file for s in ft.subsets] == ["ft/meta.json", "ft/more.json"]
    assert [s.num_repeats for s in ft.subsets] == [3, 3]  # args dataset_repeats -> num_repeats
    assert ft.subsets[0].class_tokens is None and db.subsets[0].class_tokens == "only for DreamBooth subsets"
    assert (ft.batch_size, db.batch_size, db.resolution) == (2, 1, (512, 768))
    assert db.subsets[0].num_repeats == 10


def test_strict_types_accept_what_kohya_accepts(here):
    _make(here, "a")
    loaded = _load(here, """\
        [general]
        validation_split = 0
        caption_dropout_rate = 0
        token_warmup_step = 0.5
        face_crop_aug_range = [2, 4]
        custom_attributes = { style = "anime", weight = 2 }
        [[datasets]]
        resolution = 512
          [[datasets.subsets]]
          image_dir = "a"
          conditioning_data_dir = "a_masks"
        """)
    (dataset,) = loaded.datasets.datasets
    assert dataset.validation_split == 0.0 and isinstance(dataset.validation_split, float)
    subset = dataset.subsets[0]
    assert subset.face_crop_aug_range == (2.0, 4.0) and subset.custom_attributes == {"style": "anime", "weight": 2}
    assert subset.conditioning_data_dir == "a_masks"


def test_json_dataset_config(here):
    _make(here, "a")
    data = {"general": {"resolution": [512, 512]}, "datasets": [{"subsets": [{"image_dir": "a", "num_repeats": 2}]}]}
    loaded = _load(here, json.dumps(data), name="data.json")
    assert loaded.datasets.subsets[0].num_repeats == 2 and loaded.datasets.source.endswith("data.json")


def test_json_problems_name_the_file_without_a_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, json.dumps({"general": {"image_dir": "a"}, "datasets": []}), name="data.json")
    assert "data.json: key `image_dir` is not allowed in [general]" in str(caught.value)


def test_dataset_config_from_the_args_file_is_found_next_to_it(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "data.toml").write_text("[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir='a'\n")
    (tmp_path / "cfg" / "args.toml").write_text('dataset_config = "data.toml"\n')
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path)
    loaded = load_train_config(["--config_file", "cfg/args"])  # .toml is appended, as in kohya
    assert loaded.datasets.subsets[0].image_dir == "a"
    assert loaded.notes == [f"cfg/args.toml:1: note: `dataset_config` \"data.toml\" read from next to the args file: "
                            f"{Path('cfg/data.toml')}"]


@pytest.mark.parametrize("name, expected", [
    ("10_sks girl", (10, "sks girl")), ("3_my_char", (3, "my_char")), ("1_", (1, "")), ("5", (5, "")),
    ("sks girl", None), ("0_skip", None), ("System Volume Information", None), ("x10_a", None),
])
def test_parse_folder_name(name, expected):
    assert parse_folder_name(name) == expected


def test_folder_mode_reads_repeats_and_class_tokens_from_folder_names(tmp_path):
    for folder in ("img/10_sks girl", "img/3_my_char", "img/notes", "reg/1_girl"):
        (tmp_path / folder).mkdir(parents=True)
    loaded = load_train_config(["--train_data_dir", str(tmp_path / "img"), "--reg_data_dir", str(tmp_path / "reg"),
                                "--resolution", "512", "--caption_extension", ".txt"])
    subsets = loaded.datasets.subsets
    assert [(Path(s.image_dir).name, s.num_repeats, s.class_tokens, s.is_reg) for s in subsets] == [
        ("10_sks girl", 10, "sks girl", False), ("3_my_char", 3, "my_char", False), ("1_girl", 1, "girl", True)]
    assert all(s.caption_extension == ".txt" for s in subsets)
    assert loaded.datasets.source == "folder mode"
    assert loaded.notes == ["command line: note: `train_data_dir`: skipped folder `notes` (its name does not start "
                            "with a repeat count like `10_`)"]


def test_folder_mode_pointed_at_the_images_says_what_the_folder_should_look_like(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "001.png").write_bytes(b"")
    with pytest.raises(ConfigError) as caught:
        load_train_config(["--train_data_dir", str(tmp_path / "img"), "--resolution", "512"])
    message = str(caught.value)
    assert "command line: key `train_data_dir`: no training folders in" in message
    assert "it holds images directly, but `train_data_dir` must be the PARENT of folders named `<repeats>_<name>`" \
        in message


def test_folder_mode_reg_folder_without_repeat_folders(tmp_path):
    (tmp_path / "img" / "5_sks").mkdir(parents=True)
    (tmp_path / "reg" / "dog").mkdir(parents=True)
    args = tmp_path / "a.toml"
    args.write_text(f"resolution = 512\ntrain_data_dir = '{tmp_path / 'img'}'\nreg_data_dir = '{tmp_path / 'reg'}'\n")
    with pytest.raises(ConfigError) as caught:
        load_train_config(["--config_file", str(args)])
    assert "a.toml:3: key `reg_data_dir`: no training folders in" in str(caught.value)
    assert "found only `dog`" in str(caught.value)


def test_folder_mode_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="key `train_data_dir`: folder not found"):
        load_train_config(["--train_data_dir", str(tmp_path / "nope"), "--resolution", "512"])


def test_fine_tuning_folder_mode_with_in_json(here):
    _make(here, "ft", "meta_lat.json")
    loaded = load_train_config(["--train_data_dir", "ft", "--in_json", "meta_lat.json", "--dataset_repeats", "2",
                                "--resolution", "512"])
    (dataset,) = loaded.datasets.datasets
    assert dataset.kind == "fine_tuning"
    assert (dataset.subsets[0].image_dir, dataset.subsets[0].metadata_file, dataset.subsets[0].num_repeats) == \
        ("ft", "meta_lat.json", 2)


def test_no_dataset_options_means_no_datasets():
    assert load_train_config([]).datasets is None


def test_missing_image_dir_and_metadata_file_are_problems_at_their_lines(here):
    _make(here, "img/10_sks girl")
    with pytest.raises(ConfigError) as caught:
        _load(here, """\
            [[datasets]]
              [[datasets.subsets]]
              image_dir = "img/10_sks gril"
            [[datasets]]
              [[datasets.subsets]]
              metadata_file = "meta.json"
            """)
    data = here / "data.toml"
    assert [str(p) for p in caught.value.problems] == [
        f'{data}:3: key `image_dir`: folder not found: img/10_sks gril (a relative path is looked up in the working '
        f'directory {here} and next to data.toml). Did you mean "img/10_sks girl"?',
        f"{data}:6: key `metadata_file`: file not found: meta.json (a relative path is looked up in the working "
        f"directory {here} and next to data.toml)",
        f"{data}:1: no `resolution` for this dataset: set it in [general], in the [[datasets]] entry or as "
        "`resolution` in the args file (e.g. 512)",  # reported together with the paths
        f"{data}:4: no `resolution` for this dataset: set it in [general], in the [[datasets]] entry or as "
        "`resolution` in the args file (e.g. 512)"]


def test_image_dir_that_is_a_file(here):
    _make(here, "meta.json")
    with pytest.raises(ConfigError, match=r"data.toml:4: key `image_dir`: not a folder: meta.json is a file"):
        _load(here, "[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = 'meta.json'\n")


def test_image_dir_is_found_next_to_the_dataset_config(tmp_path):
    _make(tmp_path, "data/img", "data/meta.json")
    (tmp_path / "data" / "d.toml").write_text("[[datasets]]\nresolution = 512\n[[datasets.subsets]]\n"
                                              "image_dir = 'img'\nmetadata_file = 'meta.json'\n")
    loaded = load_train_config(["--dataset_config", str(tmp_path / "data" / "d.toml")])
    (subset,) = loaded.datasets.subsets
    assert (subset.image_dir, subset.metadata_file) == (str(tmp_path / "data/img"), str(tmp_path / "data/meta.json"))
    assert loaded.notes == [f"{tmp_path / 'data/d.toml'}:4: note: `image_dir` \"img\" read from next to the dataset "
                            f"config: {tmp_path / 'data/img'}",
                            f"{tmp_path / 'data/d.toml'}:5: note: `metadata_file` \"meta.json\" read from next to the "
                            f"dataset config: {tmp_path / 'data/meta.json'}"]


def test_folder_mode_in_json_and_its_image_folder_must_exist(here):
    args = here / "a.toml"
    args.write_text("resolution = 512\nin_json = 'meta.json'\ntrain_data_dir = 'ft'\n")
    with pytest.raises(ConfigError) as caught:
        load_train_config(["--config_file", str(args)])
    assert [str(p).split(" (")[0] for p in caught.value.problems] == [
        f"{args}:2: key `in_json`: file not found: meta.json", f"{args}:3: key `train_data_dir`: folder not found: ft"]


def test_num_repeats_zero_skips_the_subset_like_kohya(here):
    _make(here, "a", "b")
    loaded = _load(here, """\
        [[datasets]]
        resolution = 512
          [[datasets.subsets]]
          image_dir = "a"
          num_repeats = 0
          [[datasets.subsets]]
          image_dir = "b"
          [[datasets.subsets]]
          image_dir = "not checked: skipped"
          num_repeats = 0
        """)
    assert [s.image_dir for s in loaded.datasets.subsets] == ["b"]
    assert loaded.notes == [f'{here / "data.toml"}:3: note: subset "a" has num_repeats = 0: skipped, as kohya does',
                            f'{here / "data.toml"}:8: note: subset "not checked: skipped" has num_repeats = 0: '
                            "skipped, as kohya does"]
