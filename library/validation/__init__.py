"""Measurements while training and what they decide: a fixed-noise validation loss, the drift meter (behaviour
distance to the base on single-word prompts), similarity to the base, the overfit rule with its checkpoint pick,
and `checkpoints.json` with a report. All of it plugs into the loop as one callback (`measurements.py`).
"""
