"""LLaMA-Factory's mmlu / cmmlu / ceval folders load through `load_choice_task`, unzipped or as LF's zip."""

from __future__ import annotations

import json
import re

import pytest

from lf_ray.errors import DataError
from lf_ray.evaluate.choice_tasks import (
    ChoiceExample,
    build_prompt,
    evaluate_choice_task,
    format_scores,
    load_choice_task,
)
from tests.evaluate.lf_tasks import SUBJECTS, write_lf_task, zip_lf_task


def _example(subject: str, split: str, i: int, answer: str) -> ChoiceExample:
    options = {"A": f"{i}0", "B": f"{i}1", "C": f"{i}2", "D": f"{i}3, or none"}
    return ChoiceExample(question=f"{subject} {split} question {i}?", options=options, answer=answer)


# ---- loading each layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "split", "lang", "first", "second"),
    [
        ("mmlu", "test", "en", "abstract_algebra", "world_religions"),
        ("cmmlu", "test", "zh", "agronomy", "chinese_history"),
        ("ceval", "validation", "zh", "accountant", "advanced_mathematics"),
    ],
)
@pytest.mark.parametrize("zipped", [False, True], ids=["folders", "zip"])
def test_lf_layouts_load_subjects_categories_and_rows(tmp_path, task, split, lang, first, second, zipped):
    folder = write_lf_task(tmp_path, task)
    if zipped:
        zip_lf_task(folder)
    loaded = load_choice_task(folder, split=split)
    assert (loaded.name, loaded.split, loaded.lang, loaded.choices) == (task, split, lang, ("A", "B", "C", "D"))
    assert loaded.subjects == {subject: entry["name"] for subject, entry in SUBJECTS[task].items()}
    assert loaded.categories == {subject: entry["category"] for subject, entry in SUBJECTS[task].items()}
    assert loaded.dev[first] == [_example(first, "dev", i, answer) for i, answer in enumerate("ACD")]
    if split == "test":
        assert loaded.questions[first] == [_example(first, "test", i, a) for i, a in enumerate("BBAC")]
        assert loaded.questions[second] == [_example(second, "test", i, a) for i, a in enumerate("ABCD")]
    else:
        assert loaded.questions[second] == [_example(second, "val", 0, "D"), _example(second, "val", 1, "B")]


def test_mmlu_validation_split_is_data_val(tmp_path):
    loaded = load_choice_task(write_lf_task(tmp_path, "mmlu"), split="validation")
    assert loaded.questions["world_religions"] == [
        _example("world_religions", "val", 0, "D"),
        _example("world_religions", "val", 1, "B"),
    ]


def test_config_lang_overrides_the_tasks_own(tmp_path):
    assert load_choice_task(write_lf_task(tmp_path, "cmmlu"), lang="en").lang == "en"


# ---- prompts -------------------------------------------------------------------------------------------------


def test_cmmlu_prompt_is_lfs_chinese_eval_template(tmp_path):
    loaded = load_choice_task(write_lf_task(tmp_path, "cmmlu"))
    prompt = build_prompt(loaded.questions["agronomy"][0], loaded.dev["agronomy"][:2], "农学", loaded.lang)
    assert prompt == (
        "以下是中国关于农学考试的单项选择题，请选出其中的正确答案。\n\n"
        "agronomy dev question 0?\nA. 00\nB. 01\nC. 02\nD. 03, or none\n答案： A\n\n"
        "agronomy dev question 1?\nA. 10\nB. 11\nC. 12\nD. 13, or none\n答案： C\n\n"
        "agronomy test question 0?\nA. 00\nB. 01\nC. 02\nD. 03, or none\n答案："
    )


def test_mmlu_prompt_uses_the_mapping_display_name(tmp_path):
    loaded = load_choice_task(write_lf_task(tmp_path, "mmlu"))
    subject = "abstract_algebra"
    prompt = build_prompt(loaded.questions[subject][1], loaded.dev[subject][:1], loaded.subjects[subject])
    assert prompt == (
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "abstract_algebra dev question 0?\nA. 00\nB. 01\nC. 02\nD. 03, or none\nAnswer: A\n\n"
        "abstract_algebra test question 1?\nA. 10\nB. 11\nC. 12\nD. 13, or none\nAnswer:"
    )


# ---- errors --------------------------------------------------------------------------------------------------


def test_missing_mapping_json(tmp_path):
    folder = write_lf_task(tmp_path, "mmlu")
    (folder / "mapping.json").unlink()
    with pytest.raises(DataError, match=r"holds LLaMA-Factory task data but no mapping\.json.*Fix: copy mapping\.json"):
        load_choice_task(folder)


def test_neither_layout(tmp_path):
    with pytest.raises(DataError, match=r"neither task\.json nor mapping\.json found\. Fix: point `task_dir`"):
        load_choice_task(tmp_path)


def test_bad_mapping_entry(tmp_path):
    folder = write_lf_task(tmp_path, "cmmlu")
    (folder / "mapping.json").write_text(json.dumps({"agronomy": {"name": "农学"}}), encoding="utf-8")
    with pytest.raises(DataError, match=r"mapping\.json: subject 'agronomy' is .*not \{\"name\": \.\.\., \"category\""):
        load_choice_task(folder)
    (folder / "mapping.json").write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match="must be a non-empty object"):
        load_choice_task(folder)


def test_subject_file_missing(tmp_path):
    folder = write_lf_task(tmp_path, "ceval")
    (folder / "val" / "advanced_mathematics_val.csv").unlink()
    message = (
        r"val/advanced_mathematics_val\.csv not found: subject 'advanced_mathematics' of mapping\.json has no "
        r"validation file in the ceval layout\. Fix: add the file, or remove the subject"
    )
    with pytest.raises(DataError, match=message):
        load_choice_task(folder, split="validation")


def test_subject_file_missing_from_the_zip(tmp_path):
    folder = write_lf_task(tmp_path, "mmlu")
    mapping = {**SUBJECTS["mmlu"], "anatomy": {"name": "anatomy", "category": "Other"}}
    (folder / "mapping.json").write_text(json.dumps(mapping), encoding="utf-8")
    zip_lf_task(folder)
    with pytest.raises(DataError, match=r"mmlu\.zip:data/dev/anatomy_dev\.csv not found: subject 'anatomy'"):
        load_choice_task(folder)


def test_bad_answer_letter_names_file_and_row(tmp_path):
    folder = write_lf_task(tmp_path, "mmlu")
    path = folder / "data" / "test" / "world_religions_test.csv"
    path.write_text("What?,1,2,3,4,A\nWhy?,1,2,3,4,E\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"world_religions_test\.csv row 2: answer 'E' is not one of the choices"):
        load_choice_task(folder)


def test_cmmlu_has_no_validation_split(tmp_path):
    with pytest.raises(DataError, match=r"cmmlu layout, which has no validation split\. Fix: set `task: cmmlu_test`"):
        load_choice_task(write_lf_task(tmp_path, "cmmlu"), split="validation")


def test_ceval_test_split_has_no_answers(tmp_path):
    message = r"accountant_test\.csv: no 'answer' column; C-Eval's test answers are not public.*ceval_validation"
    with pytest.raises(DataError, match=message):
        load_choice_task(write_lf_task(tmp_path, "ceval"))


def test_row_with_too_many_cells(tmp_path):
    folder = write_lf_task(tmp_path, "mmlu")
    (folder / "data" / "dev" / "abstract_algebra_dev.csv").write_text("Q?,1,2,3,4,or 5,A\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"abstract_algebra_dev\.csv row 1: 7 cells, expected 6"):
        load_choice_task(folder)


def test_header_without_answer_column(tmp_path):
    folder = write_lf_task(tmp_path, "cmmlu")
    (folder / "test" / "agronomy.csv").write_text(",Question,A,B,C,D,Key\n0,Q?,1,2,3,4,A\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape("test/agronomy.csv: header is ['', 'Question', 'A', 'B', 'C', 'D'")):
        load_choice_task(folder)


def test_mapping_without_data(tmp_path):
    (tmp_path / "mapping.json").write_text(json.dumps(SUBJECTS["mmlu"]), encoding="utf-8")
    with pytest.raises(DataError, match=r"has mapping\.json but no data.*Fix: put LLaMA-Factory's"):
        load_choice_task(tmp_path)


# ---- scoring with the tiny model -----------------------------------------------------------------------------


def test_scores_per_subject_and_lf_category(tmp_path, llama_tokenizer, force_letter):
    loaded = load_choice_task(write_lf_task(tmp_path, "mmlu"))
    result = evaluate_choice_task(force_letter("B"), llama_tokenizer, loaded, n_shot=2, batch_size=3)
    assert result == {
        "per_subject": {"abstract_algebra": 50.0, "world_religions": 25.0},
        "per_category": {"STEM": 50.0, "Humanities": 25.0},
        "average": 37.5,
    }
    assert format_scores(result) == "        Average: 37.50\n           STEM: 50.00\n     Humanities: 25.00"
