"""Text side of SD: the offline CLIP tokenizers (`tokenizer`), A1111-style 75-token chunking (`chunking`) and
encoding with CLIP skip (`conditioning`)."""
