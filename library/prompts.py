"""Show how a prompt reaches CLIP: A1111's parsed weights, then each 77-token chunk with its ids and weights.

    python -m library.prompts --json "a (cat:1.5), dog BREAK sky"
    python -m library.prompts --family sd2 "masterpiece, (((white hair)))"

JSON: `{"parsed": [[text, weight], ...], "chunks": [{"ids": [77], "weights": [77], "tokens": N}, ...],
"token_count": T}`; `tokens` counts a chunk's prompt tokens (no BOS/EOS/padding) and `token_count` is the
WebUI counter (75 per full chunk plus the tokens of the last one).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from .text.chunking import CHUNK_LENGTH
from .text.emphasis import frame_weighted, weighted_spans
from .text.prompt_parser import parse_prompt_attention
from .text.tokenizer import load_tokenizer


def describe_prompt(text: str, family: str = "sd1") -> dict[str, Any]:
    """The parsed fragments and the weighted 77-token chunks of `text`, as plain JSON-ready data."""
    tokenizer = load_tokenizer(family)
    parsed = parse_prompt_attention(text)
    ids, token_weights, spans = weighted_spans(tokenizer, parsed)
    counts = [stop - start for start, stop in spans]
    tokens, weights = frame_weighted(ids, token_weights, spans, family)
    chunks = [{"ids": row, "weights": w, "tokens": n}
              for row, w, n in zip(tokens.tolist(), weights.tolist(), counts)]
    return {"parsed": [list(p) for p in parsed], "chunks": chunks,
            "token_count": CHUNK_LENGTH * (len(counts) - 1) + counts[-1]}


def format_prompt(report: dict[str, Any], family: str = "sd1") -> str:
    """A readable view of `describe_prompt`'s result: fragments, then each chunk's tokens with weights."""
    tokenizer = load_tokenizer(family)
    lines = [f"{len(report['chunks'])} chunk(s), {report['token_count']} tokens", "parsed:"]
    lines += [f"  {weight!r:>20}  {text!r}" for text, weight in report["parsed"]]
    for i, chunk in enumerate(report["chunks"], 1):
        lines.append(f"chunk {i}: {chunk['tokens']}/{CHUNK_LENGTH} tokens")
        body = zip(chunk["ids"][1:chunk["tokens"] + 1], chunk["weights"][1:chunk["tokens"] + 1])
        lines += [f"  {token_id:>6}  {tokenizer.convert_ids_to_tokens(token_id):<20} {weight:.6g}"
                  for token_id, weight in body]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m library.prompts", description=__doc__.splitlines()[0])
    parser.add_argument("prompt", help="prompt text in A1111 syntax")
    parser.add_argument("--family", choices=("sd1", "sd2"), default="sd1", help="tokenizer padding (default sd1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the readable view")
    args = parser.parse_args(argv)
    report = describe_prompt(args.prompt, args.family)
    print(json.dumps(report) if args.json else format_prompt(report, args.family))
    return 0


if __name__ == "__main__":
    sys.exit(main())
