#!/usr/bin/env python3
"""A1111-exact image generation: prompt mode, class / word-frequency regularization sets, Comparable Analysis.

    gen_reg_images.py --model m.safetensors --prompt "1girl" --steps 28 --sampler "Euler a" --seed 114514
    gen_reg_images.py --model m.safetensors --from_png 00000-114514.png --outdir again
    gen_reg_images.py --model m.safetensors --class_prompt "1girl" --count 200 --outdir reg/1_girl
    gen_reg_images.py --model m.safetensors --wordfreq words.txt --count 200 --outdir reg/1_words
    gen_reg_images.py compare --models A.safetensors B.safetensors --outdir compare

`gen_reg_images.py -h`, `gen_reg_images.py txt2img -h` and `gen_reg_images.py compare -h` list the flags.
"""

import sys

from library.generation.cli import main

if __name__ == "__main__":
    sys.exit(main())
