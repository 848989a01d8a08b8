"""The line scanner behind `file:line` messages: tomllib gives values only, the scanner finds the lines."""

from __future__ import annotations

import pytest

from library.config import ConfigError
from library.config.toml_source import read_source, scan

TEXT = '''\
# comment with = and [brackets]
v2 = false  # trailing comment
[model_arguments]
pretrained_model_name_or_path = 'D:\\models\\a.safetensors'
"quoted key" = 1
[optimizer_arguments]
optimizer_args = [
  "weight_decay=0.01",  # a [ inside a comment
  "betas=(0.9,0.99)",
]
learning_rate = 1e-6
comment = """several
[not_a_table]
not_a_key = 1
"""
after = 2
dotted.key = 3
[[datasets]]
resolution = 512
  [[datasets.subsets]]
  image_dir = "x"
  [[datasets.subsets]]
  image_dir = "y"
[[datasets]]
  [[datasets.subsets]]
  custom_attributes = {a = 1, b = [1,
     2]}
  num_repeats = 1
'''


def test_scanner_maps_keys_and_headers_to_lines():
    lines = scan(TEXT).lines
    assert lines[("v2",)] == 2
    assert lines[("model_arguments", "quoted key")] == 5
    assert lines[("optimizer_arguments", "optimizer_args")] == 7
    assert lines[("optimizer_arguments", "learning_rate")] == 11  # after a multi-line array
    assert lines[("optimizer_arguments", "after")] == 16  # after a multi-line string that looks like TOML
    assert ("not_a_table",) not in lines and ("optimizer_arguments", "not_a_key") not in lines
    assert lines[("optimizer_arguments", "dotted", "key")] == 17


def test_scanner_counts_array_of_tables_entries():
    lines = scan(TEXT).lines
    assert lines[("datasets", 0)] == 18 and lines[("datasets", 0, "resolution")] == 19
    assert lines[("datasets", 0, "subsets", 1, "image_dir")] == 23
    assert lines[("datasets", 1, "subsets", 0)] == 25  # a new dataset restarts its subsets at 0
    assert lines[("datasets", 1, "subsets", 0, "num_repeats")] == 28


def test_keys_inside_inline_tables_fall_back_to_their_parent_line(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text(TEXT, encoding="utf-8")
    source = read_source(path, "--config_file")
    assert source.data["datasets"][1]["subsets"][0]["custom_attributes"] == {"a": 1, "b": [1, 2]}
    assert source.line(("datasets", 1, "subsets", 0, "custom_attributes", "b")) == 26
    assert str(source.where("datasets", 0, "subsets", 0, "image_dir")) == f"{path}:21"


def test_byte_order_mark_from_windows_editors_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeffseed = 1\n".encode("utf-8"))
    assert read_source(path, "--config_file").data == {"seed": 1}


def test_json_config_must_hold_an_object(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError) as caught:
        read_source(path, "--config_file")
    assert str(caught.value) == (f"{path}: the top level must be a JSON object, like {{\"key\": value, ...}}; "
                                 "this file holds a list")
