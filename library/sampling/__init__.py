"""Image generation: noise schedules, samplers, A1111 seeds and infotext, batched generation."""
