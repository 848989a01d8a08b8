"""Certain Strategy: the library behind train_certain.py, gen_reg_images.py and similarity.py."""
