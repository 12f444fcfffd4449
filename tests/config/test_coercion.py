"""ValueSpec: annotations → accepted kinds, and how config values are coerced to them."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from lf_ray.config.coercion import ValueMismatch, coerce_value, spec_from_annotation, split_commas


def coerce(value: Any, annotation: Any) -> Any:
    return coerce_value(value, spec_from_annotation(annotation))


def test_spec_of_common_annotations():
    assert spec_from_annotation(int | None).kinds == {"int", "none"}
    spec = spec_from_annotation(Literal["a", "b"] | None)
    assert (spec.kinds, spec.choices) == ({"str", "none"}, ("a", "b"))
    spec = spec_from_annotation(list[float] | None)
    assert (spec.kinds, spec.item_kind) == ({"list", "none"}, "float")
    assert spec_from_annotation(Any).kinds == {"any"}
    assert spec_from_annotation(str | list[str]).choices is None


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        ("1e-4", float, 1e-4),
        ("8", int, 8),
        (8.0, int, 8),
        (3, float, 3),
        ("true", bool, True),
        ("Off", bool, False),
        ("null", int | None, None),
        ("a, b", list[str] | None, ["a", "b"]),
        ("0.3,0.7", list[float] | None, [0.3, 0.7]),
        (0.5, list[float], [0.5]),
        ('{"GPU": 1}', dict[str, float] | None, {"GPU": 1}),
        (29500, str | None, "29500"),
        ("free text", str | None, "free text"),
        ("q_proj,v_proj", str | list[str], "q_proj,v_proj"),  # the dataclass splits it
        (["a", 1], list[str], ["a", "1"]),
    ],
)
def test_coercion(value, annotation, expected):
    result = coerce(value, annotation)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "annotation", "message"),
    [
        (True, int, "expected int"),
        ("eight", int, "expected int"),
        (1.5, int, "expected int"),
        ("maybe", bool, "expected bool"),
        ("x", Literal["a", "b"], "expected one of: a, b"),
        ([1], float | None, "expected float or null"),
        ("{oops", dict | None, "expected a JSON object"),
        ("0.5,abc", list[float], "expected a list of float"),
        (None, int, "expected int"),
    ],
)
def test_mismatches(value, annotation, message):
    with pytest.raises(ValueMismatch, match=message):
        coerce(value, annotation)


def test_split_commas():
    assert split_commas(" a, b ,,c ") == ["a", "b", "c"]
    assert split_commas(["a"]) == ["a"]
    assert split_commas(None) is None
