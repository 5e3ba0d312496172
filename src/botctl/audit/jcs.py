"""RFC 8785 JSON Canonicalization Scheme (JCS): the bytes a format-2 audit record's MAC covers.

    canonicalize({"b": 1.5e-7, "a": "é"}) == '{"a":"é","b":1.5e-7}'

What RFC 8785 asks, and how it is met here (docs/audit-format.md repeats it for other implementers):

- object members sorted by their names as UTF-16 code units (not code points: they differ above U+FFFF);
- no whitespace; strings as ECMAScript's JSON.stringify writes them: `"` and `\\` escaped, U+0008,
  U+0009, U+000A, U+000C, U+000D as `\\b \\t \\n \\f \\r`, other controls below U+0020 as `\\u00xx`
  (lower-case hex), everything else as itself in UTF-8;
- numbers as ECMAScript's Number.prototype.toString writes an IEEE-754 double (shortest round-trip
  digits, `1e+21` not `1e21`... see `es_number`);
- I-JSON (RFC 7493) input only: no NaN or Infinity, no integer outside ±(2**53 - 1) (it would not
  survive a double), no lone surrogates. Those raise ValueError; `interoperable` rewrites such values
  before a record is made, so a record is never refused for them.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring  # ensure_ascii=False escaping == JSON.stringify's
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1


# For the common record (strings, safe integers, null, booleans; member names below U+D800) RFC 8785's
# text is exactly what the C JSON encoder writes with sorted keys: same escapes, and code-point order is
# UTF-16 order below the surrogates. `_plain` checks that cheaply; anything else takes `_emit`.
_FAST = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonicalize(value: Any) -> str:
    if _plain(value):
        return _FAST.encode(value)
    parts: list[str] = []
    _emit(value, parts.append)
    return "".join(parts)


def _plain(v: Any) -> bool:
    t = type(v)
    if t is dict:
        for k, x in v.items():
            if type(k) is not str or not (k.isascii() or max(k) < "\ud800"):
                return False
            tx = type(x)
            if tx is str:
                if not (x.isascii() or _well_formed(x)):
                    return False
            elif tx is int:
                if not -MAX_SAFE_INTEGER <= x <= MAX_SAFE_INTEGER:
                    return False
            elif tx is float:
                # Python's repr and ECMAScript agree on a non-integral double in fixed notation, which
                # both use from 1e-4 to below 1e16 (latency_ms and the like).
                if x.is_integer() or not 1e-4 <= abs(x) < 1e16:
                    return False
            elif not (x is None or tx is bool or _plain(x)):
                return False
        return True
    if t is str:
        return v.isascii() or _well_formed(v)
    if v is None or t is bool:
        return True
    if t is int:
        return -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER
    if t is list:
        return all(_plain(x) for x in v)
    return False


def _well_formed(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _emit(value: Any, out) -> None:  # noqa: ANN001 - list.append
    if value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif isinstance(value, str):
        out(_string(value))
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"integer {value} is outside the I-JSON range (±2**53-1)")
        out(str(int(value)))
    elif isinstance(value, float):
        out(es_number(value))
    elif isinstance(value, dict):
        keys = []
        for k in value:
            if not isinstance(k, str):
                raise ValueError(f"object member names must be strings, not {type(k).__name__}")
            keys.append(k)
        keys.sort(key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        out("{")
        for i, k in enumerate(keys):
            if i:
                out(",")
            out(_string(k))
            out(":")
            _emit(value[k], out)
        out("}")
    elif isinstance(value, list | tuple):
        out("[")
        for i, v in enumerate(value):
            if i:
                out(",")
            _emit(v, out)
        out("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON")


def _string(s: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate (not valid Unicode)") from None
    return encode_basestring(s)


def es_number(x: float) -> str:
    """ECMAScript Number::toString(x) for a finite double (ECMA-262, 6.1.6.1.20)."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN and Infinity are not JSON")
    if x == 0:
        return "0"  # -0 too
    sign = "-" if x < 0 else ""
    # repr gives the shortest digits that round-trip (the same digits ECMAScript picks).
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    n = len(whole) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    s = stripped.rstrip("0")
    k = len(s)
    if k <= n <= 21:
        return sign + s + "0" * (n - k)
    if 0 < n <= 21:
        return sign + s[:n] + "." + s[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + s
    e = n - 1
    exp_text = ("+" if e > 0 else "-") + str(abs(e))
    return sign + (s if k == 1 else s[0] + "." + s[1:]) + "e" + exp_text


def interoperable(value: Any) -> Any:
    """`value` with what I-JSON cannot carry made carriable: big integers and NaN/Infinity as strings,
    tuples as lists, lone surrogates replaced by U+FFFD, non-string member names as strings."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
        return value
    if isinstance(value, dict):
        return {
            interoperable(str(k)) if not isinstance(k, str) else interoperable(k): interoperable(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [interoperable(v) for v in value]
    return value
