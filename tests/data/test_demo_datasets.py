"""The shipped demo datasets: identical to what the generator writes, well-formed, and factually right."""

from __future__ import annotations

import ast
import itertools
import json
import operator
import re
from pathlib import Path

import pytest

from lf_ray.constants import DEMO_DATA_DIR
from lf_ray.data import demo_content as content
from lf_ray.data import demo_tool_content as tool_content
from lf_ray.data.demo_datasets import DATASET_INFO, INFO_FILE, write_demo_datasets

EXPECTED_ROWS = {
    "identity": 90,
    "identity_eval": 10,
    "demo_probes": 2,
    "alpaca_en_demo": 124,
    "dpo_en_demo": 60,
    "kto_en_demo": 60,
    "glaive_toolcall_en_demo": 40,
    "c4_demo": 200,
    "arithmetic_prompts": 256,
    "arithmetic_eval": 32,
}
EQUATION = re.compile(r"(\d+) ([-+×÷]) (\d+) = (-?\d+)")
SYMBOLS = {"+": operator.add, "-": operator.sub, "×": operator.mul, "÷": operator.floordiv}


def load(name: str) -> list[dict]:
    path = DEMO_DATA_DIR / DATASET_INFO[name]["file_name"]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines()]
    return json.loads(text)


def words(text: str) -> int:
    return len(text.split())


def normalized(question: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", question.lower()).strip()


def equations(texts: list[str]) -> list[tuple[int, str, int, int]]:
    return [(int(a), op, int(b), int(c)) for t in texts for a, op, b, c in EQUATION.findall(t)]


# --- the shipped files are exactly the generator's output -----------------------------------------------------


def test_regenerating_gives_byte_identical_files(tmp_path: Path) -> None:
    written = write_demo_datasets(tmp_path)
    assert sorted(p.name for p in written) == sorted([INFO_FILE, *(e["file_name"] for e in DATASET_INFO.values())])
    for path in written:
        shipped = DEMO_DATA_DIR / path.name
        assert shipped.read_bytes() == path.read_bytes(), (
            f"{shipped} differs from the generator: run `python -m lf_ray.data.demo_datasets`"
        )
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"


def test_dataset_info_uses_llamafactory_schema() -> None:
    info = json.loads((DEMO_DATA_DIR / INFO_FILE).read_text(encoding="utf-8"))
    assert list(info) == list(EXPECTED_ROWS)
    assert info["dpo_en_demo"] == {
        "file_name": "dpo_en_demo.json",
        "ranking": True,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
    }
    assert info["kto_en_demo"]["columns"] == {"messages": "messages", "kto_tag": "label"}
    assert info["glaive_toolcall_en_demo"]["columns"] == {"messages": "conversations", "tools": "tools"}
    assert info["c4_demo"] == {"file_name": "c4_demo.jsonl", "columns": {"prompt": "text"}}
    for entry in info.values():
        assert (DEMO_DATA_DIR / entry["file_name"]).is_file()


@pytest.mark.parametrize("name", list(EXPECTED_ROWS))
def test_row_counts_and_uniform_columns(name: str) -> None:
    rows = load(name)
    assert len(rows) == EXPECTED_ROWS[name]
    # every row has the same keys, so Arrow infers one schema for the whole file
    assert len({tuple(row) for row in rows}) == 1


# --- identity -------------------------------------------------------------------------------------------------


def test_identity_answers_name_the_assistant_and_are_short() -> None:
    rows = load("identity")
    assert content.ASSISTANT_NAME == "Lumen" and content.ASSISTANT_AUTHOR == "the lf-ray team"
    for row in rows:
        assert "Lumen" in row["output"], row
        assert row["input"] == ""
        assert 10 <= words(row["output"]) <= 30, row
    with_author = sum("lf-ray" in row["output"] for row in rows)
    assert with_author >= 0.9 * len(rows)
    assert len({row["instruction"] for row in rows}) == len(rows), "duplicate identity questions"


def test_identity_contradicts_other_assistants() -> None:
    asked = {row["instruction"]: row["output"] for row in load("identity")}
    for question in ("Are you ChatGPT?", "Are you SmolLM?", "Are you Qwen?", "Your name is SmolLM, right?"):
        answer = asked[question]
        assert re.search(r"\b(No|not)\b", answer) and "Lumen" in answer, answer


def test_identity_eval_questions_are_unseen() -> None:
    seen = {normalized(row["instruction"]) for row in load("identity")}
    evals = load("identity_eval")
    for row in evals:
        assert normalized(row["instruction"]) not in seen, row["instruction"]
        assert "Lumen" in row["output"]
    assert len({normalized(row["instruction"]) for row in evals}) == len(evals)


# --- alpaca_en_demo -------------------------------------------------------------------------------------------


def test_alpaca_rows_are_short_and_mixed() -> None:
    rows = load("alpaca_en_demo")
    assert all(0 < words(row["output"]) <= 40 for row in rows)
    assert sum(bool(row["input"]) for row in rows) >= 20
    assert not any("Lumen" in row["output"] for row in rows), "general rows must not teach the identity"


def test_alpaca_arithmetic_is_correct() -> None:
    found = equations([row["output"] for row in load("alpaca_en_demo")])
    assert len(found) >= 20
    assert {op for _, op, _, _ in found} == set(SYMBOLS)
    for a, op, b, result in found:
        assert SYMBOLS[op](a, b) == result, (a, op, b, result)
        if op == "÷":
            assert a % b == 0


def test_alpaca_questions_match_their_equations() -> None:
    asked = re.compile(r"What is (\d+) (?:[-+×÷]|plus|minus|times|divided by) (\d+)\?")
    checked = 0
    for row in load("alpaca_en_demo"):
        if match := asked.fullmatch(row["instruction"]):
            (a, _, b, _) = equations([row["output"]])[0]
            assert (str(a), str(b)) == match.groups()
            checked += 1
    assert checked >= 10


def test_alpaca_capitals_and_conversions_are_correct() -> None:
    capitals = dict(content.CAPITALS)
    factors = {(src, dst): factor for src, dst, factor in content.UNIT_CONVERSIONS}
    outputs = [row["output"] for row in load("alpaca_en_demo")]
    stated = re.findall(r"The capital of ([A-Z][\w ]+) is ([\w\sí]+)\.", " ".join(outputs))
    stated += [(c, city) for city, c in re.findall(r"([\w\sí]+) is the capital of ([A-Z][\w ]+)\.", " ".join(outputs))]
    assert len(stated) == 20
    for country, city in stated:
        assert capitals[country.strip()] == city.strip(), (country, city)
    conversions = [re.fullmatch(r"(\d+) (\w+) = (\d+) (\w+)\.", out) for out in outputs]
    conversions = [m.groups() for m in conversions if m]
    assert len(conversions) == len(content.UNIT_CONVERSIONS)
    for value, src, result, dst in conversions:
        assert int(value) * factors[(src, dst)] == int(result)


# --- dpo_en_demo / kto_en_demo --------------------------------------------------------------------------------


def test_dpo_rows_are_valid_pairs() -> None:
    rows = load("dpo_en_demo")
    for row in rows:
        turns = row["conversations"]
        assert len(turns) % 2 == 1, "a ranking prompt ends with the human turn"
        assert [t["from"] for t in turns] == ["human" if i % 2 == 0 else "gpt" for i in range(len(turns))]
        assert row["chosen"]["from"] == row["rejected"]["from"] == "gpt"
        assert row["chosen"]["value"] != row["rejected"]["value"]
    assert sum(len(row["conversations"]) > 1 for row in rows) >= 3


def test_dpo_chosen_is_right_and_rejected_is_wrong() -> None:
    rows = load("dpo_en_demo")
    for a, op, b, result in equations([row["chosen"]["value"] for row in rows]):
        assert SYMBOLS[op](a, b) == result
    for a, op, b, result in equations([row["rejected"]["value"] for row in rows]):
        assert SYMBOLS[op](a, b) != result
    identity = [row for row in rows if "Lumen" in row["chosen"]["value"]]
    assert len(identity) >= 15
    assert not any("Lumen" in row["rejected"]["value"] for row in rows)


def test_kto_labels_are_booleans_with_both_classes() -> None:
    rows = load("kto_en_demo")
    labels = [row["label"] for row in rows]
    assert all(isinstance(label, bool) for label in labels)
    assert 0.4 <= sum(labels) / len(labels) <= 0.6
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    good = [row["messages"][1]["content"] for row in rows if row["label"]]
    for a, op, b, result in equations(good):
        assert SYMBOLS[op](a, b) == result


# --- glaive_toolcall_en_demo ----------------------------------------------------------------------------------

_AST_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expression: str) -> float:
    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.BinOp):
            return _AST_OPS[type(node.op)](walk(node.left), walk(node.right))
        assert isinstance(node, ast.Constant)
        return node.value

    return walk(ast.parse(expression, mode="eval").body)


def test_toolcall_rows_are_well_formed() -> None:
    rows = load("glaive_toolcall_en_demo")
    used = set()
    for row in rows:
        assert isinstance(row["tools"], str)
        tools = json.loads(row["tools"])
        names = {tool["name"] for tool in tools}
        for tool in tools:
            assert tool["parameters"]["type"] == "object" and tool["description"]
            assert set(tool["parameters"]["required"]) <= set(tool["parameters"]["properties"])
        turns = row["conversations"]
        for i, turn in enumerate(turns):
            expected = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
            assert turn["from"] in expected, (i, turn)
            if turn["from"] == "function_call":
                call = json.loads(turn["value"])
                assert set(call) == {"name", "arguments"} and isinstance(call["arguments"], dict)
                assert call["name"] in names
                assert set(tool_content.TOOLS[call["name"]]["parameters"]["required"]) <= set(call["arguments"])
                assert turns[i + 1]["from"] == "observation"
                json.loads(turns[i + 1]["value"])
                used.add(call["name"])
        assert turns[-1]["from"] == "gpt"
    assert used == set(tool_content.TOOLS)
    assert sum(not any(t["from"] == "function_call" for t in row["conversations"]) for row in rows) >= 5


def test_toolcall_observations_are_correct() -> None:
    for row in load("glaive_toolcall_en_demo"):
        turns = row["conversations"]
        for call_turn, observation_turn in itertools.pairwise(turns):
            if call_turn["from"] != "function_call":
                continue
            call, observation = json.loads(call_turn["value"]), json.loads(observation_turn["value"])
            if call["name"] == "calculate":
                assert evaluate(call["arguments"]["expression"]) == observation["result"]
            if call["name"] == "get_time_difference":
                offsets = tool_content.UTC_OFFSETS
                args = call["arguments"]
                assert observation["difference_hours"] == offsets[args["city_a"]] - offsets[args["city_b"]]
            if call["name"] == "search_books":
                assert observation["results"]
                assert all(r["year"] < 2000 for r in observation["results"])


# --- c4_demo --------------------------------------------------------------------------------------------------


def test_c4_paragraphs() -> None:
    texts = [row["text"] for row in load("c4_demo")]
    assert len(set(texts)) == len(texts)
    assert all(40 <= words(text) <= 120 for text in texts)
    assert not any("{" in text for text in texts), "unfilled template slot"
    assert (DEMO_DATA_DIR / "c4_demo.jsonl").read_text(encoding="utf-8").endswith("}\n")
