"""Contact sheets: images in a rows × cols grid, optionally captioned, for seeing a run's progress at a glance."""

from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

PADDING = 4
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


def make_grid(images: Sequence[Image.Image], rows: int, cols: int, labels: Sequence[str] | None = None) -> Image.Image:
    """One RGB image; cell i (row-major) holds images[i] and, above it, labels[i] wrapped to the cell width.

    Cells are as large as the largest image; smaller images sit at the cell's top left.
    """
    if len(images) > rows * cols:
        raise ValueError(f"{len(images)} images do not fit in {rows}x{cols}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    cell_w = max((im.width for im in images), default=1)
    cell_h = max((im.height for im in images), default=1)
    font = ImageFont.load_default()
    wrapped = [_wrap(label, font, cell_w) for label in labels] if labels is not None else []
    line_h = _line_height(font)
    caption_h = max((len(lines) for lines in wrapped), default=0) * line_h + (PADDING if wrapped else 0)
    step_w, step_h = cell_w + PADDING, cell_h + caption_h + PADDING
    grid = Image.new("RGB", (cols * step_w + PADDING, rows * step_h + PADDING), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for i, image in enumerate(images):
        x, y = PADDING + (i % cols) * step_w, PADDING + (i // cols) * step_h
        for n, line in enumerate(wrapped[i] if wrapped else []):
            draw.text((x, y + n * line_h), line, fill=INK, font=font)
        grid.paste(image.convert("RGB"), (x, y + caption_h))
    return grid


def _line_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    return font.getbbox("Ag")[3] + 2


def _wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy wrap to `width` pixels; a word longer than the line is cut by characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = word
            while font.getlength(line) > width and len(line) > 1:
                cut = next(n for n in range(len(line), 0, -1) if font.getlength(line[:n]) <= width or n == 1)
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines
