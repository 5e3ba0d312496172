"""RFC 8785 in Python: the fast path (the C encoder, for values whose text it writes the same) agrees with
the full canonicaliser on random records; the full one is checked against ECMAScript itself in
tests/test_audit_verifier_node.py."""

import random

import pytest

from botctl.audit.jcs import _emit, canonicalize, interoperable


def _slow(value) -> str:
    parts: list[str] = []
    _emit(value, parts.append)
    return "".join(parts)


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**53) + 1, 2**53 - 1) if rng.random() < 0.3 else rng.randint(-1000, 1000)
    if kind == 2:
        exp = rng.uniform(-10, 25)
        x = rng.choice([1, -1]) * 10**exp
        return rng.choice([x, round(x, 1), float(int(x)) if abs(x) < 1e300 else x])
    if kind in (3, 4, 5):
        alphabet = 'ab"\\\n\t\x01\x7f é€\u2028\ufb01\U0001f600'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
    if kind in (6, 7):
        keys = ["a", "B", "\ufb01", "\U0001f600", "é", "z1", "request_id", "\x00"]
        return {
            rng.choice(keys) + str(rng.randrange(3)): _random_value(rng, depth + 1)
            for _ in range(rng.randrange(5))
        }
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_fast_path_agrees_with_the_full_canonicaliser():
    rng = random.Random(8785)
    for _ in range(20000):
        v = interoperable(_random_value(rng))
        assert canonicalize(v) == _slow(v), v


@pytest.mark.parametrize(
    "value, text",
    [
        ({"latency_ms": 12.3}, '{"latency_ms":12.3}'),
        ({"x": 12.0}, '{"x":12}'),
        ({"x": 1e-5}, '{"x":0.00001}'),
        ({"x": 1e-7}, '{"x":1e-7}'),
        ({"x": 1e16}, '{"x":10000000000000000}'),
        ({"x": 1e21}, '{"x":1e+21}'),
        ({"x": 123456789012345.6}, '{"x":123456789012345.6}'),
        ({"\U0001f600": 1, "\ufb01": 2}, '{"\U0001f600":1,"\ufb01":2}'),
    ],
)
def test_known_texts(value, text):
    assert canonicalize(value) == text


def test_not_i_json_refused_and_made_carriable():
    for bad in (float("nan"), 2**60, "\ud800"):
        with pytest.raises(ValueError):
            canonicalize({"x": bad})
    assert interoperable({"x": 2**60, "y": float("inf"), "z": "a\ud800", 1: (1, 2)}) == {
        "x": str(2**60),
        "y": "inf",
        "z": "a\ufffd",
        "1": [1, 2],
    }
