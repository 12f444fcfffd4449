"""The web board in a real headless Chromium: fill the Train tab with the builtin tiny model, preview the
command, train to 100% with a live loss plot, chat with the result (streamed); and abort a training run
submitted as a Ray job to a real cluster. Screenshots go to the test's tmp folder (`screenshots/`).

Chromium comes from the OS (Debian's `chromium`, as .ci/run installs it); Playwright only drives it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from playwright.sync_api import expect, sync_playwright

from lf_ray.pipeline.store import RunRecord
from lf_ray.tracking.trainer_log import read_trainer_log
from lf_ray.webui.board_configs import save_run_form
from lf_ray.webui.jobs import session_pids
from lf_ray.webui.locales import label, message
from tests.e2e.conftest import BIN, free_port, job_env

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # this machine's network is closed: background fetches would be refused, many at a time
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    found = os.environ.get("LF_RAY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no Chromium: install Debian's `chromium` (apt-get install chromium) or set LF_RAY_CHROMIUM")
    return found


@contextlib.contextmanager
def served(root: Path, *args: str) -> Iterator[str]:
    """`lf-ray ARGS --port P` working in `root`, until the block ends; yields its URL once it answers."""
    port = free_port()
    with open(root / "server.log", "w") as log:
        process = subprocess.Popen(
            [str(BIN / "lf-ray"), *args, "--port", str(port)],
            cwd=root,
            env=job_env(RAY_AUTH_MODE="disabled"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail(f"lf-ray {args[0]} did not answer on {url}: {(root / 'server.log').read_text()[-3000:]}")
        yield url
        stopping = time.monotonic()  # SIGTERM to the board alone: it closes its server, stops its running job
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        assert code == 0 and time.monotonic() - stopping < 10, (root / "server.log").read_text()[-3000:]
        assert session_pids(process.pid) == []  # nothing it started is left
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """`lf-ray webui` on a free localhost port, working in its own folder."""
    root = tmp_path_factory.mktemp("board")
    with served(root, "webui", "--save-dir", "saves", "--config-dir", "configs") as url:
        yield url, root


@pytest.fixture(scope="module")
def browser():

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, board):
    url, _ = board
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector("#train-start_btn")
    yield page
    page.close()


def shot(page, root: Path, name: str) -> None:
    (root / "screenshots").mkdir(exist_ok=True)
    page.screenshot(path=str(root / "screenshots" / f"{name}.png"), full_page=True)


def fill(page, elem: str, value) -> None:
    box = page.locator(f"#{elem} input, #{elem} textarea").first
    box.fill(str(value))
    box.press("Tab")


def choose(page, elem: str, option: str) -> None:
    page.locator(f"#{elem} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def output_text(page, tab: str) -> str:
    return page.locator(f"#{tab}-output_box textarea").input_value()


def wait_for_output(page, tab: str, prefix: str, timeout_s: float) -> str:
    page.wait_for_function(
        "([sel, prefix]) => document.querySelector(sel).value.startsWith(prefix)",
        arg=[f"#{tab}-output_box textarea", prefix],
        timeout=timeout_s * 1000,
    )
    return output_text(page, tab)


def fill_training_form(page, **values) -> None:
    model = page.locator("#top-model_name_or_path input")
    model.fill("builtin:tiny-llama")
    model.press("Enter")
    page.wait_for_function("document.querySelector('#top-template input').value === 'llama3'")
    choose(page, "train-dataset", "identity")
    for elem, value in values.items():
        fill(page, f"train-{elem}", value)


def test_train_from_the_browser_then_chat_with_the_result(page, board):
    _, root = board
    for lang in ("zh", "en"):  # the whole board switches language from the locale table
        choose(page, "top-lang", lang)
        page.wait_for_function(
            f"document.querySelector('#train-start_btn').innerText.trim() === '{label('train.start_btn', lang)}'"
        )
        expect(page.get_by_role("tab", name=label("tab.chat", lang))).to_be_visible()

    fill_training_form(page, max_steps=12, logging_steps=1, gradient_accumulation_steps=1, cutoff_len=128)
    fill(page, "train-learning_rate", "1e-3")
    output_dir = page.locator("#train-output_dir textarea, #train-output_dir input").first.input_value()
    assert output_dir.startswith("saves/tiny-llama/lora/train_")

    page.locator("#train-preview_btn").click()
    preview = wait_for_output(page, "train", "lf-ray train", 10)
    command, _, config = preview.partition("\n\n")
    assert command == f"lf-ray train {output_dir}/lf_ray_train.yaml"
    written = yaml.safe_load(config.split("\n", 1)[1])
    assert written["max_steps"] == 12 and written["dataset"] == "identity" and written["learning_rate"] == 1e-3
    assert not (root / output_dir).exists()  # a preview runs nothing

    fill(page, "train-config_path", "tiny_identity")
    page.locator("#train-save_btn").click()
    wait_for_output(page, "train", "Arguments saved to", 10)
    assert yaml.safe_load((root / "configs" / "tiny_identity.yaml").read_text())["train.max_steps"] == 12
    shot(page, root, "1-train-preview")

    page.locator("#train-start_btn").click()
    wait_for_output(page, "train", "Started pid ", 20)
    final = wait_for_output(page, "train", "Finished", 300)
    assert output_dir in final
    progress = page.locator("#train-progress .lfr-progress")
    assert progress.get_attribute("data-percent") == "100" and progress.get_attribute("data-step") == "12"
    assert "12/12 (100%)" in progress.inner_text()
    page.locator("#train-loss_viewer img").wait_for()  # the loss plot is drawn
    assert [e["current_steps"] for e in read_trainer_log(root / output_dir) if "loss" in e] == list(range(1, 13))
    shot(page, root, "2-train-finished")

    page.locator("#top-refresh_adapters").click()
    choose(page, "top-adapter_path", output_dir)
    page.get_by_role("tab", name="Chat").click()
    page.locator("#chat-load_btn").click()
    page.wait_for_function(
        "document.querySelector('#chat-info_box textarea').value.startsWith('Loaded')", timeout=60_000
    )
    # the Chat tab samples (temperature 0.95): the 12-step tiny model's answer is chance, and it may end at once
    # (complete answers of 0, 3, 9 and 36 characters were seen); a user would ask again, and so does the test
    for query in ("Who are you?", "Hello!", "What is your name?"):
        answer, pieces = _ask_in_the_chat_tab(page, query)
        if answer:
            break
    assert query in page.locator("#chat-chatbot").inner_text() and answer, answer
    assert pieces >= 3  # the answer arrived in pieces: streamed
    shot(page, root, "3-chat")


def _ask_in_the_chat_tab(page, query: str) -> tuple[str, int]:
    """Send `query`; once the answer has streamed, its text and how many different lengths the chat showed."""
    page.evaluate(
        """() => {
            const chatbot = document.querySelector('#chat-chatbot');
            window.lengths = [];
            new MutationObserver(() => window.lengths.push(chatbot.innerText.length))
                .observe(chatbot, {subtree: true, childList: true, characterData: true});
        }"""
    )
    fill(page, "chat-query", query)
    page.locator("#chat-submit_btn").click()
    expect(page.locator("#chat-chatbot .message.user").last).to_contain_text(query)
    bot = page.locator("#chat-chatbot .message.bot").last
    bot.wait_for()
    # while the answer streams, Gradio marks the event's outputs `.pending` then `.generating`: wait for the end
    page.wait_for_function("!document.querySelector('.generating, .pending')", timeout=120_000)
    return bot.inner_text().strip(), len(set(page.evaluate("window.lengths")))


def test_abort_a_training_run_submitted_as_a_ray_job(page, board, ray_head_cluster):
    from ray.job_submission import JobSubmissionClient

    _, root = board
    output_dir = root / "saves" / "aborted_run"
    fill_training_form(page, max_steps=100000, save_steps=100000, logging_steps=1, cutoff_len=128)
    fill(page, "top-ray_address", ray_head_cluster.dashboard)
    fill(page, "train-output_dir", str(output_dir))
    page.locator("#train-preview_btn").click()
    assert wait_for_output(page, "train", "# submitted as a Ray job to", 10).startswith(
        f"# submitted as a Ray job to {ray_head_cluster.dashboard}\nlf-ray train {output_dir}/lf_ray_train.yaml"
    )

    page.locator("#train-start_btn").click()
    job_id = wait_for_output(page, "train", "Started lf-ray-train-", 30).split()[1].rstrip(".")
    page.wait_for_function(
        "Number(document.querySelector('#train-progress .lfr-progress')?.dataset.step || 0) > 0", timeout=240_000
    )
    shot(page, root, "4-ray-job-running")
    page.locator("#train-abort_btn").click()
    wait_for_output(page, "train", "Aborted.", 60)
    shot(page, root, "5-ray-job-aborted")

    client = JobSubmissionClient(ray_head_cluster.dashboard)
    assert client.get_job_status(job_id).value == "STOPPED"
    logged = len(read_trainer_log(output_dir))
    time.sleep(3)
    assert 0 < logged == len(read_trainer_log(output_dir)) < 100000  # it stopped midway and stays stopped


def test_the_runs_tab_lists_pipeline_runs_and_shows_one(page, board):
    _, root = board
    steps = {"sft": {"uses": "train", "needs": [], "status": "pending", "artifact_dir": str(root / "sft")}}
    record = RunRecord.create(root / "saves" / "pipelines" / "tiny", "tiny", "tiny.yaml", steps)
    record.update_step("sft", status="complete", duration_s=2.5)
    record.finish("complete")
    page.get_by_role("tab", name="Runs").click()
    page.locator("#runs-refresh_btn").click()
    expect(page.locator("#runs-runs_table")).to_contain_text(record.run_id)
    details = page.locator("#runs-run_details")
    expect(details).to_contain_text(f"tiny · {record.run_id} · complete")
    expect(details.get_by_role("link", name="Ray dashboard")).to_have_attribute("href", "http://127.0.0.1:8265/#/jobs")
    shot(page, root, "6-runs")


def test_an_output_dir_holding_a_run_loads_its_form_to_resume_it(page, board):
    _, root = board
    previous = root / "saves" / "previous_run"
    form = {"top.model_name_or_path": "builtin:tiny-qwen", "train.learning_rate": "3e-4"}
    save_run_form(previous, {**form, "train.output_dir": str(previous), "train.dataset": ["identity"]})
    fill(page, "train-output_dir", str(previous))
    wait_for_output(page, "train", f"{previous} already holds a run", 10)
    expect(page.locator("#train-learning_rate textarea, #train-learning_rate input").first).to_have_value("3e-4")
    expect(page.locator("#top-model_name_or_path input")).to_have_value("builtin:tiny-qwen")
    time.sleep(1)  # loading the form must not set off the edits' own updates (a fresh output dir, no datasets)
    expect(page.locator("#train-output_dir textarea, #train-output_dir input").first).to_have_value(str(previous))
    expect(page.locator("#train-dataset")).to_contain_text("identity")


def test_webchat_serves_the_chat_tab_with_the_configs_model_loaded(browser, tmp_path):
    config = Path(__file__).resolve().parents[2] / "examples" / "inference" / "tiny_qwen.yaml"
    with served(tmp_path, "webchat", str(config)) as url:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(url)
        expect(page.locator("#chat-info_box textarea")).to_have_value("builtin:tiny-qwen")
        expect(page.locator("#top-model_name_or_path input")).to_have_value("builtin:tiny-qwen")
        assert page.locator("#train-start_btn").count() == 0  # the Chat tab alone
        fill(page, "chat-query", "hi")
        page.locator("#chat-submit_btn").click()
        expect(page.locator("#chat-chatbot .message.bot")).not_to_be_empty(timeout=60_000)
        shot(page, tmp_path, "webchat")
        page.close()


def test_demo_mode_previews_and_saves_but_launches_nothing(browser, tmp_path):
    with served(tmp_path, "webui", "--demo", "--lang", "ko") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.goto(url)
        fill_training_form(page, max_steps=3)
        page.locator("#train-preview_btn").click()
        wait_for_output(page, "train", "lf-ray train saves/tiny-llama/lora/train_", 10)
        fill(page, "train-config_path", "kept")
        page.locator("#train-save_btn").click()
        page.wait_for_function("document.querySelector('#train-output_box textarea').value.includes('kept.yaml')")
        page.locator("#train-start_btn").click()
        refused = message("err_demo", "ko")
        wait_for_output(page, "train", refused, 10)
        assert page.locator("#demo-banner").inner_text() == refused
        shot(page, tmp_path, "demo")
        page.close()
    assert (tmp_path / "board_configs" / "kept.yaml").is_file() and not (tmp_path / "saves").exists()
