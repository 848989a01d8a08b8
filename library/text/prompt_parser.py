"""A1111's attention syntax (`modules/prompt_parser.parse_prompt_attention`), reproduced exactly.

`(x)` multiplies the weight of x by 1.1, `[x]` divides it by 1.1, `(x:1.3)` sets a factor of 1.3; nesting
multiplies. `\\(`, `\\)`, `\\[`, `\\]` and `\\\\` are literal characters; a lone backslash vanishes. Brackets
left open still apply their factor to the rest of the prompt; stray closers are plain text. `BREAK`
(a separate word, case-sensitive) becomes a `("BREAK", -1)` entry. Weights are products computed
innermost-first, so `((x))` is `1.2100000000000002`, as A1111 gives.
"""

from __future__ import annotations

import re

ROUND = 1.1
SQUARE = 1 / 1.1
BREAK = ("BREAK", -1)

# First matching alternative wins, in A1111's order. Group 1 is the number of a weight-close `:1.3)`.
_TOKEN = re.compile(r"""
    \\[()\[\]\\]? | [(\[] | :\s*([+-]?[.\d]+)\s*\) | [)\]] | [^\\()\[\]:]+ | :
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """`[(text, weight), ...]` for `text`, with adjacent runs of equal weight merged; `""` gives `[("", 1.0)]`."""
    res: list[list] = []  # [text, weight] pairs, multiplied in place as brackets close
    opened: dict[str, list[int]] = {"(": [], "[": []}  # start positions (indices into res) of the open brackets

    def multiply(start: int, factor: float) -> None:
        for entry in res[start:]:
            entry[1] *= factor

    for match in _TOKEN.finditer(text):
        token, number = match.group(0), match.group(1)
        if token.startswith("\\"):
            res.append([token[1:], 1.0])
        elif token in opened:
            opened[token].append(len(res))
        elif number is not None and opened["("]:
            multiply(opened["("].pop(), float(number))
        elif token == ")" and opened["("]:
            multiply(opened["("].pop(), ROUND)
        elif token == "]" and opened["["]:
            multiply(opened["["].pop(), SQUARE)
        else:
            for i, part in enumerate(_BREAK.split(token)):
                if i:
                    res.append(list(BREAK))
                res.append([part, 1.0])
    for start in opened["("]:
        multiply(start, ROUND)
    for start in opened["["]:
        multiply(start, SQUARE)

    merged: list[tuple[str, float]] = []
    for part, weight in res or [["", 1.0]]:
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + part, weight)
        else:
            merged.append((part, weight))
    return merged
