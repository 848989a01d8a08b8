#!/usr/bin/env python3
"""The reference model-similarity calculator (cosine similarity of UNet attention outputs), N x N.

Not in this version: the calculator is its own issue. This script exists so the layout is fixed and says
so when run; it does nothing else.
"""

import sys

if __name__ == "__main__":
    print("similarity.py: the similarity calculator is not implemented in this version yet.", file=sys.stderr)
    sys.exit(2)
