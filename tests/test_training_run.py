"""Whole training runs on the tiny model: it learns, it saves, it resumes exactly, it stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train_certain
from library.models.sd_model import load_model
from run_args import without_seed

ROOT = Path(__file__).resolve().parents[1]


def fixed_batch_loss(model_path: Path, data) -> float:
    """MSE of the UNet's noise prediction on a fixed batch: fixed images, captions, noise and timesteps."""
    import numpy as np
    from PIL import Image

    from library.sampling.schedule import alphas_cumprod
    from library.text.conditioning import encode_prompts
    from library.training.noise import add_noise

    model = load_model(model_path)
    images = sorted(data.train_dir.glob("*.png"))[:4]
    arrays = [np.asarray(Image.open(p).convert("RGB").resize((64, 64)), dtype=np.float32) for p in images]
    pixels = torch.stack([torch.from_numpy(a).permute(2, 0, 1) / 127.5 - 1 for a in arrays])
    captions = [p.with_suffix(".txt").read_text() for p in images]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        latents = model.vae.encode(pixels).latent_dist.mean * model.vae.config.scaling_factor
        ac = alphas_cumprod(model.config.scheduler)
        noise = torch.randn(latents.shape, generator=gen)
        t = torch.tensor([100, 300, 500, 700])
        cond = encode_prompts(model, captions, max_chunks=1)
        pred = model.unet(add_noise(latents, noise, t, ac), t, cond).sample
    return float(torch.nn.functional.mse_loss(pred, noise))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, train_args):
    out = tmp_path_factory.mktemp("run")
    code = train_certain.main(train_args(out, "--max_train_steps", "40",
                                        "--learning_rate", "3e-4", "--cache_latents"))
    assert code == 0
    return out


def test_training_lowers_the_loss_on_a_fixed_batch(trained, tiny_sd1, sample_dataset):
    before = fixed_batch_loss(tiny_sd1, sample_dataset)
    after = fixed_batch_loss(trained / "last.safetensors", sample_dataset)
    assert after < 0.9 * before, (before, after)


def test_the_checkpoint_loads_back_and_differs_from_the_base(trained, tiny_sd1):
    base, tuned = load_model(tiny_sd1), load_model(trained / "last.safetensors")
    assert tuned.config.name == "tiny-sd1"
    changed = [k for k, v in tuned.unet.state_dict().items() if not torch.equal(v, base.unet.state_dict()[k])]
    assert len(changed) > 0.9 * len(base.unet.state_dict())
    assert all(torch.equal(v, base.vae.state_dict()[k]) for k, v in tuned.vae.state_dict().items())  # VAE frozen
    meta = load_model(trained / "last.safetensors").metadata
    assert meta["ss_steps"] == "40" and "sks girl" in meta["ss_tag_frequency"]
    assert meta["modelspec.architecture"] == "stable-diffusion-v1"
    assert meta["ss_optimizer"].startswith("torch.optim.adamw.AdamW")  # the optimizer, not accelerate's wrapper


def test_progress_is_machine_readable(trained):
    events = [json.loads(line) for line in (trained / "progress.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("step") == 40
    step = next(e for e in events if e["event"] == "step")
    assert {"step", "total_steps", "epoch", "loss", "lr", "it_s", "eta_s"} <= step.keys()
    assert any(e["event"] == "save" and e["path"].endswith("last.safetensors") for e in events)


def weights_of(out: Path, name: str = "last.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(out / name))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights_of(a), weights_of(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), "weights differ after resume"


def events(out: Path, kind: str) -> list[dict]:
    return [e for e in map(json.loads, (out / "progress.jsonl").read_text().splitlines()) if e["event"] == kind]


def test_resumed_run_equals_the_uninterrupted_one(tmp_path, train_args):
    common = ("--max_train_steps", "6", "--save_every_n_steps", "3", "--save_state", "--lr_scheduler", "cosine",
              "--shuffle_caption", "--flip_aug", "--noise_offset", "0.05", "--train_batch_size", "2")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert train_certain.main(train_args(straight, *common)) == 0
    state = straight / "at-step00000003-state"
    assert state.is_dir()
    assert train_certain.main(train_args(resumed, *common, "--resume", str(state))) == 0
    [start] = events(resumed, "start")
    assert start["step"] == 3 and [e["step"] for e in events(resumed, "step")] == [4, 5, 6]  # it continued
    assert [e["loss"] for e in events(resumed, "step")] == [e["loss"] for e in events(straight, "step")][3:]
    assert_same_weights(straight, resumed)
    # the measurements carry on too: the resumed run's checkpoints.json (drift against the base, not against the
    # state it resumed from; mean train losses since the previous save) is the uninterrupted run's
    measured = [json.loads((out / "checkpoints.json").read_text(encoding="utf-8")) for out in (straight, resumed)]
    assert measured[0] == measured[1] and measured[0]["checkpoints"][0]["drift"] > 0
    opt_a = torch.load(straight / "last-state" / "optimizer.pt", weights_only=True)["optimizer"]["state"]
    opt_b = torch.load(resumed / "last-state" / "optimizer.pt", weights_only=True)["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys()
    assert all(torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in opt_a[i]), "optimizer state differs"


def test_resume_across_an_epoch_boundary(tmp_path, train_args):
    """From the last step of epoch 1 (the epoch ends after the resume) and from the epoch's end itself."""
    from library.config import load_train_config
    from library.data.dataset import build_training_data

    straight = tmp_path / "straight"
    common = ("--max_train_epochs", "2", "--train_batch_size", "16", "--shuffle_caption")
    loaded = load_train_config(train_args(straight, *common))
    per_epoch = build_training_data(loaded.datasets, loaded.train).batches_per_epoch()
    common += ("--save_every_n_steps", str(per_epoch - 1), "--save_every_n_epochs", "1", "--save_state")
    assert train_certain.main(train_args(straight, *common)) == 0
    assert events(straight, "start")[0]["steps_per_epoch"] == per_epoch >= 3
    assert events(straight, "step")[-1]["step"] == 2 * per_epoch
    for name, state in (("mid", f"at-step{per_epoch - 1:08d}-state"), ("end", "epoch-000001-state")):
        resumed = tmp_path / name
        assert train_certain.main(train_args(resumed, *common, "--resume", str(straight / state))) == 0
        steps = events(resumed, "step")
        assert steps[0]["step"] == (per_epoch if name == "mid" else per_epoch + 1)
        assert [e["epoch"] for e in steps] == [e["epoch"] for e in events(straight, "step")][-len(steps):]
        assert_same_weights(straight, resumed)


def test_resume_keeps_a_drawn_seed(tmp_path, train_args):
    """Without `seed` the run draws one; the state keeps it, or the rest of the epoch would see other images."""
    def args(out, *extra):
        return without_seed(train_args(out, "--max_train_steps", "4", "--save_every_n_steps", "2", "--save_state",
                                       "--train_batch_size", "2", *extra))
    assert train_certain.main(args(tmp_path / "a")) == 0
    assert train_certain.main(args(tmp_path / "b", "--resume", str(tmp_path / "a" / "at-step00000002-state"))) == 0
    assert_same_weights(tmp_path / "a", tmp_path / "b")


def test_ctrl_c_state_resumes_to_the_uninterrupted_run(tmp_path, train_args):
    from library.config import load_train_config
    from library.plugins import Callback
    from library.training.run import run_training

    class PressCtrlC(Callback):
        def on_step_end(self, ctx, result):
            if result.step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    def before(signum, frame):  # the handler in place before the run: it must be back afterwards
        raise AssertionError("the run's own handler should have caught this")

    common = ("--max_train_steps", "4", "--lr_scheduler", "linear")
    out, straight = tmp_path / "out", tmp_path / "straight"
    previous = signal.signal(signal.SIGINT, before)
    try:
        assert run_training(load_train_config(train_args(out, *common)), callbacks=[PressCtrlC()]) == 130
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGINT, previous)
    state = out / "last-interrupted-state"
    assert json.loads((state / "progress.json").read_text())["global_step"] == 2
    assert not (out / "last.safetensors").exists()
    assert train_certain.main(train_args(out, *common, "--resume", str(state))) == 0
    assert train_certain.main(train_args(straight, *common)) == 0
    assert_same_weights(straight, out)


def test_kohya_documentation_dataset_config_trains_unchanged(tmp_path, tiny_sd1, sample_dataset):
    """The first example of sd-scripts' docs/config_README-en.md, only its Windows paths pointed at our data."""
    reg = sample_dataset.reg_dir
    config = tmp_path / "dataset.toml"
    config.write_text(f"""[general]
shuffle_caption = true
caption_extension = '.txt'
keep_tokens = 1

# This is a DreamBooth-style dataset
[[datasets]]
resolution = 512
batch_size = 4
keep_tokens = 2

  [[datasets.subsets]]
  image_dir = '{sample_dataset.train_dir}'
  class_tokens = 'hoge girl'
  # This subset uses keep_tokens = 2 (the value of the parent datasets)

  [[datasets.subsets]]
  image_dir = '{reg}'
  class_tokens = 'fuga boy'
  keep_tokens = 3

  [[datasets.subsets]]
  is_reg = true
  image_dir = '{reg}'
  class_tokens = 'human'
  keep_tokens = 1

# This is a fine-tuning dataset
[[datasets]]
resolution = [768, 768]
batch_size = 2

  [[datasets.subsets]]
  image_dir = '{sample_dataset.root}'
  metadata_file = '{sample_dataset.meta_file}'
  # This subset uses keep_tokens = 1 (the value of [general])
""")
    out = tmp_path / "out"
    code = train_certain.main(["--pretrained_model_name_or_path", str(tiny_sd1), "--dataset_config", str(config),
                               "--output_dir", str(out), "--max_train_steps", "1", "--max_data_loader_n_workers", "0"])
    assert code == 0 and (out / "last.safetensors").is_file()


# Run under `accelerate launch`: trains like train_certain.py, then each process writes a digest of its weights.
DDP_DRIVER = """
import hashlib, sys
from pathlib import Path
from library.config import load_train_config
from library.plugins import Callback
from library.training.run import run_training

class WeightDigest(Callback):
    def on_train_end(self, ctx, interrupted):
        with ctx.sampling_model() as model:
            digest = hashlib.sha256()
            for module in (model.unet, model.text_encoder):
                for name, tensor in sorted(module.state_dict().items()):
                    digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
        Path(sys.argv[1], f"rank{ctx.rank}.sha256").write_text(digest.hexdigest())

sys.exit(run_training(load_train_config(sys.argv[2:]), callbacks=[WeightDigest()]))
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_accelerate_run(tmp_path, train_args):
    out = tmp_path / "ddp"
    driver = tmp_path / "driver.py"
    driver.write_text(DDP_DRIVER)
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()),
           str(driver), str(tmp_path), *train_args(out, "--max_train_steps", "3", "--lr_scheduler", "linear",
                                                   "--reg_mode", "self_wordfreq", "--reg_word_list", "captions",
                                                   "--reg_steps", "2")]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "processes 2" in result.stderr
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3]  # only rank 0 writes
    assert steps[-1]["lr"] == 0.0  # the schedule spans the run's steps, whatever the number of processes
    assert load_model(out / "last.safetensors").config.name == "tiny-sd1"
    generated = [e for e in events if e["event"] == "reg_images"]  # each process made its share, distinct seeds
    assert [len(set(e["seeds"])) for e in generated] == [2, 2, 2]
    assert all("reg" in e["losses"] and e["samples"] == 5 for e in steps)  # 4 training images + 1 generated, rank 0
    # Both processes end with the same U-Net and text encoder (DDP syncs one, the loop averages the other's grads).
    digests = [(tmp_path / f"rank{rank}.sha256").read_text() for rank in (0, 1)]
    assert digests[0] == digests[1]


def test_an_extra_stream_plugs_into_the_loop_without_changing_it(tmp_path, train_args):
    """What the regularization issue will do: mix generated batches into steps; losses are logged per stream."""
    from library.config import load_train_config
    from library.data.batch import Batch
    from library.plugins import Callback
    from library.training.run import run_training

    class EveryOtherStep:
        name = "reg"

        def __init__(self):
            self.served = 0

        def batches_for_step(self, ctx, step):
            if step % 2:
                return []
            self.served += 1
            latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(step))
            return [Batch(captions=["1girl", "solo"], loss_weights=torch.full((2,), 0.5), latents=latents,
                          keys=[f"reg:{step}"] * 2, stream="reg")]

        def state_dict(self):
            return {"served": self.served}

        def load_state_dict(self, state):
            self.served = state.get("served", 0)

    class Record(Callback):
        results = []

        def on_step_end(self, ctx, result):
            self.results.append(result)

    stream, record = EveryOtherStep(), Record()
    loaded = load_train_config(train_args(tmp_path, "--max_train_steps", "4", "--save_state"))
    assert run_training(loaded, streams=[stream], callbacks=[record]) == 0
    assert stream.served == 2
    assert [sorted(r.stream_losses) for r in record.results] == [["reg", "train"], ["train"]] * 2
    assert [r.samples for r in record.results] == [6, 4, 6, 4]
    progress = json.loads((tmp_path / "last-state" / "progress.json").read_text())
    assert progress["extra"]["streams"] == {"reg": {"served": 2}}
