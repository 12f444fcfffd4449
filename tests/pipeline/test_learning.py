"""What `lf-ray run` prints about what a run's model learned: grpo's reward curve, answers before and after."""

from __future__ import annotations

import json

from lf_ray.pipeline.learning import answers_before_after, print_learning, question, reward_curve
from lf_ray.pipeline.store import RunRecord

LLAMA3 = (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 8 + 18? Answer with the number only."
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)
SMOLLM2 = (
    "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\nWhat is 15 - 3? Answer with "
    "the number only.<|im_end|>\n<|im_start|>assistant\n"
)


def test_the_reward_curve_compares_the_first_and_last_quarter_of_the_steps():
    entries = [
        {"current_steps": step, "reward": reward}
        for step, reward in enumerate([0.1, 0.0, 0.2, 0.3, 0.4, 0.5, 0.3, 0.5], 1)
    ]
    assert reward_curve(entries + [{"current_steps": 9}]) == (
        "reward over 8 logged steps: first 2 0.050 -> last 2 0.400 (+700%)"
    )
    assert reward_curve([{"loss": 1.0}, {"loss": 0.5}]) is None  # not an RL run


def test_the_question_is_the_last_user_message_of_the_rendered_prompt():
    assert question(LLAMA3) == "What is 8 + 18? Answer with the number only."
    assert question(SMOLLM2) == "What is 15 - 3? Answer with the number only."
    assert question("Translate: hello") == "Translate: hello"


def test_answers_before_and_after_count_numeric_matches_and_show_the_first_questions():
    rows = [
        {"prompt": SMOLLM2, "label": "12", "base_predict": "The answer is 15 - 3 = 11.", "predict": "12"},
        {"prompt": LLAMA3, "label": "26", "base_predict": "26", "predict": "It is 26"},
        {"prompt": LLAMA3, "label": "26", "base_predict": "no", "predict": "25"},
    ]
    lines = answers_before_after(rows)
    assert lines[0] == "answers whose last number is the reference's: 1/3 before training, 2/3 after"
    assert lines[1] == "> What is 15 - 3? Answer with the number only.   (reference '12')"
    assert lines[2:4] == ["  before: 'The answer is 15 - 3 = 11.'", "  after:  '12'"]
    assert answers_before_after([{"prompt": LLAMA3, "label": "26", "predict": "26"}]) == []  # no base answers


def test_print_learning_reads_a_runs_trainer_log_and_predictions(tmp_path, capsys):
    model, predictions = tmp_path / "grpo" / "model", tmp_path / "eval" / "generated_predictions.jsonl"
    model.mkdir(parents=True)
    predictions.parent.mkdir()
    (model / "trainer_log.jsonl").write_text("".join(json.dumps({"reward": r}) + "\n" for r in (0.2, 0.2, 0.6, 0.6)))
    row = {"prompt": LLAMA3, "label": "26", "base_predict": "27", "predict": "26"}
    predictions.write_text(json.dumps(row) + "\n")
    steps = {
        "grpo": {"uses": "train", "outputs": {"model": str(model)}},
        "eval": {"uses": "eval", "outputs": {"predictions": str(predictions)}},
        "export": {"uses": "export", "outputs": {"model": str(tmp_path / "export")}},
    }
    print_learning(RunRecord(str(tmp_path / "run.json"), {"steps": steps}))
    out = capsys.readouterr().out
    assert "grpo:\n  reward over 4 logged steps: first 1 0.200 -> last 1 0.600 (+200%)" in out
    assert "eval:\n  answers whose last number is the reference's: 0/1 before training, 1/1 after" in out
    assert "export" not in out
