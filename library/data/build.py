"""From the dataset config to training items: scan subsets, place images in buckets, split off validation
images, balance regularization images, group samples by bucket, and write the summary the user reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config.dataset_spec import FINE_TUNING, DatasetConfig, DatasetSpec, SubsetSpec
from ..config.train_config import TrainConfig
from ..errors import UserError
from .buckets import BucketRule, Placement, Size, ar_error, bucket_table
from .captions import count_tags
from .items import Entry, Item, Scan, scan_dreambooth
from .metadata import scan_metadata
from .plan import BucketGroup
from .selection import balance_reg_repeats, split_validation

LATENT_FACTOR = 8  # the VAE's downscaling: image sides must be multiples of it

Placed = tuple[Entry, Placement]

# Subset options this toolkit does not act on yet, with what that means for the user.
NOT_SUPPORTED = {
    "face_crop_aug_range": "is not supported and is ignored: images are centre-cropped (or random_crop)",
    "alpha_mask": "is not supported and is ignored: transparent areas are composited onto white and trained",
    "conditioning_data_dir": "(masked loss) is not supported and is ignored",
    "cache_info": "is not needed: image sizes are read from the file headers at every start",
}


@dataclass
class Collected:
    items: list[Item] = field(default_factory=list)
    held_out: list[Item] = field(default_factory=list)  # validation_split images, never trained
    groups: list[BucketGroup] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)


def collect(datasets: DatasetConfig, train: TrainConfig) -> Collected:
    out = Collected()
    for number, spec in enumerate(datasets.datasets):
        first = len(out.items)
        _collect_dataset(number, spec, train, out)
        out.groups += _groups(number, spec.batch_size, out.items, first)
    out.notes += _unsupported(datasets)
    return out


def _collect_dataset(number: int, spec: DatasetSpec, train: TrainConfig, out: Collected) -> None:
    rule = _bucket_rule(number, spec)
    chosen = _scan_subsets(number, spec, rule, train, out)
    repeats, target = _repeats(chosen)
    items = [item for (subset, placed), counts in zip(chosen, repeats)
             for item in _items(number, subset, placed, counts, train) if item.repeats]
    out.summary += _summary(number, spec, rule, chosen, items, target)
    unused = sum(len(placed) for subset, placed in chosen if subset.is_reg) - sum(i.subset.is_reg for i in items)
    if unused:
        out.notes.append(f"dataset {number + 1}: {unused} regularization image(s) are not used: kohya balances them "
                         f"to the {target} training samples (repeats x images) and never uses the surplus")
    out.items += items


def _scan_subsets(number: int, spec: DatasetSpec, rule: BucketRule, train: TrainConfig,
                  out: Collected) -> list[tuple[SubsetSpec, list[Placed]]]:
    """Each subset with its placed images, after the validation split; problems, notes and tags go to `out`."""
    candidates = rule.candidates() if rule.enabled and not rule.no_upscale else []
    split_seed = spec.validation_seed if spec.validation_seed is not None else train.training.seed or 0
    chosen: list[tuple[SubsetSpec, list[Placed]]] = []
    seen: set[str] = set()
    for subset in spec.subsets:
        source = _source(subset)
        if source in seen:
            out.notes.append(f"dataset {number + 1}: `{source}` is listed twice; the later subset is skipped, as kohya")
            continue
        seen.add(source)
        scan = scan_metadata(subset) if spec.kind == FINE_TUNING else scan_dreambooth(subset)
        placed = _placed(scan, rule, candidates)
        out.problems += scan.problems
        out.notes += scan.notes
        if not subset.is_reg:
            placed, held = split_validation(placed, spec.validation_split, split_seed)
            out.held_out += _items(number, subset, held, [subset.num_repeats] * len(held), train)
            if held:
                out.notes.append(f"{source}: {len(held)} of {len(placed) + len(held)} images held out for "
                                 f"validation (validation_split {spec.validation_split}); they are not trained")
        _count_tags(Path(source).name, [entry.tags for entry, _ in placed], out.tag_frequency)
        chosen.append((subset, placed))
    if spec.validation_dir:
        out.held_out += _validation_folder(number, spec, rule, candidates, train, out)
    return chosen


def _validation_folder(number: int, spec: DatasetSpec, rule: BucketRule, candidates: list[Size], train: TrainConfig,
                       out: Collected) -> list[Item]:
    """The images of `validation_dir`, captioned as the dataset's first training subset, never trained."""
    first = next((s for s in spec.subsets if not s.is_reg), None)
    if first is None or not Path(spec.validation_dir).is_dir():
        why = "folder not found" if first is not None else "the dataset has no training subset to caption it like"
        raise UserError(f"dataset {number + 1}: validation_dir `{spec.validation_dir}`: {why}")
    subset = replace(first, image_dir=spec.validation_dir, num_repeats=1)
    scan = scan_dreambooth(subset)
    placed = _placed(scan, rule, candidates)
    out.problems += scan.problems
    out.notes += scan.notes + [f"{spec.validation_dir}: {len(placed)} validation image(s), not trained"]
    return _items(number, subset, placed, [1] * len(placed), train)


def _bucket_rule(number: int, spec: DatasetSpec) -> BucketRule:
    rule = BucketRule.of(spec)
    if rule.enabled and rule.steps % LATENT_FACTOR:
        raise UserError(f"dataset {number + 1}: `bucket_reso_steps` {rule.steps} must be a multiple of "
                        f"{LATENT_FACTOR} (the VAE works on 8x8 pixel blocks); 64 is the usual value")
    if not rule.enabled and any(side % LATENT_FACTOR for side in rule.resolution):
        raise UserError(f"dataset {number + 1}: `resolution` {rule.resolution[0]}x{rule.resolution[1]} must have "
                        f"sides that are multiples of {LATENT_FACTOR}, e.g. 512 or 512,768")
    return rule


def _source(subset: SubsetSpec) -> str:
    return str(subset.metadata_file or subset.image_dir)


def _placed(scan: Scan, rule: BucketRule, candidates: list[Size]) -> list[Placed]:
    """(entry, placement) for every entry that fits a bucket; the others become problems."""
    placed, upscaled = [], 0
    for entry in scan.entries:
        placement = rule.place(entry.size, candidates)
        if 0 in placement.bucket:
            scan.problems.append(f"{entry.path}: {entry.size[0]}x{entry.size[1]} is smaller than bucket_reso_steps "
                                 f"{rule.steps} on one side, so no bucket fits it with bucket_no_upscale")
            continue
        upscaled += placement.resized[0] > entry.size[0]
        placed.append((entry, placement))
    if upscaled and not rule.enabled:
        scan.notes.append(f"{upscaled} image(s) smaller than the resolution {rule.resolution[0]}x{rule.resolution[1]} "
                          "are enlarged (kohya stops on these without enable_bucket); larger originals train better")
    return placed


def _repeats(chosen: list[tuple[SubsetSpec, list[Placed]]]) -> tuple[list[list[int]], int]:
    """Repeats of each image, subset by subset: num_repeats, with regularization images balanced against
    the training samples (the target, also returned) as kohya does."""
    target = sum(subset.num_repeats * len(placed) for subset, placed in chosen if not subset.is_reg)
    reg = iter(balance_reg_repeats([subset.num_repeats for subset, placed in chosen if subset.is_reg
                                    for _ in placed], target))
    return [[next(reg) if subset.is_reg else subset.num_repeats for _ in placed] for subset, placed in chosen], target


def _items(number: int, subset: SubsetSpec, placed: list[Placed], repeats: list[int],
           train: TrainConfig) -> list[Item]:
    weight = train.training.prior_loss_weight if subset.is_reg else 1.0
    return [Item(entry.path, entry.caption, subset, number, count, entry.size, placement, weight)
            for (entry, placement), count in zip(placed, repeats, strict=True)]


def _summary(number: int, spec: DatasetSpec, rule: BucketRule, chosen: list[tuple[SubsetSpec, list[Placed]]],
             items: list[Item], target: int) -> list[str]:
    """The dataset's header line, one line per subset and, with buckets, kohya's bucket table."""
    buckets = ("no buckets" if not rule.enabled else f"buckets from image sizes (no upscale), step {rule.steps}"
               if rule.no_upscale else f"buckets {rule.min_reso}-{rule.max_reso} step {rule.steps}")
    lines = [f"dataset {number + 1}: {spec.kind}, batch {spec.batch_size}, "
             f"resolution {rule.resolution[0]}x{rule.resolution[1]}, {buckets}"]
    for subset, placed in chosen:
        used = [item for item in items if item.subset is subset]
        samples = sum(item.repeats for item in used)
        if subset.is_reg:
            weight = f", loss weight {used[0].loss_weight}" if used else ""
            lines.append(f"  {_source(subset)}: regularization, {len(used)} of {len(placed)} images used, "
                         f"{samples} samples (balancing {target} training samples){weight}")
        else:
            tokens = f", class tokens '{subset.class_tokens}'" if subset.class_tokens else ""
            lines.append(f"  {_source(subset)}: {len(placed)} images x {subset.num_repeats} repeats = "
                         f"{samples} samples{tokens}")
    if rule.enabled:
        per_bucket: Counter[Size] = Counter()
        for item in items:
            per_bucket[item.placement.bucket] += item.repeats
        errors = [ar_error(item.size, item.placement.bucket) for item in items]
        lines += ["  " + line for line in bucket_table(per_bucket, errors)]
    return lines


def _count_tags(name: str, texts: list[str], table: dict[str, dict[str, int]]) -> None:
    """kohya keys ss_tag_frequency by folder (or metadata file) name; equal names add up."""
    counts = table.setdefault(name, {})
    for tag, count in count_tags(texts).items():
        counts[tag] = counts.get(tag, 0) + count


def _groups(number: int, batch_size: int, items: list[Item], first: int) -> list[BucketGroup]:
    """One group per bucket of this dataset (sorted by size); each item index repeated `repeats` times."""
    members: dict[Size, list[int]] = {}
    for index in range(first, len(items)):
        members.setdefault(items[index].placement.bucket, []).extend([index] * items[index].repeats)
    return [BucketGroup(number, bucket, tuple(members[bucket]), batch_size) for bucket in sorted(members)]


def _unsupported(datasets: DatasetConfig) -> list[str]:
    notes = []
    for name, why in NOT_SUPPORTED.items():
        used = [_source(s) for s in datasets.subsets if getattr(s, name, None)]
        if used:
            notes.append(f"`{name}` {why} (subsets: {', '.join(used)})")
    return notes
