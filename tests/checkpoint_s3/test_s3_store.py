"""graflow-checkpoint-s3 against moto's S3 server: the ``s3`` scheme, endpoints, layout, bad inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from graflow import TaskExecutionContext, TaskWrapper, WorkflowEngine, task, workflow
from graflow.checkpoint.manager import reset_stores, store_for
from graflow.core.checkpoint import CheckpointManager
from graflow.exceptions import CheckpointCorruptedError, CheckpointError, CheckpointNotFoundError
from graflow.plugins.manager import default_host
from graflow_checkpoint_s3 import S3CheckpointStore

pytestmark = pytest.mark.s3


@task(inject_context=True)
def s3_stage(context: TaskExecutionContext) -> int:
    context.get_channel().set("blob", b"\x00" * 4096)
    context.checkpoint(metadata={"stage": "s3"})
    return 20


@task
def s3_finish(s3_stage: int) -> int:
    return s3_stage + 22


def pipeline() -> Any:
    with workflow("s3_pipeline") as wf:
        s3_stage >> s3_finish
    return wf


def test_the_entry_point_registers_the_s3_scheme(s3_config: dict[str, Any]) -> None:
    registration = default_host().get("checkpoint store", "s3")
    assert registration.plugin == "checkpoint-s3"
    assert isinstance(store_for("s3://bucket/x.pkl", s3_config), S3CheckpointStore)


def test_a_task_checkpoints_to_s3_and_resumes(s3_config: dict[str, Any], bucket: str, s3_client: Any) -> None:
    config = {**s3_config, "checkpoint_dir": f"s3://{bucket}/runs"}
    context = pipeline().create_context(config=config)
    assert WorkflowEngine().execute(context) == 42
    path = context.last_checkpoint_path
    assert path is not None and path.startswith(f"s3://{bucket}/runs/{context.session_id}/")
    stem = path[len(f"s3://{bucket}/") : -len(".pkl")]
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [stem + ".meta.json", stem + ".pkl", stem + ".state.json"]

    resumed, metadata = CheckpointManager.resume_from_checkpoint(path, config=s3_config)
    assert metadata.user_metadata == {"stage": "s3"}
    assert [s.task_id for s in resumed.queue.pending()] == ["s3_finish"]
    assert WorkflowEngine().execute(resumed) == 42
    assert resumed.results == context.results


def test_endpoint_from_the_standard_aws_variable(
    moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    reset_stores()
    try:
        context = pipeline().create_context()
        path, _ = CheckpointManager.create_checkpoint(context, path=f"s3://{bucket}/env/ckpt.pkl")
        assert [m.path for m in CheckpointManager.list_checkpoints(f"s3://{bucket}/env")] == [path]
        resumed, _ = CheckpointManager.resume_from_checkpoint(path)
        assert WorkflowEngine().execute(resumed) == 42
    finally:
        reset_stores()


class RecordingClient:
    """A real boto3 client that remembers the order of its PUTs."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.puts: list[str] = []

    def put_object(self, **kwargs: Any) -> Any:
        self.puts.append(kwargs["Key"])
        return self.client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_meta_is_written_last(s3_client: Any, bucket: str) -> None:
    recording = RecordingClient(s3_client)
    store = S3CheckpointStore(recording)  # type: ignore[arg-type]
    store.write(f"s3://{bucket}/order/c.pkl", b"p", b"{}", lambda: b"{}")
    assert recording.puts == ["order/c.pkl", "order/c.state.json", "order/c.meta.json"]


def test_missing_and_corrupted_objects_are_refused(s3_config: dict[str, Any], bucket: str, s3_client: Any) -> None:
    with workflow("tiny") as wf:
        TaskWrapper("only", lambda: 1)
    path, _ = CheckpointManager.create_checkpoint(
        wf.create_context(), path=f"s3://{bucket}/bad/ckpt.pkl", config=s3_config
    )
    body = s3_client.get_object(Bucket=bucket, Key="bad/ckpt.pkl")["Body"].read()
    s3_client.put_object(Bucket=bucket, Key="bad/ckpt.pkl", Body=body[:-10])
    with pytest.raises(CheckpointCorruptedError, match=r"s3://.*/bad/ckpt\.pkl is truncated"):
        CheckpointManager.resume_from_checkpoint(path, config=s3_config)

    s3_client.put_object(Bucket=bucket, Key="bad/ckpt.meta.json", Body=b"{")
    with pytest.raises(CheckpointCorruptedError, match=r"ckpt\.meta\.json is not valid JSON"):
        CheckpointManager.resume_from_checkpoint(path, config=s3_config)

    future = json.dumps({"schema_version": 7}).encode()
    s3_client.put_object(Bucket=bucket, Key="bad/ckpt.meta.json", Body=future)
    with pytest.raises(CheckpointError, match="schema 7"):
        CheckpointManager.resume_from_checkpoint(path, config=s3_config)

    s3_client.delete_object(Bucket=bucket, Key="bad/ckpt.state.json")
    s3_client.put_object(Bucket=bucket, Key="bad/ckpt.meta.json", Body=b"{}")
    CheckpointManager.delete_checkpoint(path, config=s3_config)
    with pytest.raises(CheckpointNotFoundError, match=r"ckpt\.meta\.json' is missing"):
        CheckpointManager.resume_from_checkpoint(path, config=s3_config)


def test_listing_a_bucket_that_does_not_exist_is_an_error(s3_config: dict[str, Any]) -> None:
    with pytest.raises(CheckpointError, match="NoSuchBucket"):
        CheckpointManager.list_checkpoints("s3://no-such-bucket-here/runs", config=s3_config)
