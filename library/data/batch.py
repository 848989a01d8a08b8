"""What the training loop consumes: one micro-batch from any stream (dataset, generated, teacher images)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    """Either `pixels` ([B,3,H,W] in [-1, 1]) or `latents` ([B,4,H/8,W/8], already times the VAE scaling
    factor) is set. `loss_weights` ([B]) carries prior_loss_weight for regularization samples and the mixing
    weight of generated samples; `keys` say where each sample came from, for logs and tests."""

    captions: list[str]
    loss_weights: torch.Tensor
    pixels: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    keys: list[str] = field(default_factory=list)
    stream: str = "train"

    def __len__(self) -> int:
        return len(self.captions)
