"""Word-frequency lists: the vocabulary the self-generated regularization draws single-word prompts from.

Sources: a tag-autocomplete CSV (`name,type,post_count,aliases`, what A1111 users already have from the
tagcomplete extension), the training captions themselves (tag counts), or a plain `word count` text file.
Every source yields words in *prompt form*, so that the drawn word can be pasted into an A1111 prompt unchanged
and words from different sources compare equal:

- underscores become spaces (`long_hair` -> `long hair`), except in emoticon tags, recognised as tags with no two
  letters or digits in a row (`^_^`, `>_<`, `o_o`, `:d`), whose underscores are part of the face;
- parentheses and square brackets are escaped with a backslash (`star_(symbol)` -> `star \\(symbol\\)`,
  `;)` -> `;\\)`), because A1111 reads bare brackets as emphasis or scheduling syntax;
- text that is already in prompt form (`star \\(symbol\\)`, `star (symbol)`) maps to the same word, so captions
  written either way are counted together. Case is kept.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from library.errors import UserError

TAG_TYPES: Mapping[str, int] = {"general": 0, "artist": 1, "copyright": 3, "character": 4, "meta": 5}
"""Danbooru tag categories as tagcomplete numbers them (type 2 is unused on Danbooru)."""

_KOHYA_SUBSET = re.compile(r"^\d+_.")
_ESCAPED = re.compile(r"\\([()\[\]])")
_BRACKET = re.compile(r"([()\[\]])")
_WORDISH = re.compile(r"[^\W_]{2}")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class WordList:
    """Words in prompt form with their counts (frequencies), in descending count order; `source` says where
    they came from and how they were filtered, for summaries and error messages."""

    words: tuple[str, ...]
    counts: tuple[int, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.words) != len(self.counts):
            raise ValueError(f"{len(self.words)} words but {len(self.counts)} counts")
        if len(set(self.words)) != len(self.words):
            raise ValueError("duplicate words in WordList")
        if any(not isinstance(c, int) or c < 0 for c in self.counts):
            raise ValueError("counts must be non-negative integers")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def as_dict(self) -> dict[str, int]:
        return dict(zip(self.words, self.counts))

    def summary(self, top: int = 20) -> str:
        """Top words, entropy and coverage: enough to see at a glance whether the vocabulary is the intended one."""
        total = self.total
        lines = [f"word list from {self.source}: {len(self)} words, {total} counts"]
        if total:
            probs = [c / total for c in self.counts if c]
            entropy = -sum(p * math.log2(p) for p in probs)
            lines.append(f"entropy {entropy:.2f} bits (uniform would be {math.log2(len(probs)):.2f}); "
                         f"perplexity {2 ** entropy:.1f} words")
            for k in (10, 100, 1000):
                if k < len(self):
                    lines.append(f"top {k} words cover {sum(self.counts[:k]) / total:.1%} of draws")
            for word, count in list(zip(self.words, self.counts))[:top]:
                lines.append(f"  {count / total:8.4%}  {count:>10}  {word}")
        return "\n".join(lines)


def prompt_form(tag: str) -> str:
    """The tag as an A1111 prompt writes it (rule in the module docstring); idempotent."""
    text = _ESCAPED.sub(r"\1", tag.strip())
    if _WORDISH.search(text):
        text = text.replace("_", " ")
    text = _SPACES.sub(" ", text).strip()
    return _BRACKET.sub(r"\\\1", text)


# ---------------------------------------------------------------------------------------------- filters


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = [re.escape(prompt_form(part) if part.strip() else part) for part in pattern.split("*")]
    return re.compile("".join(p if i == 0 else ".*" + p for i, p in enumerate(parts)), re.IGNORECASE | re.DOTALL)


def _read_lines(path: Path, what: str) -> list[str]:
    """The lines of a UTF-8 text file (BOM allowed); an unreadable or non-UTF-8 file is a UserError naming `what`."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as error:
        raise UserError(f"{path}: cannot read the {what} ({error.strerror}); fix the path") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error.reason}); save the {what} as UTF-8") from None


def read_pattern_file(path: str | Path) -> tuple[str, ...]:
    """Exclude patterns, one per line; blank lines and `#` comments skipped (a pattern cannot start with `#`)."""
    lines = _read_lines(Path(path), "exclude file")
    return tuple(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))


@dataclass(frozen=True)
class WordFilter:
    """What to keep: counts at least `min_count`, no word matching an exclude pattern (exact words or `*` globs,
    in tag or prompt form, case-insensitive), then the `top_k` most frequent (0 keeps all)."""

    min_count: int = 1
    exclude: tuple[str, ...] = ()
    top_k: int = 0

    @classmethod
    def make(cls, *, min_count: int = 1, exclude: Iterable[str] | str = (), exclude_file: str | Path | None = None,
             top_k: int = 0) -> WordFilter:
        patterns = (exclude,) if isinstance(exclude, str) else tuple(exclude)
        if exclude_file is not None:
            patterns += read_pattern_file(exclude_file)
        if not isinstance(min_count, int) or min_count < 0:
            raise UserError(f"min_count must be a non-negative integer, got {min_count!r}")
        if not isinstance(top_k, int) or top_k < 0:
            raise UserError(f"top_k must be a non-negative integer (0 keeps all words), got {top_k!r}")
        return cls(min_count=min_count, exclude=tuple(p for p in (s.strip() for s in patterns) if p), top_k=top_k)

    def excludes(self, word: str) -> bool:
        return any(r.fullmatch(word) for r in _regexes(self.exclude))


_REGEX_CACHE: dict[tuple[str, ...], tuple[re.Pattern[str], ...]] = {}


def _regexes(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    if patterns not in _REGEX_CACHE:
        _REGEX_CACHE[patterns] = tuple(_pattern_regex(p) for p in patterns)
    return _REGEX_CACHE[patterns]


def _finish(counts: Mapping[str, int], source: str, what: str, fix: str, word_filter: WordFilter,
            removed: Sequence[str] = ()) -> WordList:
    """Filter, sort and wrap; if nothing is left, say what was read and which filter removed what."""
    if not counts and not removed:
        raise UserError(f"{source}: no words found ({what}); {fix}")
    if counts and not any(counts.values()):
        raise UserError(f"{source}: {len(counts)} words read but every count is 0, so there are no frequencies "
                        f"to draw from; give each word a positive count")
    reasons = list(removed)
    low = {w: c for w, c in counts.items() if c < max(word_filter.min_count, 1)}
    if low:
        reasons.append(f"{len(low)} with count below min_count={max(word_filter.min_count, 1)}")
    kept = {w: c for w, c in counts.items() if w not in low}
    excluded = [w for w in kept if word_filter.excludes(w)]
    if excluded:
        reasons.append(f"{len(excluded)} matching exclude patterns {list(word_filter.exclude)}")
    for word in excluded:
        del kept[word]
    if not kept:
        raise UserError(f"{source}: {what}, but the filters removed every word: {'; '.join(reasons)}. "
                        f"Loosen the filters (types, min_count, exclude)")
    ordered = sorted(kept.items(), key=lambda item: (-item[1], item[0]))
    if word_filter.top_k:
        ordered = ordered[:word_filter.top_k]
    description = f"{source} ({what}; kept {len(ordered)}" + (f", removed {'; '.join(reasons)}" if reasons else "")
    description += f", top_k={word_filter.top_k})" if word_filter.top_k else ")"
    return WordList(tuple(w for w, _ in ordered), tuple(c for _, c in ordered), description)


def _add(counts: dict[str, int], word: str, count: int) -> None:
    counts[word] = counts.get(word, 0) + count


# ---------------------------------------------------------------------------------------------- tag CSV


def _tag_types(types: Iterable[int | str] | int | str | None) -> frozenset[int] | None:
    if types is None:
        return None
    items = (types,) if isinstance(types, (int, str)) else tuple(types)
    out = set()
    for item in items:
        if isinstance(item, str) and item.strip().lower() in TAG_TYPES:
            out.add(TAG_TYPES[item.strip().lower()])
        elif isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit()):
            out.add(int(item))
        else:
            raise UserError(f"unknown tag type {item!r}; use a number or one of {', '.join(TAG_TYPES)}")
    return frozenset(out)


def _integer(text: str, path: Path, line: int, column: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UserError(f"{path}, line {line}: {column} {text!r} is not an integer; the tag CSV format is "
                        f"name,type,post_count,aliases with whole numbers for type and post_count") from None
    if value < 0:
        raise UserError(f"{path}, line {line}: {column} {value} is negative; fix or delete the row")
    return value


def load_tag_csv(path: str | Path, *, types: Iterable[int | str] | int | str | None = (0,),
                 exclude: Iterable[str] | str = (), exclude_file: str | Path | None = None, min_count: int = 1,
                 top_k: int = 0) -> WordList:
    """A tag-autocomplete CSV (`name,type,post_count,aliases`, no header; aliases empty, one, or a quoted
    comma-separated list) as a word list weighted by post count. `types` keeps those categories (numbers or names,
    default general only, since artist/character/meta tags are not ordinary vocabulary; None keeps all)."""
    path = Path(path)
    wanted = _tag_types(types)
    counts: dict[str, int] = {}
    rows = by_type = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            try:
                for row in reader:
                    line = reader.line_num
                    if not row or all(not cell.strip() for cell in row):
                        continue
                    if len(row) < 3:
                        raise UserError(f"{path}, line {line}: {len(row)} column(s), expected name,type,post_count"
                                        f"[,aliases]; a list without post counts gives no frequencies, use the "
                                        f"tagcomplete danbooru.csv (or a `word count` text file)")
                    if len(row) > 4:
                        raise UserError(f"{path}, line {line}: {len(row)} columns, expected name,type,post_count,"
                                        f"aliases; quote the aliases field when it lists several aliases")
                    name = row[0].strip()
                    if not name:
                        raise UserError(f"{path}, line {line}: empty tag name; fix or delete the row")
                    tag_type = _integer(row[1], path, line, "type")
                    count = _integer(row[2], path, line, "post_count")
                    rows += 1
                    if wanted is not None and tag_type not in wanted:
                        by_type += 1
                        continue
                    _add(counts, prompt_form(name), count)
            except csv.Error as error:
                raise UserError(f"{path}, line {reader.line_num}: malformed CSV ({error}); check the quotes") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read the tag CSV ({error.strerror}); fix the path") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error.reason}); save the CSV as UTF-8") from None
    removed = [f"{by_type} not of types {sorted(wanted)}"] if by_type and wanted is not None else []
    return _finish(counts, str(path), f"{rows} tag rows read", "the tag CSV is empty; fill it or pick another file",
                   WordFilter.make(min_count=min_count, exclude=exclude, exclude_file=exclude_file, top_k=top_k),
                   removed)


# ---------------------------------------------------------------------------------------------- captions


def _caption_files(folder: Path, extension: str) -> list[Path]:
    """Caption files of a kohya dataset: those in `folder` itself and, recursively, in its `N_name` subfolders."""
    files = [p for p in folder.iterdir() if p.is_file() and p.name.endswith(extension)]
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and _KOHYA_SUBSET.match(sub.name):
            files += [p for p in sub.rglob(f"*{extension}") if p.is_file()]
    return sorted(files)


def words_from_captions(folder_or_folders: str | Path | Iterable[str | Path], caption_extension: str = ".txt",
                        separator: str = ",", *, exclude: Iterable[str] | str = (),
                        exclude_file: str | Path | None = None, min_count: int = 1, top_k: int = 0) -> WordList:
    """Tag counts over the captions of a kohya dataset: each tag counts once per caption it appears in (repeats
    are not multiplied in). Tags are split on `separator` and on line breaks, stripped, and empty ones ignored."""
    folders = [Path(folder_or_folders)] if isinstance(folder_or_folders, (str, Path)) else \
        [Path(f) for f in folder_or_folders]
    if not folders:
        raise UserError("no caption folders given; pass the dataset folder (train_data_dir)")
    counts: dict[str, int] = {}
    files: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"{folder}: not a folder; pass the dataset folder holding the captions")
        files += _caption_files(folder, caption_extension)
    for file in files:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as error:
            raise UserError(f"{file}: caption is not UTF-8 text ({error.reason}); save it as UTF-8") from None
        except OSError as error:
            raise UserError(f"{file}: cannot read the caption ({error.strerror})") from None
        _count_tags(counts, text, separator)
    source = ", ".join(str(f) for f in folders)
    what = f"{len(files)} caption files (*{caption_extension})"
    return _finish(counts, source, what, f"put {caption_extension} captions next to the images (in the folder or "
                   f"its N_name subfolders), or set caption_extension",
                   WordFilter.make(min_count=min_count, exclude=exclude, exclude_file=exclude_file, top_k=top_k))


def _count_tags(counts: dict[str, int], caption: str, separator: str) -> None:
    """Add one to each distinct tag of `caption` (split on `separator` and line breaks, in prompt form)."""
    for tag in {prompt_form(t) for line in caption.splitlines() for t in line.split(separator)}:
        if tag:
            _add(counts, tag, 1)


def words_from_texts(captions: Iterable[str], source: str, separator: str = ",", *,
                     exclude: Iterable[str] | str = (), exclude_file: str | Path | None = None, min_count: int = 1,
                     top_k: int = 0) -> WordList:
    """Tag counts over captions already in memory (the trainer's dataset, whatever its source format), counted as
    `words_from_captions` counts files."""
    counts: dict[str, int] = {}
    number = 0
    for number, caption in enumerate(captions, 1):
        _count_tags(counts, caption, separator)
    return _finish(counts, source, f"{number} captions", "caption the training images (tags separated by "
                   f"{separator!r}) or use a tag CSV or word list",
                   WordFilter.make(min_count=min_count, exclude=exclude, exclude_file=exclude_file, top_k=top_k))


def keep_only(word_list: WordList, include: Iterable[str]) -> WordList:
    """The words of `word_list` matching any `include` pattern (exact words or `*` globs, case-insensitive);
    no patterns keep everything."""
    patterns = tuple(p.strip() for p in include if p.strip())
    if not patterns:
        return word_list
    regexes = _regexes(patterns)
    kept = [(w, c) for w, c in zip(word_list.words, word_list.counts) if any(r.fullmatch(w) for r in regexes)]
    if not kept:
        raise UserError(f"{word_list.source}: no word matches the include patterns {list(patterns)}; check their "
                        f"spelling (tags are compared in prompt form, e.g. `long hair`, `star \\(symbol\\)`)")
    return WordList(tuple(w for w, _ in kept), tuple(c for _, c in kept),
                    f"{word_list.source}, keeping {len(kept)} matching {list(patterns)}")


def caption_form(word: str) -> str:
    """A word as a training caption spells it: prompt form without the backslashes A1111 prompts need (the trainer
    reads captions literally, as kohya does)."""
    return _ESCAPED.sub(r"\1", word)


# ---------------------------------------------------------------------------------------------- text list


def _split_count(line: str) -> tuple[str, str | None]:
    """`word,count` or `word count` (the word may hold spaces) -> (word, count text); bare word -> (word, None)."""
    for head, sep, tail in (line.rpartition(","), line.rpartition(" "), line.rpartition("\t")):
        if sep and head.strip() and re.fullmatch(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?", tail.strip()):
            return head.strip(), tail.strip()
    return line.strip(), None


def load_text_list(path: str | Path, *, exclude: Iterable[str] | str = (), exclude_file: str | Path | None = None,
                   min_count: int = 1, top_k: int = 0) -> WordList:
    """A plain list, one `word count` or `word,count` per line; a file of bare words (no counts at all) means
    count 1 each, i.e. uniform. Blank lines and `#` comments are skipped; a word listed twice adds up."""
    path = Path(path)
    lines = _read_lines(path, "word list")
    entries = [(number, *_split_count(line)) for number, line in enumerate(lines, 1)
               if line.strip() and not line.lstrip().startswith("#")]
    counted = [e for e in entries if e[2] is not None]
    bare = [e for e in entries if e[2] is None]
    if counted and bare:
        first_bare = bare[0]
        raise UserError(f"{path}, line {first_bare[0]}: {first_bare[1]!r} has no count while line {counted[0][0]} "
                        f"has one; give every line a count (`word count` or `word,count`) or none at all")
    counts: dict[str, int] = {}
    for number, word, count_text in entries:
        if count_text is None:
            count = 1
        elif re.fullmatch(r"[+-]?\d+", count_text):
            count = int(count_text)
            if count < 0:
                raise UserError(f"{path}, line {number}: count {count} is negative; fix or delete the line")
        else:
            raise UserError(f"{path}, line {number}: count {count_text!r} is not a whole number; counts are "
                            f"occurrences, write them as integers")
        _add(counts, prompt_form(word), count)
    return _finish(counts, str(path), f"{len(entries)} lines read", "the file has no words (only blank lines or "
                   "comments); write one `word count` per line",
                   WordFilter.make(min_count=min_count, exclude=exclude, exclude_file=exclude_file, top_k=top_k))


# ---------------------------------------------------------------------------------------------- dispatch


def _looks_like_tag_csv(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.reader(handle):
                if row and any(cell.strip() for cell in row):
                    return len(row) >= 3
    except (OSError, UnicodeDecodeError, csv.Error):
        return True  # let load_tag_csv report the problem with its own message
    return True


def load_word_list(path_or_dir: str | Path, *, types: Iterable[int | str] | int | str | None = None,
                   caption_extension: str = ".txt", separator: str = ",", **filters) -> WordList:
    """One entry point for configs and CLIs: a folder is a dataset (captions counted), a `.csv` with three or more
    columns a tag CSV (`types` defaults to general), anything else a `word count` text list. `filters` are
    min_count, exclude, exclude_file and top_k."""
    path = Path(path_or_dir)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder; give a tag CSV, a `word count` list or a dataset folder")
    if path.is_dir():
        if types is not None:
            raise UserError(f"{path}: tag types only apply to a tag CSV; remove the types filter for captions")
        return words_from_captions(path, caption_extension, separator, **filters)
    if path.suffix.lower() == ".csv" and _looks_like_tag_csv(path):
        return load_tag_csv(path, types=(0,) if types is None else types, **filters)
    if types is not None:
        raise UserError(f"{path}: tag types only apply to a tag CSV (name,type,post_count,aliases); "
                        f"remove the types filter for a plain word list")
    return load_text_list(path, **filters)
