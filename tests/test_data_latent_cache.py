"""Latent caching: encode once, reuse, and encode again when the image, the resolution or the VAE changes."""

import os

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from library.config import load_train_config
from library.data.dataset import build_training_data
from library.data.latent_cache import cache_file
from library.sample_data import write_sample_dataset


class CountingEncoder:
    """A stand-in VAE: 8x8 average pooling plus a constant channel; counts the images it encodes."""

    def __init__(self):
        self.images = 0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.images += len(pixels)
        pooled = torch.nn.functional.avg_pool2d(pixels, 8)
        return torch.cat([pooled, torch.ones_like(pooled[:, :1])], dim=1)


@pytest.fixture
def sample(tmp_path):
    return write_sample_dataset(tmp_path / "sample", seed=0)


def build(sample, *extra):
    loaded = load_train_config(["--train_data_dir", str(sample.root / "train"), "--caption_extension", ".txt",
                                "--resolution", "128", "--enable_bucket", "--min_bucket_reso", "64",
                                "--max_bucket_reso", "256", "--bucket_reso_steps", "32", "--train_batch_size", "3",
                                *extra])
    return build_training_data(loaded.datasets, loaded.train)


def cached(sample, *extra, vae_id="vae-a", to_disk=True):
    data, encoder = build(sample, *extra), CountingEncoder()
    data.cache_latents(encoder, vae_id, to_disk=to_disk, batch_size=4, progress=False)
    return data, encoder


def test_cached_batches_hold_the_latents_of_the_uncached_pixels(sample):
    plain = build(sample)
    data, encoder = cached(sample, to_disk=False)
    assert encoder.images == 13
    plan = data.epoch_plan(0, seed=1)[0]
    batch, pixels = data.load_batch(plan), plain.load_batch(plan).pixels
    width, height = plan.bucket
    assert batch.pixels is None and batch.latents.shape == (len(plan.samples), 4, height // 8, width // 8)
    assert torch.allclose(batch.latents, CountingEncoder()(pixels))
    assert batch.captions == plain.load_batch(plan).captions


def test_flip_aug_caches_both_mirror_images(sample):
    plain = build(sample, "--flip_aug")
    data, encoder = cached(sample, "--flip_aug", to_disk=False)
    assert encoder.images == 2 * 13
    for plan in data.epoch_plan(0, seed=2)[:8]:
        assert torch.allclose(data.load_batch(plan).latents, CountingEncoder()(plain.load_batch(plan).pixels))


def test_memory_cache_is_made_afresh_each_run(sample):
    cached(sample, to_disk=False)
    _, encoder = cached(sample, to_disk=False)
    assert encoder.images == 13
    assert not list(sample.train_dir.glob("*.safetensors"))


def test_disk_cache_is_written_beside_the_images_and_reused(sample):
    data, first = cached(sample)
    file = cache_file(data.items[0])
    assert file.parent == sample.train_dir and file.name.startswith(data.items[0].path.name + ".")
    with safe_open(str(file), "pt") as stored:
        assert '"vae": "vae-a"' in stored.metadata()["key"]
    again, second = cached(sample)
    assert (first.images, second.images) == (13, 0)
    plan = data.epoch_plan(0, seed=1)[0]
    assert torch.equal(again.load_batch(plan).latents, data.load_batch(plan).latents)


def test_a_changed_image_is_encoded_again(sample):
    cached(sample)
    image = sample.train_dir / "0003.png"
    Image.new("RGB", Image.open(image).size, (9, 9, 9)).save(image)
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _, encoder = cached(sample)
    assert encoder.images == 1


def test_another_vae_or_resolution_encodes_everything_again(sample):
    cached(sample)
    assert cached(sample, vae_id="vae-b")[1].images == 13
    assert cached(sample, "--resolution", "192")[1].images == 13


def test_flip_aug_turned_on_later_adds_the_mirror_images(sample):
    cached(sample)
    assert cached(sample, "--flip_aug")[1].images == 2 * 13
    assert cached(sample, "--flip_aug")[1].images == 0


def test_a_damaged_cache_file_is_made_again(sample):
    data, _ = cached(sample)
    cache_file(data.items[0]).write_bytes(b"garbage")
    assert cached(sample)[1].images == 1


def test_skip_cache_check_trusts_existing_files(sample):
    cached(sample)
    assert cached(sample, "--skip_cache_check", vae_id="vae-b")[1].images == 0
