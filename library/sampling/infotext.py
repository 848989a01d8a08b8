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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..atomic import atomic_path
from ..errors import UserError
from .request import SAMPLER_LABELS, SCHEDULE_LABELS, USES_ENSD, GenerationRequest, sampler_key

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
    """The parameter fields of one image, in A1111's order.

    `Schedule type` is written only where it is not A1111's "Automatic" uniform default (DPM++ 2M: Karras), and
    `ENSD` only where A1111 writes it: non-zero, for a sampler whose noise it changes.
    """
    key = sampler_key(request.sampler)
    return {
        "Steps": request.steps,
        "Sampler": SAMPLER_LABELS[key],
        "Schedule type": SCHEDULE_LABELS.get(key),
        "CFG scale": format_number(request.cfg_scale),
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": model.hash,
        "Model": model.name,
        "Clip skip": request.clip_skip if request.clip_skip and request.clip_skip > 1 else None,
        "ENSD": request.ensd if request.ensd and key in USES_ENSD else None,
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


# Reading infotexts back: A1111's `infotext_utils.parse_generation_parameters`.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE = "Negative prompt:"
# The txt2img defaults A1111 fills in for fields an infotext leaves out.
_DEFAULTS = {"Clip skip": "1", "RNG": "GPU", "Schedule type": "Automatic", "Schedule max sigma": 0,
             "Schedule min sigma": 0, "Schedule rho": 0, "FP8 weight": "Disable", "VAE Encoder": "Full",
             "VAE Decoder": "Full", "Hires resize-1": 0, "Hires resize-2": 0, "Hires sampler": "Use same sampler",
             "Hires schedule type": "Use same scheduler", "Hires checkpoint": "Use same checkpoint",
             "Hires prompt": "", "Hires negative prompt": "", "Mask mode": "Inpaint masked",
             "Masked content": "original", "Inpaint area": "Whole picture", "Masked area padding": 32,
             "Refiner switch by sampling steps": False}


def parse_params_line(line: str) -> dict[str, str]:
    """`key: value` pairs of a params line: quoted values JSON-decoded, `WxH` split into `key-1`/`key-2`."""
    params: dict[str, str] = {}
    for key, value in _PARAM.findall(line):
        if len(value) > 1 and value[0] == value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if not value:
            continue  # A1111 drops empty values (an exception inside its loop)
        size = _SIZE.match(value)
        if size:
            params[f"{key}-1"], params[f"{key}-2"] = size.groups()
        else:
            params[key] = value
    return params


def parse_infotext(text: str) -> dict[str, Any]:
    """An infotext as A1111's "Send to txt2img" reads it: string values, `Prompt`, `Negative prompt`, defaults.

    The last line holds the parameters only if it has at least 3 `key: value` pairs; otherwise it is text.
    Lines from the first one starting `Negative prompt:` on are the negative prompt. Style matching, version
    back-compat fixes and the `Emphasis`/`Hypernet`/`First pass size` conversions are not done.
    """
    *lines, last = text.strip().split("\n")
    params = parse_params_line(last)
    if len(_PARAM.findall(last)) < 3:
        lines, params = [*lines, last], {}
    prompt, negative, in_negative = [], [], False
    for line in (line.strip() for line in lines):
        if line.startswith(_NEGATIVE):
            in_negative, line = True, line[len(_NEGATIVE):].strip()
        (negative if in_negative else prompt).append(line)
    return {**_DEFAULTS, **params, "Prompt": _join(prompt), "Negative prompt": _join(negative)}


def _join(lines: list[str]) -> str:
    """A1111 joins text lines with newlines, skipping empty lines while the text is still empty."""
    while lines and not lines[0]:
        lines = lines[1:]
    return "\n".join(lines)


def request_from_infotext(text: str) -> GenerationRequest:
    """The request that regenerates an infotext's image; a sampler/schedule pair we cannot run is refused.

    Fields left out take the WebUI's txt2img defaults: Euler a, 20 steps, CFG 7, 512x512, a random seed.
    """
    params = parse_infotext(text)
    try:
        key = sampler_key(params.get("Sampler", "Euler a"))
        schedule = params["Schedule type"]
        if schedule not in ("Automatic", SCHEDULE_LABELS.get(key, "Uniform")):
            raise UserError(f"schedule type {schedule!r} with sampler {params.get('Sampler')!r} is not supported")
        clip_skip = int(params["Clip skip"])
        return GenerationRequest(
            prompt=params["Prompt"], negative_prompt=params["Negative prompt"],
            width=int(params.get("Size-1", 512)), height=int(params.get("Size-2", 512)),
            steps=int(params.get("Steps", 20)), cfg_scale=float(params.get("CFG scale", 7.0)),
            seed=int(params["Seed"]) if "Seed" in params else None, sampler=key,
            clip_skip=clip_skip if clip_skip > 1 else None, ensd=int(params.get("ENSD", 0)))
    except ValueError as error:
        raise UserError(f"cannot read the generation parameters: {error}") from error
