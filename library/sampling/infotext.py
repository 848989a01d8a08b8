"""A1111's infotext: the generation parameters text users paste, share and read back from PNGs.

    masterpiece, 1girl
    Negative prompt: lowres
    Steps: 28, Sampler: Euler a, CFG scale: 11, Seed: 114514, Size: 512x768, Model hash: 0123456789, Model: m, …

The format follows `processing.create_infotext` of A1111 1.10 (field order, quoting, number formatting),
so the WebUI's "PNG Info" and "Send to txt2img" read our images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..atomic import atomic_path
from .request import SAMPLER_LABELS, GenerationRequest, sampler_key

if TYPE_CHECKING:
    from PIL import Image

PNG_KEY = "parameters"


@dataclass(frozen=True)
class ModelIdentity:
    """What the infotext says about the model: A1111's 10-hex `Model hash` and `Model` (the file stem)."""

    hash: str | None = None
    name: str | None = None

    @classmethod
    def of_file(cls, path: str | os.PathLike | None) -> ModelIdentity:
        """Hash and stem of a checkpoint file; a folder (diffusers) has a name but no A1111 hash."""
        if path is None:
            return cls()
        path = Path(path)
        if not path.is_file():
            return cls(name=path.name)
        from ..models.hashes import model_hashes
        return cls(hash=model_hashes(path).autov2, name=path.stem)


def format_number(value: float) -> str:
    """As A1111 prints settings: 7.0 → "7", 7.5 → "7.5"."""
    return str(int(value)) if float(value).is_integer() else str(value)


def quote(value: Any) -> str:
    """A1111 `infotext_utils.quote`: JSON-quote values that hold `,`, a newline or `:` so the line stays parsable."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",\n:") else text


def format_infotext(prompt: str, negative_prompt: str, params: Mapping[str, Any]) -> str:
    """The three-part text; params with value None are left out, a value equal to its key is written alone."""
    fields = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in params.items() if v is not None)
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{fields}".strip()


def generation_params(request: GenerationRequest, seed: int, model: ModelIdentity) -> dict[str, Any]:
    """The parameter fields of one image, in A1111's order."""
    return {
        "Steps": request.steps,
        "Sampler": SAMPLER_LABELS[sampler_key(request.sampler)],
        "CFG scale": format_number(request.cfg_scale),
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": model.hash,
        "Model": model.name,
        "Clip skip": request.clip_skip if request.clip_skip and request.clip_skip > 1 else None,
    }


def infotext(request: GenerationRequest, seed: int, model: ModelIdentity) -> str:
    return format_infotext(request.prompt, request.negative_prompt, generation_params(request, seed, model))


def save_png(image: Image.Image, path: str | os.PathLike, text: str) -> Path:
    """Write `image` as PNG with `text` in a `parameters` chunk (tEXt, or iTXt when not latin-1), atomically."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(PNG_KEY, text)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def read_infotext(path: str | os.PathLike) -> str | None:
    """The `parameters` text of a PNG, or None when it has none."""
    from PIL import Image

    with Image.open(path) as image:
        return image.info.get(PNG_KEY)
