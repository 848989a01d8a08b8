"""The reference model-similarity calculator (similarity.py, and the trainer's drift checks).

- `blocks`: which attention layers are probed and their key names; `weights`: picking them out of a source;
- `files`: lazy readers for checkpoint files and diffusers folders; `probe`: the reference math;
- `compare`: base-vs-others and the N x N matrix over files; `state_dicts`: the same on in-memory weights;
- `report` and `plot`: table, JSON, CSV and the heatmap; `cli`: the script's arguments.

Modules import torch only where tensors are touched, so `similarity.py --help` stays fast.
"""
