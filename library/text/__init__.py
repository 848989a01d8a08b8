"""Text side of SD: the CLIP tokenizers (`library.text.tokenizer`)."""
