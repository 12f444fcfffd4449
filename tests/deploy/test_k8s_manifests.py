"""KubeRay manifests: strict validation against the CRDs' schemas, GPU-less heads, GPU workers, shared storage,
entrypoints that name pipelines of this repo and dry-run cleanly, serve import paths that resolve."""

from __future__ import annotations

import copy
import importlib
import shlex
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT.parent / "shared" / "kuberay-crds"
K8S = ROOT / "k8s"
CRD_KINDS = ("RayCluster", "RayJob", "RayService")


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


MANIFESTS = [
    (path, doc) for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml" for doc in _documents(path)
]
RAY_MANIFESTS = [(path, doc) for path, doc in MANIFESTS if doc["kind"] in CRD_KINDS]


def _strict(schema):
    """kubeconform -strict: a field a schema does not list is an error, unless the schema keeps unknown fields."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 3 MB of YAML


@cache
def _crd_schema(kind: str, strict: bool = True) -> dict:
    if not CRD_DIR.is_dir():
        pytest.skip(f"the KubeRay CRDs are not at {CRD_DIR} (../shared/kuberay-crds beside the repository)")
    for path in sorted(CRD_DIR.glob("*.yaml")):
        if f"kind: {kind}\n" not in path.read_text():
            continue
        crd = yaml.load(path.read_text(), Loader=_LOADER)
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        schema = version["schema"]["openAPIV3Schema"]
        return _strict(schema) if strict else schema
    raise AssertionError(f"no CRD for {kind} in {CRD_DIR}")


@cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    schema = _crd_schema(kind)
    return jsonschema.validators.validator_for(schema)(schema)


def _validate(doc: dict) -> None:
    assert doc["apiVersion"] == "ray.io/v1"
    error = jsonschema.exceptions.best_match(_validator(doc["kind"]).iter_errors(doc))
    if error is not None:
        raise error


def _cluster_specs(doc: dict) -> list[dict]:
    spec = doc["spec"]
    return [
        {"RayCluster": spec, "RayJob": spec.get("rayClusterSpec"), "RayService": spec.get("rayClusterConfig")}[
            doc["kind"]
        ]
    ]


def test_every_kind_is_shipped():
    kinds = sorted(doc["kind"] for _, doc in RAY_MANIFESTS)
    assert kinds == ["RayCluster", "RayJob", "RayJob", "RayService"]


@pytest.mark.parametrize(
    ("path", "doc"), RAY_MANIFESTS, ids=lambda v: v.name if isinstance(v, Path) else v["metadata"]["name"]
)
def test_manifest_validates_strictly_against_its_crd(path, doc):
    _validate(doc)


def test_a_broken_manifest_is_rejected_and_strictness_is_what_catches_a_misspelling():
    cluster = next(doc for _, doc in RAY_MANIFESTS if doc["kind"] == "RayCluster")
    misspelled = copy.deepcopy(cluster)
    misspelled["spec"]["headGroupSpec"]["rayStartParam"] = {"num-gpus": "0"}
    jsonschema.validate(misspelled, _crd_schema("RayCluster", strict=False))  # the raw schema lets it through
    with pytest.raises(jsonschema.ValidationError, match=r"'rayStartParam' was unexpected"):
        _validate(misspelled)
    wrong_type = copy.deepcopy(cluster)
    wrong_type["spec"]["workerGroupSpecs"][0]["maxReplicas"] = "four"
    with pytest.raises(jsonschema.ValidationError, match="'four' is not of type 'integer'"):
        _validate(wrong_type)
    missing = copy.deepcopy(cluster)
    del missing["spec"]["workerGroupSpecs"][0]["groupName"]
    with pytest.raises(jsonschema.ValidationError, match="'groupName' is a required property"):
        _validate(missing)


@pytest.mark.parametrize(
    ("path", "doc"), RAY_MANIFESTS, ids=lambda v: v.name if isinstance(v, Path) else v["metadata"]["name"]
)
def test_gpu_less_head_gpu_workers_and_shared_storage(path, doc):
    pvc = next(d for _, d in MANIFESTS if d["kind"] == "PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    for spec in _cluster_specs(doc):
        head = spec["headGroupSpec"]
        assert head["rayStartParams"]["num-gpus"] == "0"
        assert all(
            "nvidia.com/gpu" not in c["resources"].get("limits", {}) for c in head["template"]["spec"]["containers"]
        )
        groups = [head["template"]["spec"], *(group["template"]["spec"] for group in spec["workerGroupSpecs"])]
        for group in spec["workerGroupSpecs"]:
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
            (container,) = group["template"]["spec"]["containers"]
            assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        for pod in groups:
            claims = {
                v["name"]: v["persistentVolumeClaim"]["claimName"]
                for v in pod["volumes"]
                if "persistentVolumeClaim" in v
            }
            assert claims == {"shared": pvc["metadata"]["name"]}
            for container in pod["containers"]:
                assert {"name": "shared", "mountPath": "/mnt/shared"} in container["volumeMounts"]
                assert container["image"] == "ghcr.io/your-org/lf-ray:0.1.0"


def _entrypoint_command(doc: dict) -> list[str]:
    """`cd /home/ray/lf-ray && lf-ray run pipelines/x.yaml` → ["run", "pipelines/x.yaml"], checking the cd."""
    *setup, command = [part.strip() for part in doc["spec"]["entrypoint"].split("&&")]
    workdir = next(
        line.split()[1] for line in (K8S / "Dockerfile").read_text().splitlines() if line.startswith("WORKDIR")
    )
    assert setup == [f"cd {workdir}"]  # the checkout inside the image
    argv = shlex.split(command)
    assert argv[0] == "lf-ray"
    return argv[1:]


JOBS = [doc for _, doc in RAY_MANIFESTS if doc["kind"] == "RayJob"]


@pytest.mark.parametrize("doc", JOBS, ids=lambda doc: doc["metadata"]["name"])
def test_rayjob_runs_a_pipeline_of_this_repo_that_dry_runs(doc, monkeypatch, capsys):
    from ray.runtime_env import RuntimeEnv

    from lf_ray.cli import main

    spec = doc["spec"]
    assert (
        spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0 and spec["backoffLimit"] >= 0
    )
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert set(runtime_env) <= RuntimeEnv.known_fields
    RuntimeEnv(**runtime_env)
    argv = _entrypoint_command(doc)
    assert argv[0] == "run" and (ROOT / argv[1]).is_file(), f"{argv[1]} is not in the repository"
    monkeypatch.chdir(ROOT)
    assert main([*argv, "--dry-run"]) == 0
    assert "# plan:" in capsys.readouterr().out


def test_rayservice_serves_through_lf_rays_builder():
    from ray.runtime_env import RuntimeEnv
    from ray.serve.schema import ServeDeploySchema

    from lf_ray.config import prepare_config

    (service,) = [doc for _, doc in RAY_MANIFESTS if doc["kind"] == "RayService"]
    serve_config = ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"]))
    (app,) = serve_config.applications
    RuntimeEnv(**app.runtime_env)
    cfg = prepare_config(None, base=app.args)  # the builder's arguments are lf-ray config keys
    assert cfg.model.model_name_or_path.startswith("/mnt/shared/")
    module, _, attribute = app.import_path.partition(":")
    assert app.import_path == "lf_ray.serve.app:build_app"
    builder = getattr(importlib.import_module(module), attribute)
    assert callable(builder)


def test_kustomization_lists_every_manifest_and_nothing_else():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    shipped = {path.name for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml"}
    assert set(kustomization["resources"]) == shipped
    namespace = next(doc for _, doc in MANIFESTS if doc["kind"] == "Namespace")
    assert kustomization["namespace"] == namespace["metadata"]["name"]


# -- the object-storage variant (k8s/object-storage/): no shared volume, everything in a bucket --------------

OBJECT_STORAGE = K8S / "object-storage"
OBJECT_RAY_MANIFESTS = [
    (path, doc)
    for path in sorted(OBJECT_STORAGE.glob("*.yaml"))
    if path.name != "kustomization.yaml"
    for doc in _documents(path)
    if doc["kind"] in CRD_KINDS
]


def _object_storage_doc(kind: str) -> dict:
    return next(doc for _, doc in OBJECT_RAY_MANIFESTS if doc["kind"] == kind)


@pytest.mark.parametrize(
    ("path", "doc"), OBJECT_RAY_MANIFESTS, ids=lambda v: v.name if isinstance(v, Path) else v["metadata"]["name"]
)
def test_object_storage_manifests_validate_and_mount_no_shared_volume(path, doc):
    _validate(doc)
    (account,) = [d for d in _documents(OBJECT_STORAGE / "service-account.yaml") if d["kind"] == "ServiceAccount"]
    for spec in _cluster_specs(doc):
        assert spec["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
        pods = [spec["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]
        for pod in pods:
            assert pod["serviceAccountName"] == account["metadata"]["name"]  # the identity that grants the bucket
            assert not [v for v in pod.get("volumes", []) if "persistentVolumeClaim" in v]


def test_object_storage_rayjob_puts_the_run_in_the_bucket_and_dry_runs(s3_server, monkeypatch, capsys):
    import boto3

    from lf_ray.cli import main

    argv = _entrypoint_command(_object_storage_doc("RayJob"))
    uri = argv[argv.index("--storage-path") + 1]
    assert argv[:2] == ["run", "pipelines/demo.yaml"] and uri.startswith("s3://")
    env = yaml.safe_load(_object_storage_doc("RayJob")["spec"]["runtimeEnvYAML"])["env_vars"]
    assert not env["LF_RAY_HOME"].startswith("/mnt/shared") and env["MLFLOW_TRACKING_URI"].startswith("http")
    bucket = uri.removeprefix("s3://").split("/")[0]
    boto3.client("s3").create_bucket(Bucket=bucket)  # the test's S3 server stands in for the cloud's
    monkeypatch.chdir(ROOT)
    assert main([*argv, "--dry-run"]) == 0
    assert f"artifacts under {uri}/demo" in capsys.readouterr().out


def test_object_storage_rayservice_serves_a_model_from_the_bucket():
    from ray.serve.schema import ServeDeploySchema

    from lf_ray.config import prepare_config

    service = _object_storage_doc("RayService")
    (app,) = ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"])).applications
    assert app.import_path == "lf_ray.serve.app:build_app"
    assert prepare_config(None, base=app.args).model.model_name_or_path.startswith("s3://")


def test_object_storage_kustomization_lists_its_manifests():
    kustomization = yaml.safe_load((OBJECT_STORAGE / "kustomization.yaml").read_text())
    shipped = {path.name for path in OBJECT_STORAGE.glob("*.yaml") if path.name != "kustomization.yaml"}
    assert set(kustomization["resources"]) == shipped and kustomization["namespace"] == "lf-ray"
