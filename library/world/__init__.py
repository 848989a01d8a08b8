"""The tiny world: procedural captioned figures whose ground truth is known, for a small base model to learn."""
