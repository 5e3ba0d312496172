"""One catalogue of error codes (botctld/error_codes.py): everything that answers with a code takes it
from there, and the widget's copy of the visitor messages is generated from it."""

from __future__ import annotations

import re
from pathlib import Path

from botctld.error_codes import ERRORS, WIDGET_BEGIN, widget_block
from botctld.openapi import ERROR_CODES

REPO = Path(__file__).resolve().parent.parent


def test_the_widget_carries_the_generated_messages():
    js = (REPO / "daemon" / "botctld" / "static" / "widget" / "api.js").read_text()
    assert widget_block() in js, (
        "run: python -m botctld.error_codes --widget, and paste it over the block in static/widget/api.js"
    )
    assert js.count(WIDGET_BEGIN) == 1


def test_the_openapi_document_lists_exactly_the_catalogue():
    assert ERROR_CODES == list(ERRORS)


def test_every_code_the_code_base_answers_with_is_in_the_catalogue():
    used: set[str] = set()
    for path in [*(REPO / "src" / "botctl").rglob("*.py"), *(REPO / "daemon" / "botctld").glob("*.py")]:
        if "sandbox" in path.parts:
            continue  # the vendors' own error vocabularies
        text = path.read_text()
        used |= set(re.findall(r'ActionError\(\s*"([a-z_]+)"', text))
        used |= set(re.findall(r'\berr\(\s*"([a-z_]+)"', text))
        used |= set(re.findall(r'\berror\(\s*"([a-z_]+)"', text))
    assert used and not used - set(ERRORS), sorted(used - set(ERRORS))


def test_outcomes_and_statuses_are_consistent():
    for code, entry in ERRORS.items():
        assert entry.outcome in ("denied", "error", "unknown"), code
        assert 400 <= entry.status < 600 and entry.visitor.endswith((".", "?")), code
    assert ERRORS["outcome_unknown"].outcome == "unknown"
