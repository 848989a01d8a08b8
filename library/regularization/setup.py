"""From the `[regularization]` options to the stream and monitor a training run plugs in.

In two parts, so that a bad word list or folder is reported before any model loads: `plan_regularization` reads
and checks the list (or folder) right after the dataset scan and writes its summary; `RegularizationPlan.plug_ins`
builds the stream and the monitor once the run's seed is resolved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..atomic import atomic_write_text
from ..errors import UserError
from ..plugins import Callback, Stream
from .monitor import RegularizationMonitor
from .pregenerated import PregeneratedStream, RegImage, read_reg_folder
from .sampler import WordSampler
from .stream import RegMix, SelfGeneratedStream, generation_settings
from .wordfreq import WordList, keep_only, load_word_list, prompt_form, words_from_texts

CAPTIONS = "captions"  # reg_word_list value: count the training captions


def trigger_words(class_tokens: list[str | None]) -> tuple[str, ...]:
    """What the training teaches as new words, so the word stream never draws them: each subset's class tokens
    as a whole (`sks girl`) and, for DreamBooth's `identifier class` folders, the identifier (`sks`)."""
    found: list[str] = []
    for tokens in class_tokens:
        if not tokens or not tokens.strip():
            continue
        found.append(tokens.strip())
        words = tokens.split()
        if len(words) > 1:
            found.append(words[0])
    return tuple(dict.fromkeys(prompt_form(w) for w in found))


def regularization_word_list(reg, data, caption_separator: str, caption_extension: str) -> WordList:
    """The word list the options describe, filtered (min_count, top_k, include, exclude, trigger words)."""
    excluded = list(reg.reg_exclude) + list(reg.reg_trigger_words)
    if not reg.reg_keep_trigger_words:
        excluded += trigger_words([item.subset.class_tokens for item in data.items if not item.subset.is_reg])
    excluded = list(dict.fromkeys(excluded))
    filters = dict(min_count=reg.reg_min_count, top_k=reg.reg_top_k, exclude=excluded,
                   exclude_file=reg.reg_exclude_file)
    if reg.reg_word_list == CAPTIONS:
        captions = [item.caption for item in data.items if not item.subset.is_reg]
        words = words_from_texts(captions, "the training captions", caption_separator, **filters)
    else:  # unset tag types: general for a tag CSV, and no complaint for a `word,count` .csv
        words = load_word_list(reg.reg_word_list, types=reg.reg_tag_types or None,
                               caption_extension=caption_extension, separator=caption_separator, **filters)
    return keep_only(words, reg.reg_include)


@dataclass
class RegularizationPlan:
    mode: str
    word_list: WordList | None = None  # self_wordfreq
    images: list[RegImage] | None = None  # pregenerated_wordfreq

    def plug_ins(self, train, run_seed: int, resolution: tuple[int, int], per_step: int
                 ) -> tuple[list[Stream], list[Callback]]:
        """(streams, callbacks) for the loop. `run_seed`: the run's resolved seed (the saved one when resuming);
        `resolution` (width, height) and `per_step` (images per optimizer step and process) of the training data."""
        reg = train.regularization
        seed = reg.reg_seed if reg.reg_seed is not None else run_seed
        mix = RegMix(ratio=reg.reg_ratio, batch=reg.reg_batch, every_n_steps=reg.reg_every_n_steps,
                     warmup_steps=reg.reg_warmup_steps)
        out = Path(train.saving.output_dir)
        if self.word_list is not None:
            sampler = WordSampler(self.word_list, seed, reg.reg_alpha)
            stream = SelfGeneratedStream(
                sampler, mix, generation_settings(reg, resolution, train.model.clip_skip), seed, per_step,
                reg.reg_loss_weight, save_images_to=out / "reg_images" if reg.save_reg_images else None)
            expected = sampler.expected_frequencies()
        else:
            stream = PregeneratedStream(self.images, mix, reg.reg_resolution or resolution, seed, per_step,
                                        reg.reg_loss_weight)
            expected = {w: n / len(self.images) for w, n in Counter(i.word for i in self.images).items()}
        monitor = RegularizationMonitor(stream, expected, self.word_list, reg.reg_alpha, out / "regularization")
        return [stream], [monitor]


def plan_regularization(train, data, say: Callable[[str], None], is_main: bool = True) -> RegularizationPlan | None:
    """Read and check what the regularization mode needs; None when nothing is mixed in by a stream ("none", and
    "prior", whose class images are part of the dataset). The main process writes the word list's summary."""
    reg = train.regularization
    if reg.reg_mode in ("none", "prior"):
        if reg.reg_mode == "prior" and not any(item.subset.is_reg for item in data.items):
            raise UserError("reg_mode = \"prior\" but the dataset has no regularization images: put class images in "
                            "`1_<class>` folders under reg_data_dir (or mark subsets is_reg = true)")
        return None
    out = Path(train.saving.output_dir) / "regularization"
    if reg.reg_mode == "pregenerated_wordfreq":
        images, missing = read_reg_folder(reg.reg_images_dir)
        if missing:
            say(f"note: {len(missing)} image(s) listed in {reg.reg_images_dir} are missing (e.g. "
                f"{missing[0].path.name}); using the {len(images)} present")
        say(f"regularization: {len(images)} pregenerated images from {reg.reg_images_dir}, "
            f"{len({i.word for i in images})} distinct words")
        return RegularizationPlan(reg.reg_mode, images=images)
    words = regularization_word_list(reg, data, train.dataset.caption_separator, train.dataset.caption_extension)
    summary = words.summary()
    say(f"regularization: self-generated, alpha {reg.reg_alpha}\n{summary}")
    if is_main:
        atomic_write_text(out / "word_list.txt", summary + "\n\n" + "".join(
            f"{count}\t{word}\n" for word, count in zip(words.words, words.counts)))
    return RegularizationPlan(reg.reg_mode, word_list=words)
