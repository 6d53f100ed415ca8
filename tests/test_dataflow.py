"""The import as Dataflow would receive it: translated by the DataflowRunner, never run.

Like Beam's own DataflowRunner tests (``dataflow_runner_test.py``), the pipeline runs with
``--dry_run=True --no_auth``: the runner translates the graph, applies its Dataflow
overrides, builds the sdist of ``--setup_file`` and lists what it would stage, then returns
before it would upload anything or call the Dataflow API. Nothing is patched; no network
and no credentials are needed. What is checked is the job it would submit: the portable
pipeline (the ``pipeline.pb`` Dataflow's workers run), its side inputs, its worker
environment and the package staged for the workers.

Needs the ``[gcp]`` extra (the DataflowRunner's API client), which the README's test
install includes.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import apache_beam as beam
import psycopg
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

from relocate.beam.pipeline import ImportOutputs, ImportPlan, build
from relocate.beam.run import prepare_target
from relocate.db.ddl import field_map
from relocate.logic.convert import build_layouts
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import Registry
from relocate.schemas.removed import REMOVED_MODELS

from .helpers import run_cli

pytestmark = pytest.mark.slow

try:
    from apache_beam.runners.dataflow.internal import apiclient
except ImportError:  # without the [gcp] extra
    apiclient = None

REPO = Path(__file__).resolve().parents[1]

# What Beam's own tests pass; the bucket and project need not exist.
DATAFLOW_DRY_RUN = [
    "--runner=DataflowRunner",
    "--project=relocate-test",
    "--region=us-central1",
    "--temp_location=gs://relocate-test/tmp",
    "--no_auth",
    "--dry_run=True",
    f"--setup_file={REPO / 'setup.py'}",
]


@pytest.fixture(scope="module", autouse=True)
def _needs_gcp_extra() -> None:
    # Module scope: checked before the module-scoped translation below is attempted.
    if apiclient is None:
        pytest.fail("the DataflowRunner needs the [gcp] extra: pip install -e '.[test,gcp]'")


class TranslatedJob:
    """The dry-run job: its portable pipeline, indexed by transform name."""

    def __init__(self, job: Any) -> None:
        self.job = job
        self.pipeline: beam_runner_api_pb2.Pipeline = job.proto_pipeline
        self.transforms = {t.unique_name: t for t in self.pipeline.components.transforms.values()}
        # Each PCollection's producer: the innermost transform that outputs it.
        self.producer: dict[str, str] = {}
        for t in self.transforms.values():
            if not t.subtransforms:
                for pcoll in t.outputs.values():
                    self.producer[pcoll] = t.unique_name

    def top_level(self) -> set[str]:
        return {name for name in self.transforms if "/" not in name}

    def side_inputs(self, name: str) -> dict[str, str]:
        """Side input tag -> name of the transform producing it, for the ParDo ``name``."""
        transform = self.transforms[name]
        assert transform.spec.urn == common_urns.primitives.PAR_DO.urn, name
        payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
        return {tag: self.producer[transform.inputs[tag]] for tag in payload.side_inputs}

    def staged(self) -> dict[str, Path]:
        """Staged name -> local file, for every artifact the workers' environment gets."""
        (environment,) = self.pipeline.components.environments.values()
        files = {}
        for artifact in environment.dependencies:
            assert artifact.role_urn == common_urns.artifact_roles.STAGING_TO.urn
            assert artifact.type_urn == common_urns.artifact_types.FILE.urn
            staged = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
                artifact.role_payload
            ).staged_name
            path = beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path
            files[staged] = Path(path)
        return files

    def container_image(self) -> str:
        (environment,) = self.pipeline.components.environments.values()
        assert environment.urn == common_urns.environments.DOCKER.urn  # all Dataflow runs
        return beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image


@contextmanager
def one_sdist_build_at_a_time() -> Iterator[None]:
    """Holds a lock while Beam builds the sdist of ``--setup_file``: ``setup.py sdist``
    assembles ``relocate-0.1.0/`` in the repository itself, and two xdist workers doing it
    at once delete each other's tree."""
    with open(REPO / ".sdist-build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def translate(db_dsn: str, scope: str, outputs: ImportOutputs | None = None) -> TranslatedJob:
    """Builds the real import graph (target prepared, real plan) and dry-runs it on Dataflow."""
    registry = Registry.load()
    settings = ImportSettings(
        scope=scope, import_uuid=uuid.uuid4().hex, run_id=uuid.uuid4().hex, dsn=db_dsn
    )
    plan = ImportPlan(
        source="gs://relocate-test/export.tar",  # only read by the workers, never here
        settings=settings,
        registry=registry,
        layouts=build_layouts(registry, field_map(), prepare_target(settings, registry)),
        removed_models=REMOVED_MODELS,
        outputs=outputs,
    )
    pipeline = beam.Pipeline(
        options=PipelineOptions([*DATAFLOW_DRY_RUN, f"--job_name=relocate-{scope}"])
    )
    build(pipeline, plan)
    with one_sdist_build_at_a_time():
        result = pipeline.run()
    assert result.state == beam.runners.runner.PipelineState.DONE  # the dry run's answer
    return TranslatedJob(result.job)


@pytest.fixture(scope="module")
def stages() -> int:
    return Registry.load().max_stage


@pytest.fixture(scope="module")
def module_db_dsn(pg_server: str, template_dsn: str) -> Iterator[str]:
    """A database with the target schema shared by this module's read-only checks."""
    template = psycopg.conninfo.conninfo_to_dict(template_dsn)["dbname"]
    name = f"t_dataflow_{os.getpid()}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield psycopg.conninfo.make_conninfo(pg_server, dbname=name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def organizations_job(module_db_dsn: str) -> TranslatedJob:
    # One translation for the checks below: each builds the sdist and runs pip freeze.
    return translate(module_db_dsn, "organizations")


def test_job_holds_every_step_of_the_import(organizations_job: TranslatedJob, stages: int):
    job = organizations_job
    assert job.job.proto.name == "relocate-organizations"
    assert job.job.proto.type_ == apiclient.dataflow.JobType.JOB_TYPE_BATCH
    steps = {"Read", "Admit", "Convert", "ByStage", "LookedUpAdmit", "Report", "Finish"}
    steps |= {f"Stage{k}" for k in range(1, stages + 1)}
    assert steps <= job.top_level()
    assert f"Stage{stages + 1}" not in job.top_level()
    assert "Wipe" not in job.top_level()  # only the global scope wipes


def test_each_stage_write_waits_for_the_gate_of_the_stage_before(
    organizations_job: TranslatedJob, stages: int
):
    job = organizations_job
    # Stage 1 waits for validation: the findings over the whole export; stage k for them
    # and for every batch an earlier stage failed to write (relocate.beam.gate).
    for k in range(1, stages + 1):
        earlier = [f"Stage{j}/Write" for j in range(1, k)]
        assert sorted(job.side_inputs(f"Stage{k}/Write").values()) == sorted(
            ["AllFindings", *earlier]
        )
    # Finish waits for the last stage (and so every stage) and for the report rows.
    assert sorted(job.side_inputs("Finish").values()) == sorted(
        ["AllFindings", "Report/Store", *(f"Stage{j}/Write" for j in range(1, stages + 1))]
    )


def test_a_detached_job_concludes_itself_after_finish(db_dsn: str):
    # What the Flex Template launches: the job records the outcome and writes the files.
    outputs = ImportOutputs("gs://b/findings.json", "gs://b/report.json")
    job = translate(db_dsn, "users", outputs)
    assert "Conclude" in job.top_level()


def test_global_scope_wipes_only_after_validation_and_before_stage_1(db_dsn: str):
    job = translate(db_dsn, "global")
    assert list(job.side_inputs("Wipe").values()) == ["AllFindings"]
    assert sorted(job.side_inputs("Stage1/Write").values()) == ["AllFindings", "Wipe"]


def test_workers_get_the_package_and_the_launcher_s_python_and_beam(
    organizations_job: TranslatedJob,
):
    staged = organizations_job.staged()
    # --setup_file: Dataflow pip-installs this sdist on every worker before it runs a DoFn.
    sdist = staged["workflow.tar.gz"]
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {
        "setup.py",
        "relocate/beam/pipeline.py",
        "relocate/beam/write.py",
        "relocate/schemas/registry.json",
    } <= names
    # Pickled DoFns are unpickled by the same Python and Beam on the workers.
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert organizations_job.container_image().endswith(
        f"/beam_python{python}_sdk:{beam.__version__}"
    )


def test_readme_command_translates_through_the_cli(db_dsn: str, tmp_path: Path):
    # The README's command, with its Beam options passed through the CLI unchanged.
    findings = tmp_path / "findings.json"
    with one_sdist_build_at_a_time():
        run = run_cli(
            "import",
            "organizations",
            "gs://relocate-test/export.tar",
            "--dsn",
            db_dsn,
            "--findings-file",
            str(findings),
            "--runner",
            "DataflowRunner",
            *DATAFLOW_DRY_RUN[1:],
        )
    assert run.code == 0, run.err
    assert findings.read_text() == "[]\n"  # a dry run reads nothing and finds nothing
