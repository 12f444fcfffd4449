"""The pipeline spec: YAML and the Python builder give the same validated graph; bad graphs are refused."""

from __future__ import annotations

import pytest

from lf_ray.errors import ConfigError
from lf_ray.pipeline.spec import Pipeline, load_pipeline, parse_pipeline


def _raw(*steps: dict, **top) -> dict:
    return {"name": "p", "steps": list(steps), **top}


DATA = {"id": "data", "uses": "preprocess", "with": {"dataset": "identity"}}
SFT = {"id": "sft", "uses": "train", "needs": ["data"]}


def test_yaml_and_python_builder_give_the_same_graph(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "# lf-ray run p.yaml\nname: p\ndefaults: {template: llama3}\nsteps:\n"
        "  - {id: data, uses: preprocess, with: {dataset: identity}}\n"
        "  - {id: sft, uses: train, needs: [data], with: {max_steps: 3}, resources: {CPU: 0.5}}\n"
        "  - {id: eval, uses: eval, needs: [sft]}\n"
        "  - {id: export, uses: export, needs: sft}\n"
    )
    from_yaml = load_pipeline(path)
    builder = Pipeline("p", defaults={"template": "llama3"})
    data = builder.step("data", "preprocess", dataset="identity")
    sft = builder.step("sft", "train", needs=[data], resources={"CPU": 0.5}, max_steps=3)
    builder.step("eval", "eval", needs=[sft])
    builder.step("export", "export", needs=[sft])
    from_python = builder.spec()
    assert from_yaml.steps == from_python.steps
    assert from_yaml.order() == ["data", "sft", "eval", "export"]
    assert from_yaml.descendants("sft") == {"sft", "eval", "export"}
    assert from_yaml.step("export").needs == ("sft",)
    assert from_yaml.storage_path == "saves/pipelines"


def test_order_follows_needs_not_the_file():
    spec = parse_pipeline(_raw({"id": "export", "uses": "export", "needs": ["sft"]}, SFT, DATA))
    assert spec.order() == ["data", "sft", "export"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_raw({"id": "data", "uses": "preprocss"}), r"`uses: preprocss` is not a step type; did you mean `preprocess`"),
        (_raw(DATA, {**DATA}), r"step id `data` is used twice"),
        (
            _raw(DATA, {"id": "sft", "uses": "train", "needs": ["dta"]}),
            r"needs `dta`, which is not a step; did you mean `data`",
        ),
        (
            _raw({"id": "a", "uses": "train", "needs": ["b"]}, {"id": "b", "uses": "train", "needs": ["a"]}),
            r"form a cycle: ",
        ),
        (_raw({"id": "a", "uses": "train", "needs": ["a"]}), r"step `a` needs itself"),
        (
            _raw(DATA, {"id": "x", "uses": "export", "needs": ["data"]}),
            r"cannot take the artifact of `data` \(preprocess\)",
        ),
        (
            _raw(DATA, {**DATA, "id": "data2"}, {"id": "t", "uses": "train", "needs": ["data", "data2"]}),
            r"two preprocess steps",
        ),
        (_raw({**DATA, "witth": {}}), r"unknown key `witth`; did you mean `with`"),
        ({"name": "p", "stepz": []}, r"unknown key `stepz`; did you mean `steps`"),
        (_raw(), r"`steps` must be a non-empty list"),
        (_raw({"id": "1x", "uses": "train"}), r"`id` must be a name"),
        (_raw({**DATA, "resources": {"CPU": -1}}), r"non-negative numbers"),
    ],
)
def test_invalid_graphs_are_refused_with_the_reason(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_pipeline(raw, source="p.yaml")


def test_every_graph_problem_is_listed_at_once():
    raw = _raw(DATA, {**DATA}, {"id": "sft", "uses": "train", "needs": ["nope"]})
    with pytest.raises(ConfigError) as err:
        parse_pipeline(raw)
    assert "used twice" in str(err.value) and "needs `nope`" in str(err.value)
