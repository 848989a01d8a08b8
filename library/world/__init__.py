"""The tiny world: procedural captioned figures whose ground truth is known, and what is built on them.

`figures` draws a figure and tags it, `sampling` draws figures by Zipf-like laws (`figure_at(seed, i)`), `make`
writes captioned sets, `pretrain` trains the shipped base model `models/tiny-world-sd1.safetensors` on them,
`judge_net` is the classifier that reads a picture's attributes back, and `judge` scores what a model draws.
"""
