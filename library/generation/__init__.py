"""gen_reg_images.py's library: prompt, class, word-frequency and compare modes on top of `library.sampling`."""
