"""A1111's attention syntax: each prompt and the exact `(text, weight)` list A1111 parses it into."""

import pytest

from library.text.prompt_parser import parse_prompt_attention

R1, R2, R3 = 1.1, 1.2100000000000002, 1.3310000000000004  # (x), ((x)), (((x))): products, innermost first
S1, S2, S3 = 0.9090909090909091, 0.8264462809917354, 0.7513148009015777  # [x], [[x]], [[[x]]]

A1111_DOCSTRING = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", R1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", R1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", R1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", R1), ("on", 1.0), (" a ", R1), ("hill", 0.55),
      (", sun, ", R1), ("sky", 1.4641000000000006), (".", R1)]),
]

BRACKETS = [
    ("(x)", [("x", R1)]),
    ("((x))", [("x", R2)]),
    ("(((x)))", [("x", R3)]),
    ("[x]", [("x", S1)]),
    ("[[x]]", [("x", S2)]),
    ("[[[x]]]", [("x", S3)]),
    ("([x])", [("x", 1.0)]),  # 1.1 * (1/1.1) is exactly 1.0
    ("a (b (c) d) e", [("a ", 1.0), ("b ", R1), ("c", R2), (" d", R1), (" e", 1.0)]),
    ("()", [("", 1.0)]),  # empty parens: nothing to weigh
    ("a () b", [("a  b", 1.0)]),
    ("[unclosed (both", [("unclosed ", S1), ("both", 1.0)]),  # open ( then open [ apply to the rest
    ("(x))", [("x", R1), (")", 1.0)]),  # a stray closer is text
    ("[x)", [("x)", S1)]),  # ) without an open ( is text, the [ stays open
    ("a]b", [("a]b", 1.0)]),
]

WEIGHTS = [
    ("(x:1.3)", [("x", 1.3)]),
    ("(x:0.5) y", [("x", 0.5), (" y", 1.0)]),
    ("((x:0.5))", [("x", 0.55)]),
    ("((x):1.5)", [("x", 1.6500000000000001)]),
    ("(x :1.2)", [("x ", 1.2)]),  # space before the colon stays in the text
    ("(x: 1.2 )", [("x", 1.2)]),  # spaces around the number are part of the weight-close
    ("(x:-1)", [("x", -1.0)]),
    ("(x:+2)", [("x", 2.0)]),
    ("(x:.5)", [("x", 0.5)]),
    ("(x:1.)", [("x", 1.0)]),
    ("(x:0)", [("x", 0.0)]),
    ("(x:1e-1)", [("x:1e-1", R1)]),  # no exponents: the colon and number are text, the ( closes as 1.1
    ("(x:1.2:1.3)", [("x:1.2", 1.3)]),  # only the last :number) is the weight
    ("(a:1.5) (b:1.5)", [("a", 1.5), (" ", 1.0), ("b", 1.5)]),
    ("(a:1.5)(b:1.5)", [("ab", 1.5)]),  # equal neighbours merge
    ("[x:1.5]", [("x:1.5", S1)]),  # explicit weights only inside round brackets
    ("x:1.5)", [("x:1.5)", 1.0)]),  # a weight-close with no open ( is text
    ("(:1.5)", [("", 1.0)]),
    ("(x::1.5)", [("x:", 1.5)]),
    ("(x:+)", [("x:+", R1)]),  # a sign alone is no number
]

TEXT = [
    ("", [("", 1.0)]),
    ("time: 12:30", [("time: 12:30", 1.0)]),
    ("a   b", [("a   b", 1.0)]),
    ("a | b", [("a | b", 1.0)]),  # alternation is handled before this parser
    ("kaname_madoka_\\(cosplay\\)", [("kaname_madoka_(cosplay)", 1.0)]),
    ("\\[x\\]", [("[x]", 1.0)]),
    ("a\\\\b", [("a\\b", 1.0)]),  # escaped backslash
    ("a\\b", [("ab", 1.0)]),  # a lone backslash vanishes
    ("(\\(x\\))", [("(x)", R1)]),
    ("masterpiece, best quality, 1girl, (((white hair))), [[[bad hands]]]",
     [("masterpiece, best quality, 1girl, ", 1.0), ("white hair", R3), (", ", 1.0), ("bad hands", S3)]),
]

BREAKS = [
    ("a BREAK b", [("a", 1.0), ("BREAK", -1), ("b", 1.0)]),
    ("BREAK a", [("", 1.0), ("BREAK", -1), ("a", 1.0)]),
    ("a BREAK", [("a", 1.0), ("BREAK", -1), ("", 1.0)]),
    ("a\n BREAK \n b", [("a", 1.0), ("BREAK", -1), ("b", 1.0)]),  # surrounding whitespace is swallowed
    ("a BREAK BREAK b", [("a", 1.0), ("BREAK", -1), ("", 1.0), ("BREAK", -1), ("b", 1.0)]),
    ("(a) BREAK (b)", [("a", R1), ("", 1.0), ("BREAK", -1), ("", 1.0), ("b", R1)]),
    ("(a BREAK b)", [("a", R1), ("BREAK", -R1), ("b", R1)]),  # weighted: no longer a break
    ("a,BREAK,b", [("a,", 1.0), ("BREAK", -1), (",b", 1.0)]),
    ("aBREAK b", [("aBREAK b", 1.0)]),  # needs word boundaries
    ("BREAK_x", [("BREAK_x", 1.0)]),
    ("break", [("break", 1.0)]),  # case-sensitive
]


@pytest.mark.parametrize("prompt, expected", A1111_DOCSTRING + BRACKETS + WEIGHTS + TEXT + BREAKS)
def test_parse_prompt_attention(prompt, expected):
    assert parse_prompt_attention(prompt) == expected


def test_the_break_marker_weight_is_the_int_minus_one():
    assert type(parse_prompt_attention("a BREAK b")[1][1]) is int


@pytest.mark.parametrize("prompt", ["(x:1.2.3)", "(x:.)", "(x:1..5)"])
def test_a_malformed_number_raises_like_a1111(prompt):
    with pytest.raises(ValueError):
        parse_prompt_attention(prompt)

