"""The closed sets of names kohya accepts (optimizers, schedulers, samplers, ...), checked at load time.

kohya checks most of these only after the model is loaded (`module 'torch.optim' has no attribute ...`);
checking them here turns a late crash into an instant did-you-mean.
"""

from __future__ import annotations

import re
from typing import Any

from .suggest import did_you_mean
from .values import BadValue, Converted, show, to_str

# sd-scripts' own optimizer names, matched case-insensitively (train_util.get_optimizer).
KOHYA_OPTIMIZERS = (
    "AdamW", "AdamW8bit", "PagedAdamW", "PagedAdamW8bit", "PagedAdamW32bit", "Lion", "Lion8bit", "PagedLion8bit",
    "SGDNesterov", "SGDNesterov8bit", "DAdaptation", "DAdaptAdamPreprint", "DAdaptAdaGrad", "DAdaptAdam",
    "DAdaptAdan", "DAdaptAdanIP", "DAdaptLion", "DAdaptSGD", "Prodigy", "Adafactor", "RAdamScheduleFree",
    "AdamWScheduleFree", "SGDScheduleFree",
)
# Any other undotted name is looked up in torch.optim, case-sensitively.
TORCH_OPTIMIZERS = (
    "Adadelta", "Adafactor", "Adagrad", "Adam", "Adamax", "AdamW", "ASGD", "LBFGS", "Muon", "NAdam", "RAdam",
    "RMSprop", "Rprop", "SGD", "SparseAdam",
)
LR_SCHEDULERS = (
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial", "inverse_sqrt",
    "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay", "piecewise_constant",
    "reduce_lr_on_plateau", "adafactor",
)
KOHYA_SAMPLE_SAMPLERS = (
    "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++", "dpmsingle",
    "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
)
# "no" is what the kohya_ss GUI writes when torch.compile is off.
DYNAMO_BACKENDS = (
    "no", "eager", "aot_eager", "inductor", "aot_ts_nvfuser", "nvprims_nvfuser", "cudagraphs", "ofi", "fx2trt",
    "onnxrt", "tensort", "ipex", "tvm",
)
RESIZE_INTERPOLATIONS = ("lanczos", "nearest", "bilinear", "linear", "bicubic", "cubic", "area")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def to_optimizer_name(value: Any, lenient: bool) -> Converted:
    """A kohya optimizer name (any case, returned in its usual spelling), a torch.optim class, or module.Class."""
    text, _ = to_str(value, lenient)
    text = text.strip()
    if not text:
        return "AdamW", None
    canonical = {name.lower(): name for name in KOHYA_OPTIMIZERS}
    if text.lower() in canonical:
        return canonical[text.lower()], None
    if text in TORCH_OPTIMIZERS or _DOTTED.fullmatch(text):
        return text, None
    guess = did_you_mean(text, KOHYA_OPTIMIZERS + TORCH_OPTIMIZERS)
    if guess:
        raise BadValue(f"unknown optimizer {show(text)}. Did you mean {show(guess)}?")
    raise BadValue(f"unknown optimizer {show(text)}: use one of {', '.join(KOHYA_OPTIMIZERS)} (any case), a "
                   "torch.optim class such as \"SGD\", or a dotted \"package.module.Class\"")
