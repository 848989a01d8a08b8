"""Regularization against language drift: word-frequency lists and the seeded word sampler they feed."""

from library.regularization.sampler import WordSampler, chi_square, chi_square_sf, target_probabilities
from library.regularization.wordfreq import (TAG_TYPES, WordFilter, WordList, caption_form, keep_only, load_tag_csv,
                                             load_text_list, load_word_list, prompt_form, read_pattern_file,
                                             words_from_captions, words_from_texts)

__all__ = ["TAG_TYPES", "WordFilter", "WordList", "WordSampler", "caption_form", "chi_square", "chi_square_sf",
           "keep_only", "load_tag_csv", "load_text_list", "load_word_list", "prompt_form", "read_pattern_file",
           "target_probabilities", "words_from_captions", "words_from_texts"]
