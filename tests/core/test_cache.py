"""Result caching: keys, stores, hits and misses, invalidation, bad input, groups in threads and processes."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from structlog.testing import capture_logs

import graflow.cache
from graflow import CoordinationBackend, TaskWrapper, WorkflowEngine, hookimpl, task, workflow
from graflow.cache import CacheKey, FileCacheStore, MemoryCacheStore, key_of
from graflow.cache import memory as memory_module
from graflow.cache.keys import encode_arguments
from graflow.exceptions import CacheError, CacheKeyError, TaskExecutionError, UnknownNameError
from graflow.testing import CacheStoreSuite


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own default cache directory and an empty process memory store."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("GRAFLOW_CACHE_DIR", str(directory))
    monkeypatch.delenv("GRAFLOW_SECRET_KEY", raising=False)
    memory_module.SHARED.clear()
    yield directory
    memory_module.SHARED.clear()


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def counted(calls: list[Any], value: Any = None) -> Any:
    def fn(x: int = 0) -> Any:
        calls.append(x)
        return value if value is not None else x * 10

    return fn


# --- the key ------------------------------------------------------------------------------------------

MODULE = """
from graflow import task

@task(cache=True)
def summarize(items, options):
    return len(items)
"""

KEY_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import cached_mod
from graflow.cache import key_of
args = {"items": {"b", "a", "c", "d"}, "options": {"z": 1, "a": [1, 2.5, None], "m": frozenset({"x", "y"})}}
print(key_of(cached_mod.summarize, args))
"""


def test_the_key_is_the_same_in_other_processes_whatever_the_hash_seed(tmp_path: Path) -> None:
    (tmp_path / "cached_mod.py").write_text(MODULE)
    keys = set()
    for seed in ("1", "2", "12345"):
        proc = subprocess.run(
            [sys.executable, "-c", KEY_SCRIPT, str(tmp_path)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        keys.add(proc.stdout.strip())
    assert len(keys) == 1
    (key,) = keys
    assert key.startswith("summarize:") and len(key.split(":")[1]) == 64


def test_equal_containers_give_equal_keys_and_types_are_told_apart() -> None:
    def enc(value: Any) -> bytes:
        return encode_arguments("t", {"v": value})

    assert enc({"a": 1, "b": 2}) == enc({"b": 2, "a": 1})
    assert enc({3, 1, 2}) == enc({1, 2, 3})
    distinct = [1, 1.0, True, "1", b"1", (1,), [1], {1}, frozenset({1}), None, 0, False, 0.0, -0.0]
    assert len({enc(v) for v in distinct}) == len(distinct)
    assert enc(collections.OrderedDict(a=1)) != enc({"a": 1})


class Color(enum.Enum):
    RED = 1


@attrs.frozen
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Box:
    w: float
    tags: list[str]


class Pair(collections.namedtuple("Pair", "a b")):
    pass


def test_common_value_types_are_encodable_and_content_sensitive() -> None:
    def enc(value: Any) -> bytes:
        return encode_arguments("t", {"v": value})

    for a, b in [
        (Point(1, 2), Point(1, 3)),
        (Box(1.0, ["x"]), Box(1.0, ["y"])),
        (Pair(1, 2), Pair(2, 1)),
        (datetime.date(2026, 1, 1), datetime.date(2026, 1, 2)),
        (Path("a/b"), Path("a/c")),
        (Color.RED, 1),
    ]:
        assert enc(a) == enc(a) and enc(a) != enc(b)


def test_numpy_arrays_are_encoded_by_dtype_shape_and_content() -> None:
    np = pytest.importorskip("numpy")

    def enc(value: Any) -> bytes:
        return encode_arguments("t", {"v": value})

    a = np.arange(6, dtype="int64").reshape(2, 3)
    assert enc(a) == enc(a.copy()) and enc(a) != enc(a.reshape(3, 2)) and enc(a) != enc(a.astype("int32"))


def test_a_self_containing_list_is_refused_not_looped_on() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CacheKeyError, match="contains itself"):
        encode_arguments("t", {"v": loop})


def _compiled(source: str, name: str = "f") -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(source), "<test>", "exec"), namespace)
    return namespace[name]


def test_editing_the_body_invalidates_but_comments_and_line_moves_do_not() -> None:
    base = _compiled("def f(x):\n    return x + 1\n")
    commented = _compiled("\n\n\n# a comment\ndef f(x):\n    # explain\n    return x + 1  # trailing\n")
    edited = _compiled("def f(x):\n    return x + 2\n")
    nested = _compiled("def f(x):\n    g = lambda y: y * 2\n    return g(x)\n")
    nested_edit = _compiled("def f(x):\n    g = lambda y: y * 3\n    return g(x)\n")

    def key(fn: Any) -> CacheKey:
        return key_of(TaskWrapper("same", fn, cache=True, register=False), {"x": 1})

    assert key(base) == key(commented)
    assert key(base) != key(edited)
    assert key(nested) != key(nested_edit)
    assert key(base) != key_of(TaskWrapper("other", base, cache=True, register=False), {"x": 1})


# --- runs: hits, misses, what invalidates -------------------------------------------------------------


def test_a_hit_skips_the_function() -> None:
    calls: list[Any] = []
    with workflow("hit") as wf:
        TaskWrapper("double", counted(calls), cache=True, kwargs={"x": 4})
    assert wf.execute() == 40
    assert wf.execute() == 40
    assert calls == [4]


def test_a_cached_none_is_a_hit() -> None:
    calls: list[Any] = []

    def nothing() -> None:
        calls.append(1)

    with workflow("none") as wf:
        TaskWrapper("nothing", nothing, cache=True, cache_store="memory")
    _, ctx = wf.execute(ret_context=True)
    assert ctx.results["nothing"] is None
    _, ctx = wf.execute(ret_context=True)
    assert ctx.results["nothing"] is None
    assert calls == [1]


def test_an_upstream_result_received_by_name_is_part_of_the_key() -> None:
    calls: list[Any] = []
    source = {"value": 1}

    def upstream() -> int:
        return source["value"]

    def square(upstream: int) -> int:
        calls.append(upstream)
        return upstream * upstream

    with workflow("upstream") as wf:
        TaskWrapper("upstream", upstream) >> TaskWrapper("square", square, cache=True, cache_store="memory")
    assert [wf.execute(), wf.execute()] == [1, 1]
    source["value"] = 3
    assert wf.execute() == 9
    assert calls == [1, 3]


def test_channel_values_and_explicit_arguments_are_part_of_the_key() -> None:
    calls: list[Any] = []

    def scaled(factor: int, base: int) -> int:
        calls.append((factor, base))
        return factor * base

    def run(factor: int, base: int) -> int:
        with workflow("channel") as wf:
            TaskWrapper("scaled", scaled, cache=True, kwargs={"base": base})
        ctx = wf.create_context()
        ctx.channel.set("factor", factor)
        return int(WorkflowEngine().execute(ctx))

    assert [run(2, 5), run(2, 5), run(3, 5), run(2, 6)] == [10, 10, 15, 12]
    assert calls == [(2, 5), (3, 5), (2, 6)]


def test_next_iteration_data_is_part_of_the_key() -> None:
    calls: list[Any] = []

    def step(n: int) -> int:
        calls.append(n)
        return n + 1

    def run(n: int) -> Any:
        with workflow("iter") as wf:
            TaskWrapper("step", step, cache=True, cache_store="memory")
        ctx = wf.create_context()
        ctx.queue.clear()
        from graflow.queue.base import TaskSpec

        ctx.queue.put(TaskSpec("step", n))
        return WorkflowEngine().execute(ctx)

    assert [run(1), run(1), run(2)] == [2, 2, 3]
    assert calls == [1, 2]


def test_the_injected_context_is_not_part_of_the_key() -> None:
    calls: list[Any] = []

    def with_context(ctx: Any, x: int) -> int:
        calls.append(ctx.session_id)
        return x

    with workflow("ctx") as wf:
        TaskWrapper("with_context", with_context, inject_context=True, cache=True, kwargs={"x": 1})
    wf.execute()
    wf.execute()  # another session id: still a hit
    assert len(calls) == 1


def test_cache_key_fn_replaces_the_arguments_part() -> None:
    calls: list[Any] = []
    seen: list[Mapping[str, Any]] = []

    def fetch(url: str, client: object) -> str:
        calls.append(url)
        return url.upper()

    def by_url(arguments: Mapping[str, Any]) -> str:
        seen.append(dict(arguments))
        return str(arguments["url"])

    def run(client: object) -> Any:
        with workflow("keyfn") as wf:
            TaskWrapper("fetch", fetch, cache_key=by_url, kwargs={"url": "u1", "client": client})
        return wf.execute()

    assert [run(object()), run(object())] == ["U1", "U1"]  # clients differ, and cannot be hashed anyway
    assert calls == ["u1"]
    assert set(seen[0]) == {"url", "client"}


def test_cache_key_fn_must_return_str_or_bytes() -> None:
    with workflow("badkey") as wf:
        TaskWrapper("t", lambda: 1, cache_key=lambda arguments: 42)
    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    assert "task 't': cache_key must return str or bytes, got int" in str(info.value.original)


def test_an_unpicklable_result_is_returned_uncached_with_a_warning() -> None:
    calls: list[Any] = []

    def make_lock() -> Any:
        calls.append(1)
        return threading.Lock()

    with workflow("unpicklable") as wf:
        TaskWrapper("make_lock", make_lock, cache=True)
    with capture_logs() as logs:
        wf.execute()
        wf.execute()
    assert len(calls) == 2
    warnings = [e for e in logs if e["event"] == "task_result_not_cached"]
    assert len(warnings) == 2 and warnings[0]["task_id"] == "make_lock"
    assert "cannot be pickled" in warnings[0]["reason"]


def test_a_cached_task_that_steers_the_workflow_is_refused() -> None:
    def looping(ctx: Any) -> int:
        ctx.next_iteration()
        return 1

    with workflow("steer") as wf:
        TaskWrapper("looping", looping, inject_context=True, cache=True)
    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    assert isinstance(info.value.original, CacheError)
    message = str(info.value.original)
    assert "'looping'" in message and "next_iteration()" in message and "not cached" in message


def test_channel_writes_of_a_cached_task_happen_only_on_a_miss() -> None:
    def writer(ctx: Any) -> int:
        ctx.get_channel().increment("runs")
        return 7

    def run() -> tuple[Any, Any]:
        with workflow("writes") as wf:
            TaskWrapper("writer", writer, inject_context=True, cache=True)
        result, ctx = wf.execute(ret_context=True)
        return result, ctx.channel.get("runs")

    assert run() == (7, 1)
    assert run() == (7, None)  # documented: only the return value is cached


# --- stores -----------------------------------------------------------------------------------------


class TestMemoryCacheStore(CacheStoreSuite):
    @pytest.fixture
    def clock(self) -> Clock:
        return Clock()

    @pytest.fixture
    def store(self, clock: Clock) -> MemoryCacheStore:
        return MemoryCacheStore(clock=clock)

    @pytest.fixture
    def advance(self, clock: Clock) -> Callable[[float], None]:
        def move(seconds: float) -> None:
            clock.now += seconds

        return move


class TestFileCacheStore(TestMemoryCacheStore):
    @pytest.fixture
    def store(self, clock: Clock, tmp_path: Path) -> FileCacheStore:
        return FileCacheStore(tmp_path / "store", clock=clock)

    @pytest.fixture
    def same_store(self, store: FileCacheStore) -> Callable[[], FileCacheStore]:
        return lambda: FileCacheStore(store.directory, clock=store.clock)  # as another process would


def test_memory_store_evicts_the_least_recently_used() -> None:
    s = MemoryCacheStore(max_entries=2)
    a, b, c = (CacheKey("t", d * 64) for d in "abc")
    s.set(a, b"a", None)
    s.set(b, b"b", None)
    assert s.get(a) == b"a"  # a is now the most recent
    s.set(c, b"c", None)
    assert (s.get(a), s.get(b), s.get(c)) == (b"a", None, b"c")


def test_a_corrupted_file_entry_is_a_miss_with_a_warning(tmp_path: Path) -> None:
    calls: list[Any] = []
    config = {"cache_dir": str(tmp_path / "c")}
    with workflow("corrupt") as wf:
        TaskWrapper("corrupt", counted(calls), cache=True, kwargs={"x": 2})
    wf.execute(config=config)
    (entry,) = (tmp_path / "c" / "corrupt").glob("*.entry")
    entry.write_bytes(entry.read_bytes()[:-3])  # truncated
    with capture_logs() as logs:
        assert wf.execute(config=config) == 20
    assert calls == [2, 2]
    (event,) = [e for e in logs if e["event"] == "cache_entry_corrupted"]
    assert event["task_id"] == "corrupt" and "truncated" in event["reason"]
    assert wf.execute(config=config) == 20 and calls == [2, 2]  # rewritten whole
    entry.write_bytes(b"garbage")
    with capture_logs() as logs:
        assert wf.execute(config=config) == 20
    assert any(e["event"] == "cache_entry_corrupted" and "magic" in e["reason"] for e in logs)


def test_the_default_store_is_a_file_store_under_the_project_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRAFLOW_CACHE_DIR")
    monkeypatch.chdir(tmp_path)
    with workflow("default") as wf:
        TaskWrapper("default_store", lambda: 5, cache=True)
    wf.execute()
    assert len(list((tmp_path / ".graflow" / "cache" / "default_store").glob("*.entry"))) == 1
    monkeypatch.setenv("GRAFLOW_CACHE_DIR", str(tmp_path / "env"))
    wf.execute()
    assert len(list((tmp_path / "env" / "default_store").glob("*.entry"))) == 1
    wf.execute(config={"cache_dir": str(tmp_path / "cfg")})  # config wins over the environment
    assert len(list((tmp_path / "cfg" / "default_store").glob("*.entry"))) == 1


def test_the_store_comes_from_the_task_then_the_context_then_the_engine(tmp_path: Path) -> None:
    with workflow("choice") as wf:
        TaskWrapper("chosen", lambda: 1, cache=True)
    wf.execute(engine=WorkflowEngine(config={"cache_store": "memory"}))
    assert len(memory_module.SHARED) == 1
    wf.execute(
        config={"cache_store": "file", "cache_dir": str(tmp_path / "f")},
        engine=WorkflowEngine(config={"cache_store": "memory"}),
    )
    assert len(list((tmp_path / "f" / "chosen").glob("*.entry"))) == 1


def test_an_unknown_store_name_lists_the_installed_ones() -> None:
    with workflow("unknown") as wf:
        TaskWrapper("t", lambda: 1, cache=True, cache_store="nope")
    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    error = info.value.original
    assert isinstance(error, UnknownNameError)
    assert "no cache store named 'nope'; installed: " in str(error) and "file, memory" in str(error)


def test_redis_store_without_graflow_redis_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")
    from graflow.plugins.manager import PluginHost

    with pytest.raises(UnknownNameError, match="provided by graflow-redis"):
        PluginHost().get("cache store", "redis")


def test_entries_are_signed_when_a_secret_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    with workflow("signed") as wf:
        TaskWrapper("signed", counted(calls), cache=True, kwargs={"x": 1})
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", "k1")
    wf.execute()
    wf.execute()
    assert calls == [1]
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", "k2")  # another key: the entry is refused, not loaded
    with capture_logs() as logs:
        wf.execute()
    assert calls == [1, 1]
    assert any(e["event"] == "cache_entry_unreadable" and "signature" in e["reason"] for e in logs)


# --- invalidation -----------------------------------------------------------------------------------


def test_invalidate_a_task_or_one_argument_set_and_clear_a_store(tmp_path: Path) -> None:
    calls: list[Any] = []
    fn = counted(calls)
    config = {"cache_dir": str(tmp_path / "inv")}

    def run(x: int, task_id: str = "inv") -> Any:
        with workflow("inv") as wf:
            TaskWrapper(task_id, fn, cache=True, kwargs={"x": x})
        return wf.execute(config=config)

    run(1)
    run(2)
    run(1, "other")
    assert len(calls) == 3
    probe = TaskWrapper("inv", fn, cache=True, register=False)
    assert graflow.cache.invalidate(probe, {"x": 1}, config=config) == 1
    run(1)
    run(2)
    assert calls == [1, 2, 1, 1]
    assert graflow.cache.invalidate("inv", config=config) == 2
    run(2)
    assert calls == [1, 2, 1, 1, 2]
    assert graflow.cache.clear(config=config) == 2  # "inv" with x=2, "other"
    run(1, "other")
    assert calls == [1, 2, 1, 1, 2, 1]


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"cache": True, "cache_ttl": 0}, ValueError, "task 'bad': cache_ttl must be a number of seconds > 0"),
        ({"cache": True, "cache_ttl": -5}, ValueError, "cache_ttl must be a number of seconds > 0"),
        ({"cache_key": "not callable"}, TypeError, "task 'bad': cache_key must be a callable"),
        ({"cache": False, "cache_key": lambda a: "k"}, ValueError, "task 'bad': cache=False together with cache_key"),
        ({"cache_ttl": 10}, ValueError, "task 'bad': cache_ttl given but caching is off"),
        ({"cache": True, "cache_store": ""}, TypeError, "task 'bad': cache_store must be a store name"),
        ({"cache": True, "kwargs": {"x": object()}}, CacheKeyError, "task 'bad' has caching on but its parameter 'x'"),
    ],
)
def test_bad_options_fail_when_the_task_is_built(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        TaskWrapper("bad", lambda x=0: x, register=False, **options)


def test_the_decorator_checks_the_same_options() -> None:
    with pytest.raises(ValueError, match="task 'decorated': cache_ttl must be"):

        @task(cache=True, cache_ttl=0)
        def decorated() -> None: ...

    with pytest.raises(CacheKeyError, match="parameter 'lock'"):

        @task(cache=True)
        def with_default(lock: Any = threading.Lock()) -> None: ...  # noqa: B008 - the point of the test


def test_an_argument_that_cannot_be_hashed_names_the_task_and_parameter() -> None:
    with workflow("unhashable") as wf:
        TaskWrapper("make", lambda: {"ok": [1, threading.Lock()]}) >> TaskWrapper("use", lambda make: 1, cache=True)
    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    error = info.value.original
    assert isinstance(error, CacheKeyError)
    assert (error.task_id, error.parameter) == ("use", "make")
    message = str(error)
    assert "parameter 'make' at ['ok'][1]" in message and "_thread.lock" in message and "cache_key=fn" in message


# --- hooks --------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()

    @hookimpl
    def graflow_task_started(self, task_id: str, cycle: int) -> None:
        with self.lock:
            self.calls.append(("started", task_id, cycle))

    @hookimpl
    def graflow_task_cache_hit(self, run_id: str, session_id: str, task_id: str, cycle: int, key: str) -> None:
        with self.lock:
            self.calls.append(("cache_hit", task_id, key))

    @hookimpl
    def graflow_task_succeeded(self, task_id: str, result: Any) -> None:
        with self.lock:
            self.calls.append(("succeeded", task_id, result))


def test_hook_graflow_task_cache_hit() -> None:
    recorder = Recorder()
    engine = WorkflowEngine(plugins=[recorder])
    fn = counted([])
    with workflow("hooks") as wf:
        TaskWrapper("hooked", fn, cache=True, kwargs={"x": 3})
    wf.execute(engine=engine)
    assert [c[0] for c in recorder.calls] == ["started", "succeeded"]  # a miss: no hit reported
    recorder.calls.clear()
    wf.execute(engine=engine)
    key = str(key_of(TaskWrapper("hooked", fn, cache=True, register=False), {"x": 3}))
    assert recorder.calls == [("started", "hooked", 1), ("cache_hit", "hooked", key), ("succeeded", "hooked", 30)]


def test_hook_graflow_register_cache_stores() -> None:
    clock = Clock()
    clocked = MemoryCacheStore(clock=clock)
    configs: list[dict[str, Any]] = []

    class Plugin:
        @staticmethod
        @hookimpl
        def graflow_register_cache_stores(register: Any) -> None:
            def factory(config: Mapping[str, Any]) -> MemoryCacheStore:
                configs.append(dict(config))
                return clocked

            register("clocked", factory)

    calls: list[Any] = []
    engine = WorkflowEngine(plugins=[Plugin], config={"setting": "x"})
    with workflow("plugin-store") as wf:
        TaskWrapper("ttl", counted(calls), cache=True, cache_store="clocked", cache_ttl=60, kwargs={"x": 1})
    wf.execute(engine=engine)
    wf.execute(engine=engine)
    clock.now += 61
    wf.execute(engine=engine)
    assert calls == [1, 1]
    assert configs[0]["setting"] == "x"
    assert "clocked" in engine.host.names("cache store")


def test_a_store_factory_must_return_a_cache_store() -> None:
    class Plugin:
        @staticmethod
        @hookimpl
        def graflow_register_cache_stores(register: Any) -> None:
            register("broken", lambda config: object())

    with workflow("broken") as wf:
        TaskWrapper("t", lambda: 1, cache=True, cache_store="broken")
    with pytest.raises(TaskExecutionError, match="cache store 'broken' factory returned"):
        wf.execute(engine=WorkflowEngine(plugins=[Plugin]))


# --- parallel groups ----------------------------------------------------------------------------------


def test_cached_members_of_a_threaded_group_hit_on_the_second_run() -> None:
    calls: list[Any] = []
    lock = threading.Lock()

    def member(x: int) -> int:
        with lock:
            calls.append(x)
        return x * 2

    def run() -> Any:
        with workflow("threads") as wf:
            members = [TaskWrapper(f"m{i}", member, cache=True, kwargs={"x": i}) for i in range(6)]
            group = members[0]
            for m in members[1:]:
                group = group | m
            assert not isinstance(group, TaskWrapper)
            group.with_execution(backend=CoordinationBackend.THREADING, max_workers=3)
        return wf.execute()

    assert run() == {f"m{i}": i * 2 for i in range(6)}
    assert run() == {f"m{i}": i * 2 for i in range(6)}
    assert sorted(calls) == list(range(6))


@pytest.mark.slow
def test_cached_members_in_a_process_pool_share_the_file_store(tmp_path: Path) -> None:
    def member(ctx: Any, x: int) -> int:  # defined here: a spawned process gets it by value
        ctx.get_channel().increment("executions")
        return x + 100

    recorder = Recorder()
    config = {"cache_dir": str(tmp_path / "mp")}

    def run() -> tuple[Any, Any]:
        with workflow("processes") as wf:
            (
                TaskWrapper("p1", member, inject_context=True, cache=True, kwargs={"x": 1})
                | TaskWrapper("p2", member, inject_context=True, cache=True, kwargs={"x": 2})
            ).with_execution(backend=CoordinationBackend.MULTIPROCESSING, max_workers=2)
        result, ctx = wf.execute(ret_context=True, config=config, engine=WorkflowEngine(plugins=[recorder]))
        return result, ctx.channel.get("executions")

    assert run() == ({"p1": 101, "p2": 102}, 2)
    assert run() == ({"p1": 101, "p2": 102}, None)  # no member executed: both came from the cache
    hits = sorted(task_id for kind, task_id, _ in recorder.calls if kind == "cache_hit")
    assert hits == ["p1", "p2"]
    assert len(list((tmp_path / "mp").glob("p*/*.entry"))) == 2


# --- the contract with what executes the task -----------------------------------------------------------


def test_run_cached_calls_run_only_on_a_miss_and_stores_its_final_result() -> None:
    """What wraps the execution (retries, timeouts) is ``run``: a hit makes no attempt at all."""
    from graflow.cache.runtime import run_cached
    from graflow.core.context import TaskExecutionContext
    from graflow.core.handler import DirectTaskHandler

    attempts: list[int] = []

    def run_with_retries(handler: Any, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
        attempts.append(1)  # a retrying runner would call the handler several times here
        return task.invoke(tctx)

    with workflow("contract") as wf:
        cached = TaskWrapper("contract", lambda x: x + 1, cache=True, cache_store="memory", kwargs={"x": 1})
    results = []
    for _ in range(3):
        ctx = wf.create_context()
        results.append(
            run_cached(DirectTaskHandler(), cached, TaskExecutionContext(ctx, "contract", 1), run_with_retries)
        )
    assert results == [2, 2, 2] and attempts == [1]


def test_a_hit_does_not_call_the_tasks_handler() -> None:
    from graflow import TaskHandler

    class Counting(TaskHandler):
        def __init__(self) -> None:
            self.calls = 0

        def execute_task(self, task: TaskWrapper, context: Any) -> Any:
            self.calls += 1
            return task.run()

    handler = Counting()
    engine = WorkflowEngine()
    engine.register_handler("counting", handler)
    with workflow("handler") as wf:
        TaskWrapper("handled", lambda: "done", handler="counting", cache=True)
    assert [wf.execute(engine=engine), wf.execute(engine=engine)] == ["done", "done"]
    assert handler.calls == 1


# --- defaults, decorators, colliding values, bad settings -----------------------------------------------


def test_a_changed_default_value_gives_another_key() -> None:
    calls: list[Any] = []

    def v1(x: int = 1, scale: int = 10) -> int:
        calls.append(scale)
        return x * scale

    def v2(x: int = 1, scale: int = 1000) -> int:  # the same code: only the default changed
        calls.append(scale)
        return x * scale

    results = []
    for fn in (v1, v2, v1):
        with workflow("defaults") as wf:
            TaskWrapper("scaled", fn, cache=True, cache_store="memory")
        results.append(wf.execute())
    assert results == [10, 1000, 10]
    assert calls == [10, 1000]  # the third run is a hit of the first


def test_key_of_and_invalidate_find_the_entry_a_run_wrote_with_defaults() -> None:
    calls: list[int] = []

    def add(x: int, y: int = 2) -> int:
        calls.append(x)
        return x + y

    with workflow("defaults") as wf:
        t = TaskWrapper("add", add, cache=True, cache_store="memory", kwargs={"x": 1})
    assert wf.execute() == 3
    assert key_of(t, {"x": 1}) == key_of(t, {"x": 1, "y": 2})
    assert graflow.cache.invalidate(t, {"x": 1}, store="memory") == 1  # the key the run used
    assert wf.execute() == 3 and calls == [1, 1]


def test_cache_key_fn_receives_the_defaults_too() -> None:
    seen: list[dict[str, Any]] = []

    def key(args: Mapping[str, Any]) -> str:
        seen.append(dict(args))
        return f"{args['url']}@{args['version']}"

    def fetch(url: str, version: str = "v1") -> str:
        return f"{url}:{version}"

    with workflow("keyfn") as wf:
        t = TaskWrapper("fetch", fetch, cache_key=key, cache_store="memory", kwargs={"url": "u"})
    assert wf.execute() == "u:v1"
    assert seen == [{"url": "u", "version": "v1"}]
    assert key_of(t, {"url": "u"}) == key_of(t, {"url": "u", "version": "v1"})


def _wraps(fn: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def _no_wraps(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:  # keeps fn only in its closure
        return fn(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("decorate", [_wraps, _no_wraps, lambda f: _wraps(_wraps(f))])
def test_editing_the_body_under_a_decorator_invalidates(decorate: Callable[..., Any]) -> None:
    from graflow.cache.keys import code_digest

    def v1(x: int) -> int:
        return x + 1

    def v1_again(x: int) -> int:
        return x + 1

    def v2(x: int) -> int:
        return x * 1000

    assert code_digest(decorate(v1)) == code_digest(decorate(v1_again))
    assert code_digest(decorate(v1)) != code_digest(decorate(v2))
    assert code_digest(decorate(v1)) != code_digest(v1)  # the decorator's own code counts too

    calls: list[str] = []

    def run(fn: Callable[..., Any]) -> Any:
        def recorded(x: int) -> int:
            calls.append(fn.__name__)
            return int(fn(x))

        with workflow("decorated") as wf:
            TaskWrapper("decorated", decorate(recorded), cache=True, cache_store="memory", kwargs={"x": 2})
        return wf.execute()

    assert [run(v1), run(v2)] == [3, 2000]
    assert calls == ["v1", "v2"]  # a closure cell of the task's function holds v1/v2: digested with it


def test_a_self_referencing_closure_is_digested_without_looping() -> None:
    from graflow.cache.keys import code_digest

    def outer() -> Callable[[int], int]:
        def countdown(n: int) -> int:
            return 0 if n <= 0 else countdown(n - 1)

        return countdown

    assert code_digest(outer()) == code_digest(outer())


def test_classes_as_arguments_are_refused_not_confused() -> None:
    @dataclasses.dataclass
    class A:
        x: int = 1

    @dataclasses.dataclass
    class B:
        x: int = 1

    for cls in (A, B):
        with pytest.raises(CacheKeyError, match="'kind'"):
            encode_arguments("t", {"kind": cls})
    assert encode_arguments("t", {"kind": A()}) != encode_arguments("t", {"kind": B()})  # instances still work


def test_structured_and_masked_numpy_arrays_are_told_apart() -> None:
    np = pytest.importorskip("numpy")
    two_fields = np.zeros(2, dtype=[("a", "<i4"), ("b", "<i4")])
    one_field = np.zeros(2, dtype=[("x", "<i8")])
    renamed = np.zeros(2, dtype=[("a", "<i4"), ("c", "<i4")])
    assert two_fields.tobytes() == one_field.tobytes() == renamed.tobytes()
    keys = {encode_arguments("t", {"v": v}) for v in (two_fields, one_field, renamed)}
    assert len(keys) == 3
    unmasked = np.ma.masked_array([1, 2, 3], mask=[0, 0, 0])
    masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    plain = np.array([1, 2, 3])
    assert len({encode_arguments("t", {"v": v}) for v in (unmasked, masked, plain)}) == 3
    assert encode_arguments("t", {"v": masked}) == encode_arguments("t", {"v": masked.copy()})


@pytest.mark.parametrize("ttl", [float("inf"), float("nan"), -1, 0])
def test_a_ttl_that_is_not_a_finite_positive_number_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="task 'bad': cache_ttl must be a number of seconds > 0, finite"):
        TaskWrapper("bad", lambda: 1, cache=True, cache_ttl=ttl, register=False)


@pytest.mark.parametrize("ttl", [-5, 0, float("inf"), "soon", True])
def test_config_cache_ttl_is_checked_with_a_message_naming_it(ttl: Any) -> None:
    calls: list[Any] = []
    with workflow("ttl") as wf:
        TaskWrapper("ttl", counted(calls), cache=True, cache_store="memory")
    with pytest.raises(TaskExecutionError) as raised:
        wf.execute(engine=WorkflowEngine(config={"cache_ttl": ttl}))
    assert "config cache_ttl must be a number of seconds > 0" in str(raised.value.__cause__)
    assert calls == []


def test_config_cache_ttl_from_text_is_a_number_of_seconds() -> None:
    from graflow.cache.options import config_ttl

    assert config_ttl({"cache_ttl": "3600"}) == 3600.0
    assert config_ttl({}) is None


# --- the run a context belongs to -----------------------------------------------------------------------


def test_a_finished_run_does_not_stay_the_contexts_run() -> None:
    """A hit in an execution after the run (the same context) is not reported as that run's."""
    from graflow.core.context import TaskExecutionContext
    from graflow.core.execution import execute
    from graflow.core.handler import DirectTaskHandler

    recorder = Recorder()
    calls: list[Any] = []
    with workflow("after") as wf:
        t = TaskWrapper("after", counted(calls), cache=True, cache_store="memory", kwargs={"x": 1})
    ctx = wf.create_context()
    WorkflowEngine(plugins=[recorder]).execute(ctx)
    assert ctx.active_run is None
    recorder.calls.clear()
    assert execute(DirectTaskHandler(), t, TaskExecutionContext(ctx, "after", 2)) == 10  # a hit
    assert calls == [1]
    assert recorder.calls == []  # the finished run's plugins are not told about it


# --- the signing key on the far side ---------------------------------------------------------------------


class Planted:
    def __reduce__(self) -> Any:
        return (str, ("planted by whoever can write the cache",))


def test_a_keyed_worker_signs_and_checks_its_cache_entries_with_its_key(tmp_path: Path) -> None:
    """The key a worker verifies payloads with (not only GRAFLOW_SECRET_KEY) protects its cache."""
    import pickle

    import structlog

    from graflow.cache.keys import cache_key
    from graflow.cache.runtime import ENTRY_MAGIC, decode_entry
    from graflow.core import remote
    from graflow.worker.execution import execute_item
    from graflow.worker.protocol import WorkItem

    key = b"worker-and-submitter-key"

    def compute(x: int) -> str:
        return f"computed {x}"

    member = TaskWrapper("compute", compute, cache=True, register=False)
    assert member._cache is not None
    store = FileCacheStore(tmp_path / "cache")
    entry_key = cache_key("compute", member._cache.code, encode_arguments("compute", {"x": 1}), custom=False)
    store.set(entry_key, ENTRY_MAGIC + b"U" + pickle.dumps(Planted()), None)
    request = remote.RemoteRequest(
        session_id="s",
        task=member,
        cycle=1,
        kwargs={"x": 1},
        channel_data={},
        cache_config={"cache_store": "file", "cache_dir": str(store.directory)},
    )

    def deliver() -> Any:
        payload = remote.dumps_request(request, key)
        outcome, _, _ = execute_item(WorkItem("1", "compute", 1, payload), key, "w1", structlog.get_logger())
        return outcome

    first = deliver()
    assert first.error is None and first.result == "computed 1" and first.cache_hit is None  # not the planted one
    data = store.get(entry_key)
    assert data is not None and decode_entry(data, key) == "computed 1"  # rewritten, signed with the key
    second = deliver()
    assert second.result == "computed 1" and second.cache_hit == str(entry_key)


@pytest.mark.slow
def test_a_process_pool_signs_entries_with_the_runs_configured_key(tmp_path: Path) -> None:
    """config secret_key reaches the pool's processes: their entries hit in the run's own process."""
    from graflow.cache.runtime import decode_entry

    def member(ctx: Any, x: int) -> int:  # defined here: a spawned process gets it by value
        ctx.get_channel().increment("executions")
        return x + 100

    config = {"cache_dir": str(tmp_path / "mp"), "secret_key": "run-key"}
    with workflow("keyed-pool") as wf:
        (
            TaskWrapper("k1", member, inject_context=True, cache=True, kwargs={"x": 1})
            | TaskWrapper("k2", member, inject_context=True, cache=True, kwargs={"x": 2})
        ).with_execution(backend=CoordinationBackend.MULTIPROCESSING, max_workers=2)
    result, ctx = wf.execute(ret_context=True, config=config)
    assert (result, ctx.channel.get("executions")) == ({"k1": 101, "k2": 102}, 2)
    entries = sorted((tmp_path / "mp").glob("k*/*.entry"))
    assert len(entries) == 2
    store = FileCacheStore(tmp_path / "mp")
    for path in entries:
        body = store._parse(path.read_bytes())[1]
        assert decode_entry(body, b"run-key") in (101, 102)  # signed with the run's key, not unsigned
    # The run's own process (same key) hits the entries the pool wrote.
    with workflow("here") as here:
        TaskWrapper("k1", member, inject_context=True, cache=True, kwargs={"x": 1})
    result, ctx = here.execute(ret_context=True, config=config)
    assert (result, ctx.channel.get("executions")) == (101, None)


def test_settings_named_as_secrets_are_not_shipped_with_a_request() -> None:
    from graflow.cache.options import CacheSpec
    from graflow.cache.runtime import CacheRuntime
    from graflow.plugins.manager import default_host

    class Bucket(MemoryCacheStore):
        def shipping_config(self) -> dict[str, Any]:
            return {"bucket": "b", "s3_secret_access_key": "s", "api_token": "t"}

    runtime = CacheRuntime(default_host(), {"cache_store": "bucket"})
    runtime._stores["bucket"] = Bucket()
    assert runtime.shipping_config(CacheSpec(b"code")) == {"bucket": "b", "cache_store": "bucket"}


def test_a_closure_holding_a_partial_of_itself_is_digested_without_looping() -> None:
    import functools

    from graflow.cache.keys import code_digest

    def make() -> Callable[[int], int]:
        def step(n: int, by: int) -> int:
            return 0 if n <= 0 else again(n - by)

        again = functools.partial(step, by=1)
        return again

    assert code_digest(make()) == code_digest(make())
