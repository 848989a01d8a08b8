"""Value converters: raw TOML/CLI values in, typed values out, or `BadValue` saying what was expected.

Each converter takes `(value, lenient)` and returns `(converted, note)`. Lenient mode is for args files and
the command line, where kohya configs from forum posts carry quirks with a clear intent (`"1e-6"`, `0` for a
flag, `resolution = "512,512"`); the note tells the user what we read. Strict mode follows kohya's dataset
schema, where those quirks are errors, but with messages that show the accepted form.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any, Callable

from .suggest import did_you_mean

Converted = tuple[Any, "str | None"]
Converter = Callable[[Any, bool], Converted]

# Control characters that TOML escapes put into Windows paths written in "double quotes" (\t in D:\train).
_ESCAPES = {"\t": ("\\t", "a tab"), "\n": ("\\n", "a newline"), "\r": ("\\r", "a carriage return"),
            "\b": ("\\b", "a backspace"), "\f": ("\\f", "a form feed")}


class BadValue(ValueError):
    """A value of the wrong type or out of range; the message says what was expected."""


def show(value: Any) -> str:
    """A value written the way TOML writes it, so messages quote what the user typed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return show(value)
    kind = {str: "the string", int: "the integer", float: "the number", list: "the list", dict: "the table"}
    return f"{kind.get(type(value), 'the value')} {show(value)}"


def _expected(what: str, value: Any) -> BadValue:
    return BadValue(f"expected {what}, got {describe(value)}")


def _finite(number: float, original: Any) -> float:
    """TOML (and JSON) can write nan and inf; no option means either."""
    if not math.isfinite(number):
        raise BadValue(f"expected a finite number, got {describe(original)}: no option takes nan or inf")
    return number


def to_bool(value: Any, lenient: bool) -> Converted:
    if isinstance(value, bool):
        return value, None
    if lenient and type(value) is int and value in (0, 1):
        return bool(value), f"read {value} as {show(bool(value))} (flags take true or false)"
    if lenient and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        flag = value.strip().lower() == "true"
        return flag, f"read the string {show(value)} as {show(flag)} (kohya would read any non-empty string as true)"
    hint = " (without quotes)" if isinstance(value, str) else ""
    raise _expected(f"true or false{hint}", value)


def _number_from_string(value: str, kind: type) -> Any:
    try:
        number = float(value.strip())
    except ValueError:
        raise _expected("a number" if kind is float else "an integer", value) from None
    return _finite(number, value)


def to_int(value: Any, lenient: bool) -> Converted:
    if type(value) is int:
        return value, None
    if isinstance(value, float):
        _finite(value, value)
    quoted = isinstance(value, str)
    if lenient and (quoted or isinstance(value, float)):
        number = _number_from_string(value, int) if quoted else value
        if number.is_integer():
            read = f"the string {show(value)}" if quoted else repr(value)
            return int(number), f"read {read} as the integer {int(number)}" + (
                " (write numbers without quotes)" if quoted else "")
    raise _expected("an integer (no quotes)" if quoted else "an integer", value)


def to_int_or_off(value: Any, lenient: bool) -> Converted:
    """A count where 0 means off (kohya tests it for truth): 0 becomes None, the unset value."""
    number, note = to_int(value, lenient)
    return (None if number == 0 else number), note


def to_float(value: Any, lenient: bool) -> Converted:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _finite(float(value), value), None
    if lenient and isinstance(value, str):
        number = _number_from_string(value, float)
        return number, f"read the string {show(value)} as the number {number!r} (write numbers without quotes)"
    raise _expected("a number (no quotes), e.g. 1e-6", value)


def to_str(value: Any, lenient: bool) -> Converted:
    if isinstance(value, str):
        return value, None
    raise _expected("a string in quotes", value)


def to_path(value: Any, lenient: bool) -> Converted:
    """A path; catches Windows paths mangled by TOML escapes ("D:\\train\\new" holds a tab and a newline)."""
    text, _ = to_str(value, lenient)
    mangled = [c for c in _ESCAPES if c in text]
    if mangled:
        original = "".join(_ESCAPES[c][0] if c in _ESCAPES else c for c in text)
        raise BadValue(
            f"the path {show(text)} contains {' and '.join(_ESCAPES[c][1] for c in mangled)}: inside double "
            f"quotes a backslash starts an escape. Write '{original}' (single quotes) or "
            f"\"{original.replace(chr(92), '/')}\" (forward slashes)"
        )
    if lenient and text == "":
        return None, "empty path read as not set"
    return text, None


def to_extension(value: Any, lenient: bool) -> Converted:
    """A file extension; kohya adds the missing dot (`txt` -> `.txt`), so do we, and say so."""
    text, _ = to_str(value, lenient)
    if text and not text.startswith("."):
        return "." + text, f"read {show(text)} as {show('.' + text)}"
    return text, None


def _positive_ints(values: list[Any], what: str, original: Any) -> tuple[int, int]:
    if not all(type(v) is int and v > 0 for v in values) or len(values) not in (1, 2):
        raise _expected(what, original)
    return (values[0], values[-1])


def to_resolution(value: Any, lenient: bool) -> Converted:
    """`(width, height)`. Args files take "512", "768,512", 512 or [768, 512]; a dataset config 512 or [768, 512]."""
    what = "512 or [768, 512] (width, height)"
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*(?:[,xX]\s*(\d+)\s*)?", value)
        if not match:
            raise _expected(f'"512" or "768,512" (width,height), or {what}', value)
        size = _positive_ints([int(g) for g in match.groups() if g], what, value)
        if not lenient:
            toml = str(size[0]) if size[0] == size[1] else show(list(size))
            raise BadValue(f"expected {what} without quotes, got {describe(value)}; write resolution = {toml}")
        return size, None
    if type(value) is int:
        return _positive_ints([value], what, value), None
    if isinstance(value, list) and (lenient or len(value) == 2):
        return _positive_ints(value, what, value), None
    raise _expected(what, value)


def to_float_pair(value: Any, lenient: bool) -> Converted:
    """`(low, high)`, e.g. face_crop_aug_range. Args files also take the kohya string form "2.0,4.0"."""
    pair = value
    if lenient and isinstance(value, str):
        try:
            pair = [float(part) for part in value.split(",")]
        except ValueError:
            raise _expected('two numbers like "2.0,4.0" or [2.0, 4.0]', value) from None
    if not (isinstance(pair, list) and len(pair) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
        raise _expected("two numbers [low, high], e.g. [2.0, 4.0]", value)
    low, high = (_finite(float(v), v) for v in pair)
    if low > high:
        raise BadValue(f"the first number must not exceed the second, got {show(value)}")
    return (low, high), None


def to_str_list(value: Any, lenient: bool) -> Converted:
    """A list of strings: a TOML array, or one string of comma-separated items (as forum configs write it)."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip()), None
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        return tuple(str(v).strip() for v in value if str(v).strip()), None
    raise _expected('a list of strings, e.g. ["sks", "watermark"]', value)


def to_float_list(value: Any, lenient: bool) -> Converted:
    """A list of numbers: a TOML array, or one string of comma-separated numbers ("0.7,0.3")."""
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (list, tuple)):
        numbers = []
        for item in items:
            try:
                number = float(item) if isinstance(item, str) else item
            except ValueError:
                break
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                break
            numbers.append(_finite(float(number), item))
        else:
            return tuple(numbers), None
    raise _expected("a list of numbers, e.g. [0.7, 0.3]", value)


def to_sampler(value: Any, lenient: bool) -> Converted:
    """A sampler the generation code implements, by key, kohya alias or A1111 label ("Euler a")."""
    from ..errors import UserError
    from .sampler_names import sampler_key

    text, _ = to_str(value, lenient)
    try:
        key = sampler_key(text)
    except UserError as e:
        raise BadValue(str(e)) from None
    return key, None if key == text else f"read {show(text)} as the sampler {show(key)}"


def to_table(value: Any, lenient: bool) -> Converted:
    if isinstance(value, dict):
        return value, None
    raise _expected("a table, e.g. {key = \"value\"}", value)


def to_steps_or_fraction(value: Any, lenient: bool) -> Converted:
    """kohya's int-or-float: an integer is a step count, any float a fraction of all training steps.

    So 1.0 is the whole run (the kohya_ss GUI's 100% warmup). A whole float above 1 (`100.0`) was meant as steps
    in lenient mode; other floats above 1 are refused, as kohya would multiply them past the end of training."""
    note = None
    if lenient and isinstance(value, str):
        text = value.strip()
        number = _number_from_string(text.rstrip("%"), float) / (100 if text.endswith("%") else 1)
        value = number if "%" in text or "." in text or "e" in text.lower() else int(number)
        note = f"read the string {show(text)} as {value!r}"
    if type(value) is int and value >= 0:
        return value, note
    if isinstance(value, float) and 0 <= _finite(value, value) <= 1:
        return value, note
    if lenient and isinstance(value, float) and value.is_integer() and value > 1:
        return int(value), f"read {value!r} as {int(value)} steps (a float means a fraction of all steps)"
    raise _expected("a step count (integer, e.g. 100) or a fraction of all steps from 0 to 1 (e.g. 0.1; 1.0 = "
                    "the whole run)", value)


def _literal(key: str, text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if re.fullmatch(r"[A-Za-z_][\w.\-]*", text):
            raise BadValue(f"in `{key}={text}` the value is not a Python literal; to pass the string, quote it: "
                           f"`{key}='{text}'`")
        raise BadValue(f"in `{key}={text}` the value `{text}` is not a Python literal "
                       "(numbers, True/False, 'strings', tuples like (0.9,0.99))") from None


def to_kwargs(value: Any, lenient: bool) -> Converted:
    """kohya's optimizer_args / lr_scheduler_args: a list of "key=value" strings, values as Python literals."""
    if isinstance(value, str):
        items = value.split()
        raise BadValue(f"expected a list of \"key=value\" strings, got one string {show(value)}; write "
                       f"[{', '.join(show(i) for i in items)}]")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _expected('a list of "key=value" strings, e.g. ["weight_decay=0.01", "betas=0.9,0.999"]', value)
    for item, after in zip(value, value[1:]):
        if "=" not in after and not _parses(item) and _parses(item + after):
            raise BadValue(f"{show(item)} and {show(after)} are one item split at a space (as the kohya_ss GUI "
                           f"does); write {show(item + after)}")
    kwargs: dict[str, Any] = {}
    for item in value:
        key, sep, text = item.strip().partition("=")
        if not sep or not key.strip().isidentifier():
            raise BadValue(f"item {show(item)} is not \"key=value\"")
        key = key.strip()
        if key in kwargs:
            raise BadValue(f"`{key}` is given twice")
        kwargs[key] = _literal(key, text.strip())
        if _has_non_finite(kwargs[key]):
            raise BadValue(f"in {show(item)} the number is not finite (nan or inf): give a real number")
    return kwargs, None


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, (tuple, list)) and any(_has_non_finite(v) for v in value)


def _parses(item: str) -> bool:
    key, _, text = item.partition("=")
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return key.strip().isidentifier()


def check_choice(value: Any, choices: tuple, hints: dict[str, str]) -> None:
    """Reject a value outside `choices`, pointing at the intended one (explicit hints first, then difflib)."""
    if value in choices:
        return
    listed = ", ".join(show(c) for c in choices)
    guess = hints.get(str(value).lower()) or did_you_mean(str(value), [str(c) for c in choices])
    tip = f". Did you mean {show(type(choices[0])(guess))}?" if guess else ""
    raise BadValue(f"{describe(value)} is not one of {listed}{tip}")


def check_bounds(value: Any, low: float | None, high: float | None) -> None:
    if value is None or isinstance(value, (tuple, dict, str)):
        return
    if (low is not None and value < low) or (high is not None and value > high):
        span = (f"between {low} and {high}" if low is not None and high is not None
                else f"at least {low}" if low is not None else f"at most {high}")
        raise BadValue(f"must be {span}, got {show(value)}")

