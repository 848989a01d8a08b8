"""Folder mode: `train_data_dir` / `reg_data_dir` / `in_json` from the args, turned into the same DatasetConfig.

DreamBooth folder mode reads the sub-folder names only (`10_sks girl` -> 10 repeats, class tokens
"sks girl"); the data module lists their images. kohya skips a wrongly pointed folder with a log line and
later fails with "No data found"; we say what the folder should look like instead (images directly inside
it: move them into a `10_name` folder). Missing folders and a missing in_json are problems at the line that
names them (see `paths`).
"""

from __future__ import annotations

from pathlib import Path

from ..image_files import list_images
from .dataset_spec import DREAMBOOTH, FINE_TUNING, DatasetConfig, build_dataset
from .errors import CLI, Report, Where
from .paths import checked_path
from .train_config import TrainConfig

_EXAMPLE = "e.g. `10_sks girl` = 10 repeats, caption \"sks girl\""


def parse_folder_name(name: str) -> tuple[int, str] | None:
    """`10_sks girl` -> (10, "sks girl"), `3_my_char` -> (3, "my_char"); None for folders kohya skips."""
    head, _, tokens = name.partition("_")
    if not head.isdigit() or int(head) < 1:
        return None
    return int(head), tokens


def folder_mode_datasets(train: TrainConfig, where: dict[str, Where], report: Report) -> DatasetConfig | None:
    """The one dataset described by the folder options, or None (with problems reported) when they are wrong."""
    args = train.dataset

    def at(name: str) -> Where:
        return where.get(name, CLI)

    def path(name: str, folder: bool) -> str | None:  # as given, or found next to the args file; None: missing
        return checked_path(getattr(args, name), name, at(name), folder, "the args file", report)

    if args.in_json:
        if args.reg_data_dir:
            report.problem(at("reg_data_dir"), "key `reg_data_dir` works with DreamBooth folders, not with in_json "
                                               "(fine-tuning metadata)", "reg_data_dir")
            return None
        metadata = path("in_json", folder=False)
        images = path("train_data_dir", folder=True) if args.train_data_dir else None
        if metadata is None or (args.train_data_dir and images is None):
            return None
        subset = {"image_dir": images, "metadata_file": metadata}
        dataset = build_dataset(FINE_TUNING, [{}, {}], [subset], train, [at("in_json")], at("in_json"))
        return DatasetConfig((dataset,), "folder mode")
    if args.train_data_dir is None:
        report.problem(at("reg_data_dir"), "key `reg_data_dir` needs `train_data_dir` (the folder of the training "
                                           "images)", "reg_data_dir")
        return None
    subsets, origins = [], []
    for name, is_reg in (("train_data_dir", False), ("reg_data_dir", True)):
        folder = path(name, folder=True) if getattr(args, name) else None
        for sub, repeats, tokens in _repeat_folders(Path(folder), name, at(name), report) if folder else ():
            subsets.append({"image_dir": str(sub), "num_repeats": repeats, "class_tokens": tokens, "is_reg": is_reg})
            origins.append(at(name))
    if not subsets:
        return None
    dataset = build_dataset(DREAMBOOTH, [{}, {}], subsets, train, origins, at("train_data_dir"))
    return DatasetConfig((dataset,), "folder mode")


def _repeat_folders(root: Path, option: str, at: Where, report: Report) -> list[tuple[Path, int, str]]:
    found, skipped = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        parsed = parse_folder_name(sub.name)
        if parsed:
            found.append((sub, *parsed))
        else:
            skipped.append(sub.name)
    if not found:
        why = (f"it holds images directly, but `{option}` must be the PARENT of folders named `<repeats>_<name>` "
               f"({_EXAMPLE}): move the images into such a folder" if list_images(root) else
               f"it needs sub-folders named `<repeats>_<name>` ({_EXAMPLE})")
        if skipped:
            why += f"; found only {', '.join(f'`{s}`' for s in skipped[:5])}"
        report.problem(at, f"key `{option}`: no training folders in {root}: {why}", option)
    for name in skipped if found else ():
        report.note(at, f"`{option}`: skipped folder `{name}` (its name does not start with a repeat count like `10_`)")
    return found
