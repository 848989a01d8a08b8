"""Load `.ckpt` / `.pt` files, which are pickles, without running code from them.

torch's weights-only unpickler builds tensors and plain containers and refuses every other global before
calling it. Old SD checkpoints also carry a few harmless objects it does not know, as A1111's restricted
unpickler accepts them: a PyTorch Lightning `ModelCheckpoint` (a stand-in class here, so Lightning is never
imported) and numpy scalars, dtypes and arrays (numpy's own data-only constructors). They are allowed only
for the duration of one load, so the process-wide torch allow-list is left as it was.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from library.errors import UserError

try:
    from numpy._core import multiarray as _multiarray  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"
_FORBIDDEN_GLOBAL = re.compile(r"GLOBAL (\S+?)(?: was not an allowed global| whose module)")
_CONVERT_HINT = "If you trust its source, convert it to .safetensors with a tool you trust and use that instead."


class ModelCheckpoint:
    """Stand-in for `pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint`: keeps its pickled
    attributes (monitor, best score, paths) as plain data and has no behaviour."""


def load_checkpoint_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """The raw top-level dict of a torch pickle (the caller unwraps "state_dict"), loaded on the CPU.

    Zip-format files are memory-mapped, so a 4 GB checkpoint is not read into memory twice; legacy
    (pre-zip) files cannot be and are read normally. A refused or unreadable file raises UserError.
    """
    path = Path(path)
    is_zip = _is_zip_format(path)
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        raise UserError(_refusal(path, str(exc))) from exc
    except Exception as exc:  # any other failure to decode an untrusted file means it is damaged
        raise UserError(
            f"{path} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {exc}). "
            "It may be incomplete or damaged; download it again."
        ) from exc
    if not isinstance(loaded, dict):
        raise UserError(f"{path} holds a {type(loaded).__name__}, not a checkpoint dict of weights.")
    return loaded


def _is_zip_format(path: Path) -> bool:
    """True for torch's zip format, False for a legacy pickle; anything else is refused."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except FileNotFoundError:
        raise UserError(f"Checkpoint not found: {path}") from None
    except OSError as exc:
        raise UserError(f"Cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if head.startswith(_ZIP_MAGIC):
        return True
    if head.startswith(_PICKLE_PROTO):
        return False
    raise UserError(
        f"{path} is not a PyTorch checkpoint: it is neither a zip archive nor a pickle. "
        "Check that the file is a .ckpt/.pt and downloaded completely."
    )


def _allowed_globals() -> list[Callable[..., Any] | tuple[Callable[..., Any], str]]:
    """Extra globals for one load: only constructors of inert data. An (object, "module.name") pair makes
    `object` stand for the global a file names, even where that module is absent or renamed."""
    numpy_constructors = [
        (constructor, f"{module}.multiarray.{constructor.__name__}")
        for constructor in (_multiarray.scalar, _multiarray._reconstruct)
        for module in ("numpy.core", "numpy._core")  # numpy 1.x and 2.x pickles name them differently
    ]
    # Unpickled dtypes are instances of per-type subclasses (Float64DType, ...) that torch must be allowed
    # to restore state into.
    dtype_classes = {type(np.dtype(code)) for code in np.typecodes["All"]}
    return [
        (ModelCheckpoint, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
        *numpy_constructors,
        np.dtype,
        np.ndarray,
        *dtype_classes,
    ]


def _refusal(path: Path, message: str) -> str:
    """A user-facing refusal that names the forbidden global when torch's message does."""
    match = _FORBIDDEN_GLOBAL.search(message)
    if match:
        name = match.group(1)
        name = name if "." in name else f"builtins.{name}"  # torch drops the builtins. prefix
        return (
            f"Refused to load {path}: its pickle calls {name}, which is not checkpoint data. "
            f"The file may be malicious and was not loaded. {_CONVERT_HINT}"
        )
    # torch's own reason is the last line before its closing pointer to the torch.load documentation.
    reason = next(
        (line.strip() for line in reversed(message.splitlines()) if line.strip() and "documentation" not in line),
        message,
    )
    return (
        f"Refused to load {path}: its pickle does something weights-only loading does not allow ({reason}). "
        f"The file may be malicious or damaged and was not loaded. {_CONVERT_HINT}"
    )
