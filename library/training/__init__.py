"""The training loop and what plugs into it: noise, losses, optimizers, schedules, state, progress."""
