"""Training data: image folders and captions (kohya layout), and later buckets and the latent cache."""
