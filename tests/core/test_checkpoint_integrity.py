"""Bad checkpoints are refused before anything is unpickled, with an error naming the file and the reason."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from graflow import TaskWrapper, WorkflowEngine, workflow
from graflow.core.checkpoint import CheckpointManager
from graflow.exceptions import (
    CheckpointCorruptedError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointVersionError,
)


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFLOW_SECRET_KEY", raising=False)


def make_checkpoint(tmp_path: Path, config: dict[str, Any] | None = None) -> str:
    with workflow("small") as wf:
        TaskWrapper("first", lambda: 1) >> TaskWrapper("second", lambda first: first + 1)
    context = wf.create_context()
    context.channel.set("payload", list(range(1000)))
    path, _ = CheckpointManager.create_checkpoint(context, path=str(tmp_path / "ckpt"), config=config)
    return path


def part(path: str, suffix: str) -> Path:
    return Path(path[: -len(".pkl")] + suffix)


def rewrite_meta(
    path: str, change: Callable[[dict[str, Any]], None], redigest: bool = False, algorithm: str = "blake3"
) -> None:
    """Edit the meta like someone who knows the format (optionally fixing the digests afterwards)."""
    meta_file = part(path, ".meta.json")
    meta = json.loads(meta_file.read_text())
    change(meta)
    if redigest:
        hash_fn = blake3 if algorithm == "blake3" else hashlib.sha256
        for name, suffix in (("pkl", ".pkl"), ("state", ".state.json")):
            data = part(path, suffix).read_bytes()
            meta["files"][name] = {"size": len(data), algorithm: hash_fn(data).hexdigest()}
    meta_file.write_text(json.dumps(meta))


def test_an_intact_checkpoint_resumes(tmp_path: Path) -> None:
    context, _ = CheckpointManager.resume_from_checkpoint(make_checkpoint(tmp_path))
    assert WorkflowEngine().execute(context) == 2


# --- missing files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".meta.json", ".state.json", ".pkl"])
def test_a_missing_file_is_named(tmp_path: Path, suffix: str) -> None:
    path = make_checkpoint(tmp_path)
    part(path, suffix).unlink()
    with pytest.raises(CheckpointNotFoundError, match=re.escape(f"ckpt{suffix}' is missing")) as info:
        CheckpointManager.resume_from_checkpoint(path)
    assert isinstance(info.value, FileNotFoundError)  # the spec's `except FileNotFoundError` works


def test_a_checkpoint_that_never_existed(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint there"):
        CheckpointManager.resume_from_checkpoint(str(tmp_path / "nothing.pkl"))


# --- corrupted, truncated, tampered ------------------------------------------------------------------


def test_corrupted_meta_json(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    part(path, ".meta.json").write_text('{"schema_version": 1, "checkpoint_id": ')
    with pytest.raises(CheckpointCorruptedError, match=r"ckpt\.meta\.json is not valid JSON") as info:
        CheckpointManager.resume_from_checkpoint(path)
    assert isinstance(info.value, ValueError)


def test_meta_without_its_fields(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    rewrite_meta(path, lambda meta: meta.pop("files"))
    with pytest.raises(CheckpointCorruptedError, match=r"meta\.json lacks or mangles field 'files'"):
        CheckpointManager.resume_from_checkpoint(path)


def test_corrupted_state_json_fails_its_digest(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    state = part(path, ".state.json")
    state.write_bytes(state.read_bytes().replace(b'"steps":0', b'"steps":9'))
    with pytest.raises(CheckpointCorruptedError, match=r"ckpt\.state\.json does not match the BLAKE3 digest"):
        CheckpointManager.resume_from_checkpoint(path)


def test_invalid_state_json_is_named_even_when_digests_were_rewritten(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    part(path, ".state.json").write_text("{not json")
    rewrite_meta(path, lambda meta: None, redigest=True)
    with pytest.raises(CheckpointCorruptedError, match=r"ckpt\.state\.json is not valid JSON"):
        CheckpointManager.resume_from_checkpoint(path)


def test_truncated_pickle(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    pkl = part(path, ".pkl")
    data = pkl.read_bytes()
    pkl.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointCorruptedError, match=rf"ckpt\.pkl is truncated: {len(data) // 2} bytes"):
        CheckpointManager.resume_from_checkpoint(path)


def test_truncated_pickle_with_a_matching_digest_is_still_refused(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    pkl = part(path, ".pkl")
    pkl.write_bytes(pkl.read_bytes()[:-40])
    rewrite_meta(path, lambda meta: None, redigest=True)
    with pytest.raises(CheckpointCorruptedError, match=r"ckpt\.pkl cannot be unpickled"):
        CheckpointManager.resume_from_checkpoint(path)


def test_one_flipped_byte_in_the_pickle(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    pkl = part(path, ".pkl")
    data = bytearray(pkl.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pkl.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptedError, match=r"ckpt\.pkl does not match the BLAKE3 digest"):
        CheckpointManager.resume_from_checkpoint(path)


def test_meta_records_blake3_digests_of_the_other_files(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    files = json.loads(part(path, ".meta.json").read_text())["files"]
    for name, suffix in (("pkl", ".pkl"), ("state", ".state.json")):
        data = part(path, suffix).read_bytes()
        assert files[name] == {"size": len(data), "blake3": blake3(data).hexdigest()}


def test_an_unknown_digest_algorithm_is_refused(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    rewrite_meta(path, lambda meta: meta["files"]["pkl"].update(md5=meta["files"]["pkl"].pop("blake3")))
    with pytest.raises(CheckpointCorruptedError, match=r"meta\.json lacks or mangles field .*one of blake3, sha256"):
        CheckpointManager.resume_from_checkpoint(path)


def test_a_schema_1_checkpoint_with_sha256_digests_still_resumes(tmp_path: Path) -> None:
    """Checkpoints written before the switch to BLAKE3 (schema 1) record SHA-256 digests."""
    path = make_checkpoint(tmp_path)
    state = part(path, ".state.json")
    state.write_text(json.dumps({**json.loads(state.read_text()), "schema_version": 1}))
    rewrite_meta(path, lambda meta: meta.update(schema_version=1), redigest=True, algorithm="sha256")
    assert "sha256" in json.loads(part(path, ".meta.json").read_text())["files"]["pkl"]
    context, _ = CheckpointManager.resume_from_checkpoint(path)
    assert WorkflowEngine().execute(context) == 2


def test_a_schema_1_pickle_that_fails_its_sha256_is_refused(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    rewrite_meta(path, lambda meta: meta.update(schema_version=1), redigest=True, algorithm="sha256")
    pkl = part(path, ".pkl")
    data = bytearray(pkl.read_bytes())
    data[-10] ^= 0x01
    pkl.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptedError, match=r"ckpt\.pkl does not match the SHA-256 digest"):
        CheckpointManager.resume_from_checkpoint(path)


def test_files_of_two_checkpoints_are_not_mixed(tmp_path: Path) -> None:
    first = make_checkpoint(tmp_path / "a")
    second = make_checkpoint(tmp_path / "b")
    part(first, ".pkl").write_bytes(part(second, ".pkl").read_bytes())
    with pytest.raises(CheckpointCorruptedError, match=r"ckpt\.pkl does not match"):
        CheckpointManager.resume_from_checkpoint(first)


# --- schema versions ---------------------------------------------------------------------------------


def test_meta_schema_from_the_future(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    rewrite_meta(path, lambda meta: meta.update(schema_version=99))
    with pytest.raises(CheckpointVersionError, match=r"ckpt\.meta\.json was written with checkpoint schema 99"):
        CheckpointManager.resume_from_checkpoint(path)


def test_state_schema_from_the_future(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    state = part(path, ".state.json")
    doc = json.loads(state.read_text())
    doc["schema_version"] = 3
    state.write_text(json.dumps(doc))
    rewrite_meta(path, lambda meta: None, redigest=True)
    with pytest.raises(CheckpointVersionError, match=r"ckpt\.state\.json .* schema 3.*upgrade graflow-core"):
        CheckpointManager.resume_from_checkpoint(path)


def test_meta_without_a_schema_version(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    rewrite_meta(path, lambda meta: meta.pop("schema_version"))
    with pytest.raises(CheckpointCorruptedError, match="no integer schema_version"):
        CheckpointManager.resume_from_checkpoint(path)


# --- HMAC signatures ---------------------------------------------------------------------------------


def test_signed_checkpoint_round_trips_with_the_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", "s3cret")
    path = make_checkpoint(tmp_path)
    assert json.loads(part(path, ".meta.json").read_text())["signature"]["algorithm"] == "hmac-sha256"
    context, _ = CheckpointManager.resume_from_checkpoint(path)
    assert WorkflowEngine().execute(context) == 2


def test_wrong_hmac_key_is_refused(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, config={"secret_key": "right"})
    with pytest.raises(CheckpointCorruptedError, match=r"meta\.json signature does not match"):
        CheckpointManager.resume_from_checkpoint(path, config={"secret_key": "wrong"})


def test_tampered_signed_meta_is_refused(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, config={"secret_key": "right"})
    rewrite_meta(path, lambda meta: meta["user_metadata"].update(evil=True), redigest=True)
    with pytest.raises(CheckpointCorruptedError, match="signature does not match"):
        CheckpointManager.resume_from_checkpoint(path, config={"secret_key": "right"})


def test_tampered_pickle_under_a_signature_is_refused(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, config={"secret_key": "right"})
    data = part(path, ".pkl").read_bytes()
    part(path, ".pkl").write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(CheckpointCorruptedError, match=r"ckpt\.pkl does not match"):
        CheckpointManager.resume_from_checkpoint(path, config={"secret_key": "right"})


def test_unsigned_checkpoint_is_refused_when_a_key_is_set(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    with pytest.raises(CheckpointCorruptedError, match="is not signed, but a secret key is set"):
        CheckpointManager.resume_from_checkpoint(path, config={"secret_key": "k"})


def test_signed_checkpoint_is_refused_without_a_key(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, config={"secret_key": "k"})
    with pytest.raises(CheckpointCorruptedError, match="is signed, but no secret key is set"):
        CheckpointManager.resume_from_checkpoint(path)
    listed = CheckpointManager.list_checkpoints(str(tmp_path))  # listing loads nothing: no key needed
    assert [m.path for m in listed] == [path]


def test_broken_meta_is_skipped_by_listings(tmp_path: Path) -> None:
    good = make_checkpoint(tmp_path / "d")
    broken = CheckpointManager.create_checkpoint(
        CheckpointManager.resume_from_checkpoint(good)[0], path=str(tmp_path / "d" / "broken")
    )[0]
    part(broken, ".meta.json").write_text("][")
    assert [m.path for m in CheckpointManager.list_checkpoints(str(tmp_path / "d"))] == [good]


# --- code that moved ---------------------------------------------------------------------------------


def test_a_task_module_that_is_gone_is_named(tmp_path: Path) -> None:
    (tmp_path / "gone_tasks.py").write_text(
        textwrap.dedent(
            """
            from graflow import task, workflow
            from graflow.core.checkpoint import CheckpointManager

            @task
            def step():
                return 1

            def save(path):
                with workflow("w") as wf:
                    wf.add(step)
                CheckpointManager.create_checkpoint(wf.create_context(), path=path)
            """
        )
    )
    path = str(tmp_path / "ckpt.pkl")
    code = "import sys, gone_tasks; gone_tasks.save(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, path], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "gone_tasks.py").unlink()
    with pytest.raises(CheckpointError, match=r"refers to code that cannot be imported now.*gone_tasks"):
        CheckpointManager.resume_from_checkpoint(path)
