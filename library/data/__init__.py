"""Training data: kohya folders, dataset configs and fine-tuning metadata turned into seeded batch plans.

`dataset.build_training_data` is the entry point; `loader.iterate_batches` runs plans through DataLoader
workers. Nothing is imported here, so `library.config` (which reads `listing`) stays instant to import.
"""
