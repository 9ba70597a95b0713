"""results.json's text (sertest.json_text): the same bytes as json's indenting encoder
followed by the flattening of arrays of numbers and objects of scalars it replaced."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest import json_text

# -- the layout as it was produced before: json.dumps(indent=1), then regular expressions --
_NUMBER = r"(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|null|true|false)"
_STRING = r'"(?:[^"\\\n]|\\.)*"'
_FLAT_ARRAY = re.compile(r"\[(\n\s*" + _NUMBER + r"(?:\s*,\s*" + _NUMBER + r")*\s*)\]")
_FLAT_OBJECT = re.compile(
    r"\{((?:\n\s*" + _STRING + r": (?:" + _STRING + "|" + _NUMBER + r"),?)+)\n\s*\}")


def flattened_dumps(doc) -> str:
    text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
    text = _FLAT_ARRAY.sub(
        lambda m: "[" + re.sub(r"\s+", "", m.group(1)).replace(",", ", ") + "]", text)
    return _FLAT_OBJECT.sub(lambda m: "{" + re.sub(r"\n\s*", " ", m.group(1)).strip() + "}",
                            text)


finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), finite,
                    st.text(max_size=8))
keys = st.one_of(st.text(max_size=6), st.integers(-5, 5), st.booleans(), st.none(),
                 st.floats(allow_nan=False, allow_infinity=False))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.tuples(inner, inner),
                            st.dictionaries(keys, inner, max_size=5)),
    max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_same_text_as_the_indenting_encoder_flattened(doc):
    assert json_text.dumps(doc) == flattened_dumps(doc)
    assert json.loads(json_text.dumps(doc)) == json.loads(json.dumps(doc))


def test_a_results_document_is_byte_identical(tmp_path):
    """A real audit's document (every check of the quick suite, plots and all)."""
    from sertest import audit

    res = audit(["random:gaussian"], suite="quick", cache=False, progress=False,
                baselines=False)
    assert res.to_json() == flattened_dumps(res.doc) + "\n"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(bad):
    for doc in ({"a": bad}, [bad], {"a": {"b": [1, bad]}}, {bad: 1}):
        with pytest.raises(ValueError):
            json_text.dumps(doc)


def test_keys_that_json_cannot_write_are_refused():
    with pytest.raises(TypeError):
        json_text.dumps({(1, 2): 1})
