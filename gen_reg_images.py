#!/usr/bin/env python3
"""A1111-exact image generation: prompt mode, word-frequency regularization sets, Comparable Analysis.

Not in this version: the generator (A1111 prompt syntax, Euler a / ENSD seeds, infotext) is its own issue.
This script exists so the layout is fixed and says so when run; it does nothing else.
"""

import sys

if __name__ == "__main__":
    print("gen_reg_images.py: image generation is not implemented in this version yet.", file=sys.stderr)
    sys.exit(2)
