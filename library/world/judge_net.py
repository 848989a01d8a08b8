"""The judge's classifier: reads a world picture's attributes back (hair, eyes, shirt, background, ...).

    python -m library.world.judge_net OUT.safetensors [--steps N] [--seed S]

It is trained on the world's ground truth only (every colour pair, the novel accessory included, slightly blurred
and noisy pictures so that generated ones read as well), never on what a diffusion model made, and no training of
a diffusion model touches it. `library.world.judge` uses it to score a model's pictures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image, ImageFilter

from ..data.pixels import to_batch
from ..errors import UserError
from .figures import ACCESSORIES, NOVEL_ACCESSORY, TAG_GROUPS, Figure, draw_figure
from .sampling import figure_at

SIDE = 128  # every picture is read at 128×128
JUDGE_SEED = 1_000  # the judge's pictures come from other world seeds than the base model's
NO_ACCESSORY = "no accessory"
ATTRIBUTES: dict[str, list[str]] = {**TAG_GROUPS, "accessory": [NO_ACCESSORY, *ACCESSORIES, NOVEL_ACCESSORY]}


def truth(fig: Figure) -> dict[str, str]:
    """The tag each attribute of `fig` has: what the judge should read."""
    return {
        "hair": f"{fig.hair} hair",
        "hair length": "long hair" if fig.long_hair else "short hair",
        "eyes": f"{fig.eyes} eyes",
        "shirt": f"{fig.shirt} shirt",
        "mouth": "smile" if fig.smile else "closed mouth",
        "background": f"{fig.background} background",
        "accessory": fig.accessory or NO_ACCESSORY,
    }


def with_tag(fig: Figure, name: str, tag: str) -> Figure:
    """`fig` with attribute `name` changed so that `truth` gives `tag` for it."""
    if name == "hair length":
        return replace(fig, long_hair=tag == "long hair")
    if name == "mouth":
        return replace(fig, smile=tag == "smile")
    if name == "accessory":
        return replace(fig, accessory=None if tag == NO_ACCESSORY else tag)
    return replace(fig, **{name: tag.removesuffix(f" {name}")})  # hair, eyes, shirt, background


class JudgeNet(torch.nn.Module):
    """Four strided convolutions, then average and max pooling (max keeps small things: eyes, a star), one
    linear layer for all attributes' logits."""

    def __init__(self) -> None:
        super().__init__()
        widths = [3, 24, 48, 64, 96]
        layers: list[torch.nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [torch.nn.Conv2d(a, b, 3, stride=2, padding=1), torch.nn.BatchNorm2d(b), torch.nn.ReLU()]
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(2 * widths[-1], sum(len(v) for v in ATTRIBUTES.values()))
        self.accuracy_on_world: dict[str, float] = {}  # measured when it was made, kept in its file

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        logits = self.head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))
        return dict(zip(ATTRIBUTES, logits.split([len(v) for v in ATTRIBUTES.values()], dim=1)))


def to_input(images: list[Image.Image]) -> torch.Tensor:
    """Pictures of any size as the judge reads them: RGB, 128×128, [-1, 1]."""
    return to_batch([image.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR) for image in images])


@torch.no_grad()
def read_attributes(net: JudgeNet, images: list[Image.Image], batch: int = 64) -> list[dict[str, str]]:
    """What the judge sees in each picture: attribute -> tag."""
    net.eval()
    seen: list[dict[str, str]] = []
    for start in range(0, len(images), batch):
        logits = net(to_input(images[start:start + batch]))
        picks = {name: out.argmax(dim=1).tolist() for name, out in logits.items()}
        for row in range(len(images[start:start + batch])):
            seen.append({name: ATTRIBUTES[name][picks[name][row]] for name in ATTRIBUTES})
    return seen


def judge_figure(seed: int, index: int) -> Figure:
    """A picture for the judge to learn from: any colour pair, and the novel accessory as often as the others."""
    fig = figure_at(JUDGE_SEED + seed, index, held_out=False)
    rng = random.Random(f"judge:{seed}:{index}")
    if rng.random() < 0.1:
        fig = replace(fig, accessory=NOVEL_ACCESSORY)
    return fig


def _roughen(image: Image.Image, rng: random.Random) -> Image.Image:
    """Blur some pictures a little, as a small VAE draws them."""
    if rng.random() < 0.6:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return image


def train_judge(steps: int = 2500, batch: int = 32, seed: int = 0, say=print) -> JudgeNet:
    torch.manual_seed(seed)
    net = JudgeNet()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    rng = random.Random(f"judge-train:{seed}")
    started = time.monotonic()
    net.train()
    for step in range(steps):
        figs = [judge_figure(seed, step * batch + k) for k in range(batch)]
        x = to_input([_roughen(draw_figure(fig), rng) for fig in figs])
        x = (x + 0.06 * torch.randn(x.shape)).clamp(-1, 1)
        logits = net(x)
        loss = sum(torch.nn.functional.cross_entropy(logits[name], torch.tensor(
            [values.index(truth(fig)[name]) for fig in figs])) for name, values in ATTRIBUTES.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == steps - 1:
            say(f"judge step {step + 1}/{steps}: loss {loss.item():.3f} ({time.monotonic() - started:.0f} s)")
    net.eval()
    return net


def accuracy_on_world(net: JudgeNet, count: int = 600, seed: int = 99) -> dict[str, float]:
    """Per attribute, the share of true world pictures (not seen in training) the judge reads right."""
    figs = [judge_figure(seed, i) for i in range(count)]
    seen = read_attributes(net, [draw_figure(fig) for fig in figs])
    return {name: sum(s[name] == truth(f)[name] for s, f in zip(seen, figs)) / count for name in ATTRIBUTES}


def save_judge(net: JudgeNet, path: Path, accuracy: dict[str, float]) -> Path:
    from safetensors.torch import save_file

    from ..atomic import atomic_path

    meta = {"attributes": json.dumps(ATTRIBUTES), "accuracy_on_world": json.dumps(accuracy)}
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata=meta)
    return path


def load_judge(path: Path) -> JudgeNet:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"judge weights {path} not found; make them with `python -m library.world.judge_net {path}`.")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if json.loads(meta.get("attributes", "{}")) != ATTRIBUTES:
        raise UserError(f"{path} was trained for other attributes than this world has; train it again with "
                        f"`python -m library.world.judge_net {path}`.")
    net = JudgeNet()
    net.load_state_dict(load_file(str(path)))
    net.accuracy_on_world = json.loads(meta.get("accuracy_on_world", "{}"))
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m library.world.judge_net", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, metavar="OUT", help="where to write the judge (.safetensors)")
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    net = train_judge(args.steps, seed=args.seed)
    accuracy = accuracy_on_world(net)
    save_judge(net, args.out, accuracy)
    print("accuracy on unseen world pictures: " + ", ".join(f"{k} {v:.1%}" for k, v in accuracy.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
