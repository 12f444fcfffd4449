"""The step kinds, one object each: what it accepts, its checks, what it hands on, what it outputs, how it runs.

    step = STEPS["train"]
    step.accepts          # ("preprocess", "train", "tune"): the kinds whose artifacts it can take
    step.fingerprint(cfg, inputs)      # the artifact's identity: the config less its folders, the inputs' identities
    step.outputs(folder, config)       # the artifact's named outputs, known before the step runs
    step.handoff(producer_plan, consumer)  # the config keys this step's artifact gives a consumer
    step.check(cfg, inputs)            # the checks its CLI command makes before it loads anything
    step.run(cfg, context)             # -> StepOutput(outputs, metrics)

The pipeline planner, the single commands' plans (`pipeline.command`), the executor and the run report read these;
adding a step kind means one class here.
Heavy libraries are imported inside `check` and `run`, so the planner stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from lf_ray import __version__, storage
from lf_ray.artifacts import fingerprint
from lf_ray.constants import DATASET_EVAL_DIR
from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig
    from lf_ray.pipeline.plan import StepPlan

RENDER_KEYS = ("template", "default_system", "tool_format", "enable_thinking", "cutoff_len", "dataset_dir")
"""Keys a model's consumers (eval, export, serve) inherit from the step that trained it: prompts are rendered
exactly as in training."""

TUNE_BEST_DIR = "best"

LOCATION_KEYS = ("output_dir", "tokenized_path", "save_dir", "export_dir", "ray_storage_path", "ray_storage_filesystem")
"""Where a step writes, not what it makes: left out of fingerprints, so a pipeline step and the single command of
the same config (whose folders differ) make artifacts of the same fingerprint."""


@dataclass
class StepContext:
    step_id: str
    artifact: str  # the step's artifact folder: a local path or a URI
    inputs: dict[str, StepPlan]  # need id -> that step's plan
    mlflow_run_id: str | None = None


@dataclass
class StepOutput:
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def has_eval_split(config: Mapping[str, Any]) -> bool:
    """Whether preprocessing `config` writes an `eval` split: the one rule for the planner and the run."""
    return bool(config.get("eval_dataset") or (config.get("dataset") and config.get("val_size")))


class Step:
    """A step kind. Subclasses set the class attributes and override what differs."""

    kind: ClassVar[str]
    accepts: ClassVar[tuple[str, ...]] = ()
    managed_keys: ClassVar[tuple[str, ...]] = ()
    """Config keys the pipeline sets to the step's artifact folder (a spec that sets them is refused)."""
    subdir: ClassVar[str] = ""
    """The artifact's main folder, under the step's artifact."""
    default_cpus: ClassVar[float] = 0.0
    """A step that launches its own Ray work (Data, Train, Tune, Serve) holds no CPU itself, or it could starve
    the workers it starts on a small cluster."""
    makes_model: ClassVar[bool] = False
    cacheable: ClassVar[bool] = True

    def main(self, artifact: str) -> str:
        return storage.join(artifact, self.subdir) if self.subdir else artifact

    def fingerprint(self, cfg: LfRayConfig, inputs: Mapping[str, str]) -> str:
        """The artifact's identity: the step kind, its config (defaults resolved, folders left out), the
        fingerprints of its inputs by their kind, lf-ray's version, and the data files and tokenizer it reads."""
        config = {k: v for k, v in cfg.to_dict(non_default_only=True).items() if k not in LOCATION_KEYS}
        identity = {"uses": self.kind, "config": config, "inputs": dict(sorted(inputs.items())), "lf_ray": __version__}
        if cfg.data.dataset or cfg.data.eval_dataset:  # edits to the data files or the tokenizer invalidate it
            from lf_ray.data.preprocess import plan_preprocess

            identity["data"] = plan_preprocess(cfg).inputs
        return fingerprint(identity)

    def outputs(self, folder: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """`folder`: the artifact's main folder (`main(artifact)` in a pipeline, the config's own for a command)."""
        return {}

    def handoff(self, plan: StepPlan, consumer: Step) -> dict[str, Any]:
        """The config keys a consumer step takes from this step's artifact."""
        return {}

    def command_folder(self, cfg: LfRayConfig) -> str:
        """Where the single command writes the artifact: the folder LLaMA-Factory's key names."""
        raise ConfigError(f"a {self.kind} step runs only in a pipeline")

    def command_reuses(self, cfg: LfRayConfig) -> bool:
        """Whether the single command may reuse a committed artifact of the same fingerprint in its folder."""
        return False

    def check(self, cfg: LfRayConfig, inputs: Mapping[str, StepPlan]) -> None:
        """The checks the step's own command makes before it loads anything (raise ConfigError)."""

    def run(self, cfg: LfRayConfig, context: StepContext) -> StepOutput:
        raise NotImplementedError


class PreprocessStep(Step):
    """The artifact is the tokenized dataset itself (its `train/` and `eval/` Parquet parts), with one manifest."""

    kind = "preprocess"
    managed_keys = ("tokenized_path",)

    def fingerprint(self, cfg: LfRayConfig, inputs: Mapping[str, str]) -> str:
        """The tokenized dataset's own fingerprint (data keys, files, tokenizer), the one its manifest carries."""
        from lf_ray.data.preprocess import plan_preprocess

        return plan_preprocess(cfg).fingerprint

    def outputs(self, folder: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"dataset": folder}

    def command_folder(self, cfg: LfRayConfig) -> str:
        from lf_ray.data.preprocess import plan_preprocess

        return plan_preprocess(cfg).path  # tokenized_path, else <output_dir>/tokenized, else lf-ray's cache

    def command_reuses(self, cfg: LfRayConfig) -> bool:
        return not cfg.data.overwrite_cache

    def check(self, cfg: LfRayConfig, inputs: Mapping[str, StepPlan]) -> None:
        if not cfg.data.dataset and not cfg.data.eval_dataset:
            raise ConfigError("nothing to preprocess: set `dataset` (and/or `eval_dataset`), e.g. dataset: identity")

    def handoff(self, plan: StepPlan, consumer: Step) -> dict[str, Any]:
        if not consumer.makes_model:
            return {}
        return {**plan.own_config, "tokenized_path": plan.outputs["dataset"]}

    def run(self, cfg: LfRayConfig, context: StepContext) -> StepOutput:
        from lf_ray.data.preprocess import run_preprocess
        from lf_ray.reporting import print_preprocess_summary

        result = run_preprocess(cfg)
        print_preprocess_summary(result)
        manifest = result.manifest
        return StepOutput({}, {**manifest["metrics"], "processing_s": manifest["timings"]["processing_s"]})


class TrainStep(Step):
    kind = "train"
    accepts = ("preprocess", "train", "tune")
    managed_keys = ("output_dir",)
    subdir = "model"
    makes_model = True

    def model_dir(self, folder: str) -> str:
        return folder

    def outputs(self, folder: str, config: Mapping[str, Any]) -> dict[str, Any]:
        model = self.model_dir(folder)
        adapters: list[str] = []
        base = model
        if config.get("finetuning_type", "lora") == "lora":
            upstream = list(config.get("adapter_name_or_path") or [])
            kept = upstream if config.get("create_new_adapter") else upstream[:-1]
            adapters, base = [*kept, model], config["model_name_or_path"]
        outputs = {"model": model, "base_model": base, "adapters": adapters}
        if config.get("tokenized_path"):
            outputs["dataset"] = config["tokenized_path"]
        return outputs

    def handoff(self, plan: StepPlan, consumer: Step) -> dict[str, Any]:
        """The base + the adapter chain of a LoRA run, else the trained weights; a consumer that does not train
        also takes the keys that render prompts as training did."""
        location = {
            "model_name_or_path": plan.outputs["base_model"],
            "adapter_name_or_path": plan.outputs["adapters"] or None,
            "finetuning_type": plan.config.get("finetuning_type", "lora"),
        }
        if consumer.makes_model:  # continue training: keep the stage's data settings out of it
            return location
        return {**{k: plan.config[k] for k in RENDER_KEYS if k in plan.config}, **location}

    def command_folder(self, cfg: LfRayConfig) -> str:
        return storage.resolve(cfg.training["output_dir"])

    def command_reuses(self, cfg: LfRayConfig) -> bool:
        return not cfg.training.get("overwrite_output_dir")

    def check(self, cfg: LfRayConfig, inputs: Mapping[str, StepPlan]) -> None:
        from lf_ray.train.launcher import check_trainable

        check_trainable(cfg)

    def run(self, cfg: LfRayConfig, context: StepContext) -> StepOutput:
        from lf_ray.reporting import print_train_summary
        from lf_ray.train.launcher import run_training

        result = run_training(cfg, mlflow_run_id=context.mlflow_run_id)
        print_train_summary(result)
        return StepOutput({"checkpoint": result.checkpoint_path}, result.metrics)


class TuneStep(TrainStep):
    """A sweep: every trial is kept; its best one is the step's model (`<output_dir>/best`)."""

    kind = "tune"

    def model_dir(self, folder: str) -> str:
        return storage.join(folder, TUNE_BEST_DIR)

    def check(self, cfg: LfRayConfig, inputs: Mapping[str, StepPlan]) -> None:
        from lf_ray.tune import tune_spec

        super().check(cfg, inputs)
        tune_spec(cfg)  # the `tune:` section

    def run(self, cfg: LfRayConfig, context: StepContext) -> StepOutput:
        from lf_ray.tune import run_tune
        from lf_ray.tune.plan import describe_tune_result

        result = run_tune(cfg, mlflow_parent_run_id=context.mlflow_run_id)
        print(describe_tune_result(result))
        metrics = {**result.best_metrics, "trials": len(result.trials)}
        return StepOutput({"results_table": str(result.table_path)}, metrics)


class EvalStep(Step):
    """Loss on the eval split the training data set aside, unless `eval_dataset` names other rows."""

    kind = "eval"
    accepts = ("preprocess", "train", "tune")
    managed_keys = ("save_dir",)
    subdir = "results"

    def outputs(self, folder: str, config: Mapping[str, Any]) -> dict[str, Any]:
        results = folder
        return {"results": results, "predictions": storage.join(results, "generated_predictions.jsonl")}

    @staticmethod
    def eval_split(cfg: LfRayConfig, inputs: Mapping[str, StepPlan]) -> str | None:
        """The tokenized eval split an input hands over, when the config names no eval rows of its own."""
        if cfg.data.eval_dataset:
            return None
        for producer in inputs.values():
            dataset = producer.outputs.get("dataset")
            if dataset and has_eval_split(producer.config):
                return storage.join(dataset, DATASET_EVAL_DIR)
        return None

    def command_folder(self, cfg: LfRayConfig) -> str:
        from lf_ray.evaluate.evaluator import plan_eval

        return plan_eval(cfg).results_dir  # save_dir, else output_dir

    def check(self, cfg: LfRayConfig, inputs: Mapping[str, StepPlan]) -> None:
        from lf_ray.evaluate.evaluator import plan_eval

        plan_eval(cfg, eval_split=self.eval_split(cfg, inputs))

    def run(self, cfg: LfRayConfig, context: StepContext) -> StepOutput:
        from lf_ray.evaluate.evaluator import run_eval
        from lf_ray.reporting import print_eval_summary

        split = self.eval_split(cfg, context.inputs)
        result = run_eval(cfg, eval_split=split, work_dir=context.artifact)
        print_eval_summary(result)
        return StepOutput({}, result.metrics)


class ExportStep(Step):
    kind = "export"
    accepts = ("train", "tune")
    managed_keys = ("export_dir",)
    subdir = "model"
    default_cpus = 1.0  # export computes in its own task

    def outputs(self, folder: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"model": folder}

    def handoff(self, plan: StepPlan, consumer: Step) -> dict[str, Any]:
        inherited = {k: plan.config[k] for k in RENDER_KEYS if k in plan.config}
        return {**inherited, "model_name_or_path": plan.outputs["model"], "adapter_name_or_path": None}

    def command_folder(self, cfg: LfRayConfig) -> str:
        return storage.resolve(cfg.model.export_dir)

    def check(self, cfg: LfRayConfig, inputs: Mapping[str, StepPlan]) -> None:
        from lf_ray.export.merge import check_export_config

        check_export_config(cfg)

    def run(self, cfg: LfRayConfig, context: StepContext) -> StepOutput:
        from lf_ray.export.merge import run_export

        result = run_export(cfg)
        state = "merged adapters into" if result.merged else "copied"
        print(f"export: {state} the model -> {result.export_dir} ({len(result.shards)} weight file(s))")
        return StepOutput({}, {"weight_files": len(result.shards)})


class ServeStep(Step):
    """Deploy the model, send it one real chat completion, and record the endpoint; unless `keep_alive`, the
    application is removed again once the smoke request has answered. An endpoint does not outlive its cluster,
    so the step runs every time."""

    kind = "serve"
    accepts = ("export", "train", "tune")
    cacheable = False

    def outputs(self, folder: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"endpoint": storage.join(folder, "endpoint.json")}

    def check(self, cfg: LfRayConfig, inputs: Mapping[str, StepPlan]) -> None:
        from lf_ray.serve.options import check_serve_config

        check_serve_config(cfg)

    def run(self, cfg: LfRayConfig, context: StepContext) -> StepOutput:
        from lf_ray.artifacts import json_text
        from lf_ray.serve.app import smoke_request, start_serve, stop_serve

        endpoint = start_serve(cfg, blocking=False)
        try:
            body = smoke_request(endpoint)
        finally:
            if not cfg.serve.keep_alive:
                stop_serve(endpoint)
        answer = body["choices"][0]["message"]["content"]
        record = {
            "url": endpoint.url,
            "app_name": endpoint.app_name,
            "models": endpoint.model_ids,
            "keep_alive": cfg.serve.keep_alive,
            "smoke_request": {"prompt": "Hello!", "answer": answer, "usage": body.get("usage")},
        }
        storage.write_text(storage.join(context.artifact, "endpoint.json"), json_text(record))
        print(f"serving {endpoint.base_model} at {endpoint.url}; smoke answer: {answer!r}", flush=True)
        completion_tokens = (body.get("usage") or {}).get("completion_tokens", 0)
        return StepOutput({"url": endpoint.url}, {"smoke_completion_tokens": completion_tokens})


STEPS: dict[str, Step] = {step.kind: step for step in (PreprocessStep(), TrainStep(), TuneStep(), EvalStep(),
                                                        ExportStep(), ServeStep())}  # fmt: skip
"""Every step kind, by the name a pipeline's `uses:` gives it."""


def step_kind(name: str) -> Step:
    try:
        return STEPS[name]
    except KeyError:
        raise ConfigError(f"`{name}` is not a step kind; use one of {', '.join(STEPS)}") from None
