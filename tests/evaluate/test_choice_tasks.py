from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lf_ray.errors import DataError
from lf_ray.evaluate.choice_tasks import (
    ChoiceExample,
    ChoiceTask,
    build_prompt,
    choice_token_ids,
    evaluate_choice_task,
    format_scores,
    load_choice_task,
    score_choices,
)

DEMO = Path(__file__).resolve().parents[2] / "lf_ray" / "assets" / "eval" / "demo_mmlu"
HEADER = "question,A,B,C,D,answer\n"


def _example(question: str, options: tuple[str, str, str, str], answer: str) -> ChoiceExample:
    return ChoiceExample(question=question, options=dict(zip("ABCD", options, strict=True)), answer=answer)


# ---- loading -------------------------------------------------------------------------------------------------


def test_demo_task_loads():
    task = load_choice_task(DEMO)
    assert task.name == "demo_mmlu"
    assert task.choices == ("A", "B", "C", "D")
    assert task.lang == "en"
    assert list(task.subjects) == ["geography", "arithmetic", "science"]
    for subject in task.subjects:
        assert len(task.dev[subject]) == 5
        assert len(task.questions[subject]) == 10
    first = task.dev["geography"][0]
    assert first == _example("What is the capital of France?", ("Paris", "Lyon", "Marseille", "Nice"), "A")


def test_demo_arithmetic_answers_are_correct():
    task = load_choice_task(DEMO)
    for example in task.dev["arithmetic"] + task.questions["arithmetic"]:
        a, op, b = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", example.question).groups()
        value = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert example.options[example.answer] == str(value)
        assert len(set(example.options.values())) == 4


def test_demo_answers_use_every_letter():
    task = load_choice_task(DEMO)
    answers = [example.answer for subject in task.subjects for example in task.questions[subject]]
    assert set(answers) == {"A", "B", "C", "D"}


@pytest.fixture
def task_copy(tmp_path) -> Path:
    target = tmp_path / "task"
    shutil.copytree(DEMO, target)
    return target


def test_missing_task_json(tmp_path):
    with pytest.raises(DataError, match=r"neither task\.json nor mapping\.json found"):
        load_choice_task(tmp_path)


def test_validation_split_reads_val_folder(task_copy):
    shutil.copytree(task_copy / "dev", task_copy / "val")
    task = load_choice_task(task_copy, split="validation", lang="zh")
    assert (task.split, task.lang, task.categories) == ("validation", "zh", {})
    assert task.questions == task.dev
    (task_copy / "val" / "science.csv").unlink()
    with pytest.raises(DataError, match=r"val/science\.csv not found\. Fix: .* needs dev/ and val/ CSV files"):
        load_choice_task(task_copy, split="validation")


def test_task_json_errors(task_copy):
    meta_path = task_copy / "task.json"
    meta_path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        load_choice_task(task_copy)
    meta_path.write_text(json.dumps({"name": "x", "subjects": {"geography": "geography"}}), encoding="utf-8")
    with pytest.raises(DataError, match=r"lacks key\(s\) \['choices'\]"):
        load_choice_task(task_copy)
    meta = {"name": "x", "subjects": {"geography": "geography"}, "choices": ["A", "A"]}
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(DataError, match="distinct letters"):
        load_choice_task(task_copy)
    meta["choices"], meta["lang"] = ["A", "B", "C", "D"], "fr"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(DataError, match="'lang' is 'fr'"):
        load_choice_task(task_copy)


def test_missing_subject_file(task_copy):
    (task_copy / "test" / "science.csv").unlink()
    with pytest.raises(DataError, match=r"science\.csv not found"):
        load_choice_task(task_copy)


def test_bad_header(task_copy):
    path = task_copy / "dev" / "geography.csv"
    path.write_text("q,A,B,C,D,answer\nWhat?,1,2,3,4,A\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"geography\.csv: header is \['q', .*expected \['question'"):
        load_choice_task(task_copy)


def test_bad_answer_names_file_and_row(task_copy):
    path = task_copy / "test" / "arithmetic.csv"
    path.write_text(HEADER + "What is 1 + 1?,2,3,4,5,A\nWhat is 2 + 2?,4,5,6,7,E\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test/arithmetic\.csv row 3: answer 'E' is not one of the choices"):
        load_choice_task(task_copy)


def test_empty_cell_and_extra_cells(task_copy):
    path = task_copy / "test" / "arithmetic.csv"
    path.write_text(HEADER + "What is 1 + 1?,2,,4,5,A\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"arithmetic\.csv row 2: empty or missing value in column\(s\) \['B'\]"):
        load_choice_task(task_copy)
    path.write_text(HEADER + "What is 1 + 1?,2,3,4,5,A,extra\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"arithmetic\.csv row 2: more cells"):
        load_choice_task(task_copy)
    path.write_text(HEADER + "What is 1 + 1?,2,3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2: empty or missing value in column\(s\) \['C', 'D', 'answer'\]"):
        load_choice_task(task_copy)


def test_header_only_file(task_copy):
    (task_copy / "dev" / "science.csv").write_text(HEADER, encoding="utf-8")
    with pytest.raises(DataError, match="no questions"):
        load_choice_task(task_copy)


# ---- prompts -------------------------------------------------------------------------------------------------

SHOT = _example("What is 2 + 2?", ("3", "4", "5", "6"), "B")
QUERY = _example("What is 3 + 4?", ("7", "8", "9", "10"), "A")


def test_prompt_matches_lf_english_format():
    expected = (
        "The following are multiple choice questions (with answers) about elementary arithmetic.\n\n"
        "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: B\n\n"
        "What is 3 + 4?\nA. 7\nB. 8\nC. 9\nD. 10\nAnswer:"
    )
    assert build_prompt(QUERY, [SHOT], "elementary arithmetic") == expected


def test_zero_shot_prompt():
    assert build_prompt(QUERY, [], "math") == (
        "The following are multiple choice questions (with answers) about math.\n\n"
        "What is 3 + 4?\nA. 7\nB. 8\nC. 9\nD. 10\nAnswer:"
    )


def test_chinese_prompt():
    assert build_prompt(QUERY, [SHOT], "数学", lang="zh") == (
        "以下是中国关于数学考试的单项选择题，请选出其中的正确答案。\n\n"
        "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\n答案： B\n\n"
        "What is 3 + 4?\nA. 7\nB. 8\nC. 9\nD. 10\n答案："
    )


# ---- choice token ids ----------------------------------------------------------------------------------------


class _SpaceAwareTokenizer:
    """Byte-level-BPE-like: "A" and " A" are different single tokens."""

    pad_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        table = {"A": 1, "B": 2, " A": 11, " B": 12}
        return [table[text]] if text in table else [ord(ch) for ch in text]


def test_choice_token_ids_keeps_both_spellings():
    assert choice_token_ids(_SpaceAwareTokenizer(), ["A", "B"]) == [[1, 11], [2, 12]]


def test_choice_token_ids_tiny_llama(llama_tokenizer):
    # the tiny tokenizer merged " B" and " C" into single tokens but spells " A" as "Ġ" + "A"
    last = {text: llama_tokenizer.encode(text, add_special_tokens=False)[-1] for text in ("A", " A", "B", " B")}
    assert last["A"] == last[" A"] and last["B"] != last[" B"]
    ids = choice_token_ids(llama_tokenizer, ["A", "B", "C", "D"])
    assert ids[0] == [last["A"]]
    assert ids[1] == sorted([last["B"], last[" B"]])


class _OneTokenTokenizer:
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [7]


def test_choice_token_ids_collision():
    with pytest.raises(DataError, match="Choices 'A' and 'B' map to the same token id 7"):
        choice_token_ids(_OneTokenTokenizer(), ["A", "B"])


# ---- scoring with the tiny model -----------------------------------------------------------------------------


def _demo_prompts(task: ChoiceTask, n_shot: int) -> list[str]:
    return [
        build_prompt(example, task.dev[subject][:n_shot], name)
        for subject, name in task.subjects.items()
        for example in task.questions[subject]
    ]


def test_score_choices_is_deterministic_and_batch_invariant(tiny_model, llama_tokenizer):
    task = load_choice_task(DEMO)
    prompts = _demo_prompts(task, n_shot=2)[::3]  # every subject, a third of the questions: fast on CPU
    first = score_choices(tiny_model, llama_tokenizer, prompts, task.choices, batch_size=4)
    assert len(first) == len(prompts)
    assert set(first) <= set(task.choices)
    assert score_choices(tiny_model, llama_tokenizer, prompts, task.choices, batch_size=4) == first
    assert score_choices(tiny_model, llama_tokenizer, prompts, task.choices, batch_size=1) == first


@pytest.mark.parametrize("letter", ["A", "C"])
def test_forced_logits_pick_that_letter(force_letter, llama_tokenizer, letter):
    task = load_choice_task(DEMO)
    forced = force_letter(letter)
    prompts = _demo_prompts(task, n_shot=1)
    assert score_choices(forced, llama_tokenizer, prompts, task.choices, batch_size=4) == [letter] * len(prompts)


def test_forced_logits_give_100_when_every_answer_is_that_letter(force_letter, llama_tokenizer):
    demo = load_choice_task(DEMO)
    all_c = {s: [ChoiceExample(e.question, e.options, "C") for e in demo.questions[s]] for s in demo.subjects}
    task = ChoiceTask(demo.name, demo.choices, demo.subjects, demo.dev, all_c)
    result = evaluate_choice_task(force_letter("C"), llama_tokenizer, task, n_shot=3, batch_size=4)
    per_subject = {"geography": 100.0, "arithmetic": 100.0, "science": 100.0}
    assert result == {"per_subject": per_subject, "per_category": {}, "average": 100.0}
    assert format_scores(result) == "        Average: 100.00"


def test_evaluate_demo_accuracy_is_the_share_of_the_forced_letter(force_letter, llama_tokenizer):
    task = load_choice_task(DEMO)
    result = evaluate_choice_task(force_letter("B"), llama_tokenizer, task, n_shot=5, batch_size=3)
    expected = {
        s: 100.0 * sum(e.answer == "B" for e in task.questions[s]) / len(task.questions[s]) for s in task.subjects
    }
    assert result["per_subject"] == pytest.approx(expected)
    pooled = [e.answer == "B" for s in task.subjects for e in task.questions[s]]
    assert result["average"] == pytest.approx(100.0 * sum(pooled) / len(pooled))


def test_evaluate_rejects_bad_arguments(tiny_model, llama_tokenizer):
    task = load_choice_task(DEMO)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        evaluate_choice_task(tiny_model, llama_tokenizer, task, n_shot=0, batch_size=0)
