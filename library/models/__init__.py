"""Stable Diffusion model files: LDM single-file checkpoints and diffusers folders, offline.

Kept import-light on purpose (no torch here): `library.models.hashes` and the config checks import it too.
Entry points live in `library.models.sd_model` (`load_model`, `save_model`).
"""
