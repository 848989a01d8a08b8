#!/usr/bin/env python3
"""The reference model-similarity calculator (cosine similarity of UNet self-attention outputs), 1 x N or N x N.

    similarity.py base.safetensors a.safetensors b.ckpt some_diffusers_folder
    similarity.py base.safetensors a.safetensors --blocks extended --json out.json --csv out.csv
    similarity.py a.safetensors b.safetensors c.safetensors --matrix --plot matrix.png

`similarity.py -h` lists the flags.
"""

import sys

from library.similarity.cli import main

if __name__ == "__main__":
    sys.exit(main())
