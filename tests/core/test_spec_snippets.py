"""The code snippets of the features document (sections 2, 3, 4, 5, 6, 8), run as written.

Helpers the snippets leave undefined (``check_quality``, ``train_model``, ``establish_connection``, ...)
are stubs defined around them; each test asserts what its snippet promises. Fragments that are
pseudo-code (section 2's ``while accuracy < target: context.next_iteration(...)`` never changes
``accuracy``) are run in the smallest complete form that keeps their calls.
"""

from __future__ import annotations

import logging
import threading
import types
from enum import Enum
from typing import Any

import pytest

from graflow import (
    ErrorHandlingPolicy,
    ExecutionContext,
    ParallelGroupError,
    TaskExecutionContext,
    TaskHandler,
    TaskWrapper,
    WorkflowEngine,
    task,
    workflow,
)
from graflow.exceptions import MaxStepsExceededError, TaskExecutionError

logger = logging.getLogger("spec-snippets")


# === Section 2: runtime dynamic task generation ====================================================


@pytest.mark.parametrize(("quality", "expected"), [(0.3, "cleanup"), (0.95, "enhance"), (0.7, "process")])
def test_section2_next_task_adaptive_processor(quality: float, expected: str) -> None:
    ran: list[str] = []

    def check_quality() -> float:
        return quality

    def cleanup_low_quality_data() -> None:
        ran.append("cleanup")

    def enhance_high_quality_data() -> None:
        ran.append("enhance")

    def standard_processing() -> None:
        ran.append("process")

    with workflow("adaptive") as wf:

        @task(inject_context=True)
        def adaptive_processor(context: TaskExecutionContext):  # type: ignore[no-untyped-def]
            data_quality = check_quality()

            if data_quality < 0.5:
                # Create cleanup task on-the-fly
                cleanup_task = TaskWrapper("cleanup", cleanup_low_quality_data)
                context.next_task(cleanup_task)
            elif data_quality > 0.9:
                # Create enhancement task
                enhance_task = TaskWrapper("enhance", enhance_high_quality_data)
                context.next_task(enhance_task)
            else:
                # Standard processing
                process_task = TaskWrapper("process", standard_processing)
                context.next_task(process_task)

    _, ctx = wf.execute(ret_context=True)
    assert ran == [expected]
    assert expected in ctx.graph and expected not in wf.graph


def test_section2_next_iteration_optimize_hyperparameters() -> None:
    trained: list[dict[str, float]] = []
    saved: list[dict[str, float]] = []

    def train_model(params: dict[str, float]) -> float:
        trained.append(dict(params))
        return round(params["accuracy"] + 0.1, 2)

    def save_model(params: dict[str, float]) -> str:
        saved.append(dict(params))
        return "saved"

    with workflow("tuning") as wf:

        @task(inject_context=True)
        def optimize_hyperparameters(context: TaskExecutionContext, params=None):  # type: ignore[no-untyped-def]
            if params is None:
                params = {"learning_rate": 0.1, "accuracy": 0.5}

            # Training step
            new_accuracy = train_model(params)

            if new_accuracy >= 0.95:
                # Converged - finalize
                save_task = TaskWrapper("save_model", lambda: save_model(params))
                context.next_task(save_task)
            else:
                # Continue optimization
                params["accuracy"] = new_accuracy
                params["learning_rate"] *= 0.95
                context.next_iteration(params)

    result, ctx = wf.execute(ret_context=True)
    assert result == "saved"
    assert [p["accuracy"] for p in trained] == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert saved == [trained[-1]]
    assert saved[0]["learning_rate"] == pytest.approx(0.1 * 0.95**4)
    assert ctx.cycle_counts["optimize_hyperparameters"] == 5


def test_section2_use_case_ml_tuning_fragment() -> None:
    """``while accuracy < target: context.next_iteration(optimize_step())``: the loop is the run's."""
    target = 0.9
    steps: list[float] = []

    def optimize_step() -> float:
        steps.append(0.5 * (len(steps) + 1))
        return steps[-1]

    with workflow("tune") as wf:

        @task(inject_context=True)
        def tune(context: TaskExecutionContext, accuracy: float = 0.0) -> float:
            if accuracy < target:
                context.next_iteration(optimize_step())
            return accuracy

    assert wf.execute() == 1.0
    assert len(steps) == 2


@pytest.mark.parametrize("data_type", ["image", "text"])
def test_section2_use_case_data_classification(data_type: str) -> None:
    ran: list[str] = []

    def process_image() -> None:
        ran.append("image")

    def process_text() -> None:
        ran.append("text")

    with workflow("classify") as wf:

        @task(inject_context=True)
        def classify(context: TaskExecutionContext) -> None:
            if data_type == "image":
                context.next_task(TaskWrapper("image_proc", process_image))
            elif data_type == "text":
                context.next_task(TaskWrapper("text_proc", process_text))

    wf.execute()
    assert ran == [data_type]


@pytest.mark.parametrize(("failures", "outcome"), [(2, "ok"), (5, "logged")])
def test_section2_use_case_resilient_api_calls(failures: int, outcome: str) -> None:
    max_retries = 3
    calls: list[int] = []
    handled: list[str] = []

    def api_call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionError("api down")
        return "ok"

    def handle_error() -> str:
        handled.append("logged")
        return "logged"

    with workflow("resilient") as wf:

        @task(inject_context=True)
        def call_api(context: TaskExecutionContext, state: dict[str, int] | None = None) -> Any:
            attempts = (state or {"attempts": 0})["attempts"]
            result = None
            try:
                result = api_call()
            except Exception:
                if attempts < max_retries:
                    context.next_iteration({"attempts": attempts + 1})
                else:
                    context.next_task(TaskWrapper("log_error", handle_error))
            return result

    assert wf.execute() == outcome
    assert len(calls) == min(failures + 1, max_retries + 1)


def test_section2_use_case_progressive_enhancement() -> None:
    target_quality = 3
    saved: list[int] = []

    def apply_enhancement(current_quality: int) -> int:
        return current_quality + 1

    def save_result() -> None:
        saved.append(1)

    with workflow("enhance") as wf:

        @task(inject_context=True)
        def enhance(context: TaskExecutionContext, current_quality: int = 0) -> int:
            if current_quality < target_quality:
                context.next_iteration(apply_enhancement(current_quality))
            else:
                context.next_task(TaskWrapper("finalize", save_result))
            return current_quality

    _, ctx = wf.execute(ret_context=True)
    assert ctx.get_result("enhance") == 3 and saved == [1]


# === Section 3: state machines =====================================================================


def test_section3_state_controller() -> None:
    threshold = 4
    finalized: list[str] = []

    def finalize_handler() -> str:
        finalized.append("END")
        return "finalized"

    with workflow("fsm") as wf:

        @task(inject_context=True)
        def state_controller(context: TaskExecutionContext):  # type: ignore[no-untyped-def]
            """Control state transitions based on current state."""
            channel = context.get_channel()
            current_state = channel.get("state", default="START")
            data = channel.get("data", default=0)

            # State transition logic
            if current_state == "START":
                channel.set("state", "PROCESSING")
                channel.set("data", data + 1)
                context.next_iteration()  # Loop back to state_controller

            elif current_state == "PROCESSING":
                if data < threshold:
                    # Stay in current state
                    channel.set("data", data + 1)
                    context.next_iteration()
                else:
                    # Transition to next state
                    channel.set("state", "FINALIZING")
                    context.next_iteration()

            elif current_state == "FINALIZING":
                # Transition to END and create final task
                channel.set("state", "END")
                final_task = TaskWrapper("end_state", finalize_handler)
                context.next_task(final_task)

            return {"state": current_state, "data": data}

    result, ctx = wf.execute(ret_context=True)
    channel = ctx.get_channel()
    assert channel.get("state") == "END" and channel.get("data") == threshold
    assert finalized == ["END"] and result == "finalized"
    assert ctx.get_result("state_controller") == {"state": "FINALIZING", "data": threshold}
    # START, PROCESSING x threshold, FINALIZING: each transition one iteration
    assert ctx.cycle_counts["state_controller"] == threshold + 2


def test_section3_best_practice_max_steps_on_the_context() -> None:
    with workflow("bounded") as wf:

        @task(inject_context=True)
        def state_controller(context: TaskExecutionContext) -> None:
            channel = context.get_channel()
            channel.set("state", "WAITING_FOR_PAYMENT")  # never leaves this state
            context.next_iteration()

    ctx = ExecutionContext.create(wf.graph)
    with pytest.raises(MaxStepsExceededError, match="max_steps=100"):
        ctx.execute("state_controller", max_steps=100)
    assert ctx.steps == 100


def test_section3_best_practice_enum_states_and_unexpected_state() -> None:
    class OrderState(Enum):
        NEW = "NEW"
        VALIDATED = "VALIDATED"
        PAID = "PAID"

    with workflow("enum") as wf:

        @task(inject_context=True)
        def machine(context: TaskExecutionContext) -> None:
            channel = context.get_channel()
            current_state = channel.get("state", OrderState.NEW.value)
            if current_state == OrderState.NEW.value:
                channel.set("state", "S3")
                context.next_iteration()
            else:
                raise ValueError(f"Unknown state: {current_state}")

    with pytest.raises(TaskExecutionError, match="Unknown state: S3"):
        wf.execute()


def test_section3_protocol_state_machine() -> None:
    events: list[str] = []
    sleeps: list[float] = []
    time = types.SimpleNamespace(sleep=sleeps.append)  # the snippet sleeps; this clock does not
    readiness = iter([False, True])

    def establish_connection() -> None:
        events.append("establish")

    def connection_ready() -> bool:
        return next(readiness)

    def should_disconnect() -> bool:
        return events.count("message") >= 2

    def handle_messages() -> None:
        events.append("message")

    def close_connection() -> None:
        events.append("close")

    with workflow("protocol") as wf:

        @task(inject_context=True)
        def connection_fsm(context):  # type: ignore[no-untyped-def]
            channel = context.get_channel()
            state = channel.get("state", "DISCONNECTED")

            if state == "DISCONNECTED":
                establish_connection()
                channel.set("state", "CONNECTING")
                context.next_iteration()

            elif state == "CONNECTING":
                if connection_ready():
                    channel.set("state", "CONNECTED")
                    context.next_iteration()
                else:
                    time.sleep(1)
                    context.next_iteration()

            elif state == "CONNECTED":
                if should_disconnect():
                    channel.set("state", "DISCONNECTING")
                    context.next_iteration()
                else:
                    handle_messages()
                    context.next_iteration()

            elif state == "DISCONNECTING":
                close_connection()
                return "DONE"

    result, ctx = wf.execute(ret_context=True)
    assert result == "DONE"
    assert events == ["establish", "message", "message", "close"]
    assert sleeps == [1]
    assert ctx.get_channel().get("state") == "DISCONNECTING"
    # DISCONNECTED, CONNECTING (not ready), CONNECTING, CONNECTED x3, DISCONNECTING
    assert ctx.cycle_counts["connection_fsm"] == 7


def test_section3_order_state_machine() -> None:
    calls: list[tuple[str, Any]] = []

    def validate_order(order: Any) -> None:
        calls.append(("validate", order["id"]))

    def reserve_inventory(order: Any) -> None:
        calls.append(("reserve", order["id"]))

    def process_payment(order: Any) -> None:
        calls.append(("pay", order["id"]))

    def ship_order(order: Any) -> None:
        calls.append(("ship", order["id"]))

    def send_notification() -> str:
        calls.append(("notify", None))
        return "notified"

    with workflow("orders") as wf:

        @task(inject_context=True)
        def receive(context: TaskExecutionContext) -> None:
            context.get_channel().set("order_data", {"id": 42, "items": ["book"]})

        @task(inject_context=True)
        def order_processor(context):  # type: ignore[no-untyped-def]
            channel = context.get_channel()
            order_state = channel.get("order_state", "NEW")
            order_data = channel.get("order_data")

            if order_state == "NEW":
                validate_order(order_data)
                channel.set("order_state", "VALIDATED")
                context.next_iteration()

            elif order_state == "VALIDATED":
                reserve_inventory(order_data)
                channel.set("order_state", "RESERVED")
                context.next_iteration()

            elif order_state == "RESERVED":
                process_payment(order_data)
                channel.set("order_state", "PAID")
                context.next_iteration()

            elif order_state == "PAID":
                ship_order(order_data)
                channel.set("order_state", "SHIPPED")
                # Create notification task
                context.next_task(TaskWrapper("notify", send_notification))

        receive >> order_processor
    result, ctx = wf.execute(ret_context=True)
    assert result == "notified"
    assert calls == [("validate", 42), ("reserve", 42), ("pay", 42), ("ship", 42), ("notify", None)]
    assert ctx.get_channel().get("order_state") == "SHIPPED"
    assert ctx.cycle_counts["order_processor"] == 4


def test_section3_training_state_machine() -> None:
    target = 90  # percent: integer arithmetic keeps the epochs exact
    log: list[str] = []
    validation_scores = iter([85, 95])

    def initialize_model() -> dict[str, float]:
        log.append("init")
        return {"accuracy": 60}

    def train_epoch(model: dict[str, float]) -> dict[str, float]:
        model["accuracy"] += 10
        log.append("epoch")
        return {"accuracy": model["accuracy"]}

    def validate(model: dict[str, float]) -> dict[str, float]:
        log.append("validate")
        return {"accuracy": next(validation_scores)}

    def save_model(model: dict[str, float]) -> None:
        log.append("save")

    with workflow("training") as wf:

        @task(inject_context=True)
        def training_fsm(context):  # type: ignore[no-untyped-def]
            channel = context.get_channel()
            phase = channel.get("phase", "INIT")
            model = channel.get("model")

            if phase == "INIT":
                model = initialize_model()
                channel.set("model", model)
                channel.set("phase", "TRAINING")
                context.next_iteration()

            elif phase == "TRAINING":
                metrics = train_epoch(model)
                if metrics["accuracy"] >= target:
                    channel.set("phase", "VALIDATING")
                context.next_iteration()

            elif phase == "VALIDATING":
                val_metrics = validate(model)
                if val_metrics["accuracy"] >= target:
                    channel.set("phase", "SAVING")
                else:
                    channel.set("phase", "TRAINING")  # Back to training
                context.next_iteration()

            elif phase == "SAVING":
                save_model(model)
                return "COMPLETE"

    result, ctx = wf.execute(ret_context=True)
    assert result == "COMPLETE"
    assert log == ["init", "epoch", "epoch", "epoch", "validate", "epoch", "validate", "save"]
    assert ctx.get_channel().get("phase") == "SAVING"


def test_section3_game_state_machine() -> None:
    choices = iter(["start", "quit"])
    turns = iter(["continue", "won"])
    shown: list[str] = []

    def show_menu() -> str:
        return next(choices)

    def get_player_action() -> str:
        return "move"

    def process_turn(action: str) -> str:
        return next(turns)

    def show_result(state: str) -> None:
        shown.append(state)

    with workflow("game") as wf:

        @task(inject_context=True)
        def game_loop(context):  # type: ignore[no-untyped-def]
            channel = context.get_channel()
            game_state = channel.get("game_state", "MENU")

            if game_state == "MENU":
                choice = show_menu()
                channel.set("game_state", "PLAYING" if choice == "start" else "QUIT")
                context.next_iteration()

            elif game_state == "PLAYING":
                player_action = get_player_action()
                game_result = process_turn(player_action)

                if game_result == "won":
                    channel.set("game_state", "WIN")
                elif game_result == "lost":
                    channel.set("game_state", "LOSE")
                context.next_iteration()

            elif game_state in ["WIN", "LOSE"]:
                show_result(game_state)
                channel.set("game_state", "MENU")
                context.next_iteration()

            elif game_state == "QUIT":
                return "GAME_OVER"

    assert wf.execute() == "GAME_OVER"
    assert shown == ["WIN"]


# === Section 4: task handlers ======================================================================


def test_section4_custom_gpu_handler_registration_and_usage() -> None:
    gpu_lock = threading.Lock()
    locked: list[bool] = []

    class GPUHandler(TaskHandler):
        def execute_task(self, task, context):  # type: ignore[no-untyped-def]
            with gpu_lock:
                locked.append(gpu_lock.locked())
                result = task.run()  # Execute on GPU
            context.set_result(task.task_id, result)
            return result

    # Registration
    engine = WorkflowEngine()
    engine.register_handler("gpu", GPUHandler())

    # Usage
    with workflow("gpu") as wf:

        @task(handler="gpu")
        def train_model():  # type: ignore[no-untyped-def]
            return "trained"

    assert wf.execute(engine=engine) == "trained"
    assert locked == [True]


def test_section4_retry_handler() -> None:
    class RetryHandler(TaskHandler):
        def __init__(self, max_retries=3):  # type: ignore[no-untyped-def]
            self.max_retries = max_retries

        def execute_task(self, task, context):  # type: ignore[no-untyped-def]
            for attempt in range(self.max_retries):
                try:
                    result = task.run()
                    context.set_result(task.task_id, result)
                    return result
                except Exception as e:  # noqa: F841 - as written in the spec
                    if attempt == self.max_retries - 1:
                        raise
                    logger.warning(f"Retry {attempt + 1}/{self.max_retries}")

    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise TimeoutError("transient")
        return "finally"

    engine = WorkflowEngine()
    engine.register_handler("retry", RetryHandler())
    with workflow("retry") as wf:
        TaskWrapper("flaky", flaky, handler="retry")
    assert wf.execute(engine=engine) == "finally"
    assert len(attempts) == 3

    def hopeless() -> None:
        attempts.append(1)
        raise TimeoutError("permanent")

    attempts.clear()
    with workflow("retry_fail") as wf2:
        TaskWrapper("hopeless", hopeless, handler="retry")
    with pytest.raises(TaskExecutionError) as info:
        wf2.execute(engine=engine)
    assert isinstance(info.value.original, TimeoutError) and len(attempts) == 3


def test_section4_caching_handler() -> None:
    class CachingHandler(TaskHandler):
        def __init__(self):  # type: ignore[no-untyped-def]
            self.cache = {}

        def execute_task(self, task, context):  # type: ignore[no-untyped-def]
            if task.task_id in self.cache:
                context.set_result(task.task_id, self.cache[task.task_id])
                return

            result = task.run()
            self.cache[task.task_id] = result
            context.set_result(task.task_id, result)

    computed: list[int] = []

    def expensive() -> int:
        computed.append(1)
        return 99

    engine = WorkflowEngine()
    handler = CachingHandler()
    engine.register_handler("cache", handler)
    with workflow("cache") as wf:
        expensive_task = TaskWrapper("expensive", expensive, handler="cache")
        expensive_task >> TaskWrapper("use", lambda expensive: expensive + 1)
    assert wf.execute(engine=engine) == 100
    assert wf.execute(engine=engine) == 100
    assert computed == [1]
    assert handler.cache == {"expensive": 99}


def test_section4_rate_limit_handler() -> None:
    class FakeClock:
        def __init__(self) -> None:
            self.now = 1000.0
            self.slept: list[float] = []

        def time(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.slept.append(round(seconds, 6))
            self.now += seconds

    time = FakeClock()  # the snippet reads the module `time`; this one does not really wait

    class RateLimitHandler(TaskHandler):
        def __init__(self, min_interval=1.0):  # type: ignore[no-untyped-def]
            self.min_interval = min_interval
            self.last_execution = 0

        def execute_task(self, task, context):  # type: ignore[no-untyped-def]
            elapsed = time.time() - self.last_execution
            if elapsed < self.min_interval:
                time.sleep(self.min_interval - elapsed)

            result = task.run()
            self.last_execution = time.time()
            context.set_result(task.task_id, result)

    def work(n: int) -> Any:
        def body() -> int:
            time.now += 0.25  # each call takes a quarter second
            return n

        return body

    engine = WorkflowEngine()
    engine.register_handler("rate_limited", RateLimitHandler(min_interval=1.0))
    with workflow("rate") as wf:
        (
            TaskWrapper("c1", work(1), handler="rate_limited")
            >> TaskWrapper("c2", work(2), handler="rate_limited")
            >> TaskWrapper("c3", work(3), handler="rate_limited")
        )
    result, ctx = wf.execute(engine=engine, ret_context=True)
    assert result == 3 and [ctx.get_result(t) for t in ("c1", "c2", "c3")] == [1, 2, 3]
    assert time.slept == [1.0, 1.0]  # nothing before the first call, then the full interval twice


def test_section4_monitoring_handler() -> None:
    import time

    class MonitoringHandler(TaskHandler):
        def __init__(self):  # type: ignore[no-untyped-def]
            self.metrics = []

        def execute_task(self, task, context):  # type: ignore[no-untyped-def]
            start = time.time()
            try:
                result = task.run()
                status = "success"
                context.set_result(task.task_id, result)
            except Exception as e:  # noqa: F841 - as written in the spec
                status = "failed"
                raise
            finally:
                self.metrics.append({"task": task.task_id, "duration": time.time() - start, "status": status})

    handler = MonitoringHandler()
    engine = WorkflowEngine()
    engine.register_handler("monitor", handler)
    with workflow("monitored") as wf:
        TaskWrapper("good", lambda: 1, handler="monitor") >> TaskWrapper("bad", lambda: 1 / 0, handler="monitor")
    with pytest.raises(TaskExecutionError, match="'bad'"):
        wf.execute(engine=engine)
    assert [(m["task"], m["status"]) for m in handler.metrics] == [("good", "success"), ("bad", "failed")]
    assert all(m["duration"] >= 0 for m in handler.metrics)
    assert wf.last_context is not None and wf.last_context.get_result("good") == 1


def test_section4_advanced_handlers_ssh_lambda_gpu_queue() -> None:
    import contextlib
    import json

    remote_host = "worker-1"
    connected: list[str] = []

    class SSHClient:
        @contextlib.contextmanager
        def connect(self, host: str) -> Any:
            connected.append(host)
            yield self

    ssh_client = SSHClient()

    def execute_remotely(task: Any) -> Any:
        return ("remote", task.run())

    class SSHHandler(TaskHandler):
        def execute_task(self, task, context):  # type: ignore[no-untyped-def]
            with ssh_client.connect(remote_host):
                result = execute_remotely(task)
            context.set_result(task.task_id, result)

    def serialize_task(task: Any) -> str:
        return json.dumps({"task_id": task.task_id, "value": task.run()})

    class LambdaClient:
        def invoke(self, FunctionName: str, Payload: str) -> dict[str, Any]:
            return {"Payload": Payload, "FunctionName": FunctionName}

    lambda_client = LambdaClient()

    def deserialize_response(response: dict[str, Any]) -> Any:
        return ("lambda", json.loads(response["Payload"])["value"])

    class LambdaHandler(TaskHandler):
        def execute_task(self, task, context):  # type: ignore[no-untyped-def]
            payload = serialize_task(task)
            response = lambda_client.invoke(FunctionName="executor", Payload=payload)
            result = deserialize_response(response)
            context.set_result(task.task_id, result)

    class GPUPool:
        def __init__(self) -> None:
            self.free = [0, 1]
            self.released: list[int] = []

        def acquire(self) -> int:
            return self.free.pop()

        def release(self, gpu_id: int) -> None:
            self.released.append(gpu_id)

    gpu_pool = GPUPool()

    class GPUQueueHandler(TaskHandler):
        def execute_task(self, task, context):  # type: ignore[no-untyped-def]
            gpu_id = gpu_pool.acquire()
            try:
                result = task.run(device=f"cuda:{gpu_id}")
            finally:
                gpu_pool.release(gpu_id)
            context.set_result(task.task_id, result)

    engine = WorkflowEngine()
    engine.register_handler("ssh", SSHHandler())
    engine.register_handler("lambda", LambdaHandler())
    engine.register_handler("gpu_queue", GPUQueueHandler())
    with workflow("advanced") as wf:
        a = TaskWrapper("on_ssh", lambda: 1, handler="ssh")
        b = TaskWrapper("on_lambda", lambda: 2, handler="lambda")

        @task(handler="gpu_queue")
        def on_gpu(device: str) -> str:
            return f"trained on {device}"

        a >> b >> on_gpu
    _, ctx = wf.execute(engine=engine, ret_context=True)
    assert ctx.get_result("on_ssh") == ("remote", 1) and connected == ["worker-1"]
    assert ctx.get_result("on_lambda") == ("lambda", 2)
    assert ctx.get_result("on_gpu") == "trained on cuda:1" and gpu_pool.released == [1]


# === Section 5: parallel group error policies ======================================================


def policy_tasks(fail: set[str]) -> tuple[TaskWrapper, TaskWrapper, TaskWrapper]:
    def make(name: str) -> TaskWrapper:
        def body() -> str:
            if name in fail:
                raise RuntimeError(f"{name} failed")
            return name

        return TaskWrapper(name, body)

    return make("task_a"), make("task_b"), make("task_c")


def test_section5_strict_mode_default() -> None:
    with workflow("strict") as wf:
        task_a, task_b, task_c = policy_tasks({"task_b"})
        parallel = task_a | task_b | task_c  # All must succeed
    with pytest.raises(ParallelGroupError):
        wf.execute()
    assert parallel.policy is None


def test_section5_best_effort_at_least_n_and_critical_tasks() -> None:
    def run(policy: Any, fail: set[str]) -> Any:
        with workflow("policies") as wf:
            task_a, task_b, task_c = policy_tasks(fail)
            parallel = (task_a | task_b | task_c).with_policy(policy)  # noqa: F841
        return wf.execute()

    assert run(ErrorHandlingPolicy.BEST_EFFORT, {"task_a", "task_b"}) == {"task_c": "task_c"}
    assert run(ErrorHandlingPolicy.AT_LEAST_N(n=2), {"task_c"}) == {"task_a": "task_a", "task_b": "task_b"}
    with pytest.raises(ParallelGroupError):
        run(ErrorHandlingPolicy.AT_LEAST_N(n=2), {"task_b", "task_c"})
    assert run(ErrorHandlingPolicy.CRITICAL_TASKS(["task_a"]), {"task_b", "task_c"}) == {"task_a": "task_a"}
    with pytest.raises(ParallelGroupError):
        run(ErrorHandlingPolicy.CRITICAL_TASKS(["task_a"]), {"task_a"})


def test_section5_custom_policy_and_error_information(capsys: pytest.CaptureFixture[str]) -> None:
    class CustomPolicy(ErrorHandlingPolicy):
        def should_fail(self, failed_tasks, successful_tasks):  # type: ignore[no-untyped-def]
            # Custom logic
            return len(failed_tasks) > len(successful_tasks)

    with workflow("custom") as wf:
        task_a, task_b, task_c = policy_tasks({"task_b", "task_c"})
        parallel = task_a | task_b | task_c
        parallel.with_policy(CustomPolicy())

    engine = WorkflowEngine()
    context = ExecutionContext.create(wf.graph)
    try:
        engine.execute(context)
    except ParallelGroupError as e:
        print(f"Group: {e.group_id}")
        print(f"Failed: {e.failed_tasks}")  # [(task_id, error_msg), ...]
        print(f"Succeeded: {e.successful_tasks}")  # [task_id, ...]
    out = capsys.readouterr().out
    assert f"Group: {parallel.task_id}" in out
    assert "Failed: [('task_b', 'RuntimeError: task_b failed'), ('task_c', 'RuntimeError: task_c failed')]" in out
    assert "Succeeded: ['task_a']" in out


# === Section 6: the operator DSL ===================================================================


def named(log: list[str], *names: str) -> list[TaskWrapper]:
    def make(name: str) -> TaskWrapper:
        return TaskWrapper(name, lambda: log.append(name))

    return [make(n) for n in names]


def test_section6_sequential_and_parallel() -> None:
    log: list[str] = []
    with workflow("seq") as wf:
        task_a, task_b, task_c = named(log, "task_a", "task_b", "task_c")
        task_a >> task_b >> task_c
    wf.execute()
    assert log == ["task_a", "task_b", "task_c"]

    log.clear()
    with workflow("par") as wf:
        task_a, task_b, task_c = named(log, "task_a", "task_b", "task_c")
        task_a | task_b | task_c
    wf.execute()
    assert sorted(log) == ["task_a", "task_b", "task_c"]


def test_section6_diamond_and_multi_stage() -> None:
    log: list[str] = []
    with workflow("diamond") as wf:
        fetch, transform_a, transform_b, store = named(log, "fetch", "transform_a", "transform_b", "store")
        fetch >> (transform_a | transform_b) >> store
    wf.execute()
    assert log[0] == "fetch" and log[-1] == "store" and len(log) == 4

    log.clear()
    with workflow("multi") as wf:
        load_a, load_b, validate, process_a, process_b, save_db, save_file = named(
            log, "load_a", "load_b", "validate", "process_a", "process_b", "save_db", "save_file"
        )
        (load_a | load_b) >> validate >> (process_a | process_b) >> (save_db | save_file)
    wf.execute()
    assert log.index("validate") == 2 and len(log) == 7
    assert {log[5], log[6]} == {"save_db", "save_file"}


def test_section6_named_parallel_group() -> None:
    log: list[str] = []
    with workflow("named") as wf:
        task_a, task_b, task_c, aggregate = named(log, "task_a", "task_b", "task_c", "aggregate")
        (task_a | task_b | task_c).set_group_name("parallel_tasks") >> aggregate
    _, ctx = wf.execute(ret_context=True)
    assert log[-1] == "aggregate"
    assert set(ctx.get_result("parallel_tasks")) == {"task_a", "task_b", "task_c"}


def test_section6_common_patterns() -> None:
    log: list[str] = []
    with workflow("linear") as wf:
        extract, validate, transform, load = named(log, "extract", "validate", "transform", "load")
        extract >> validate >> transform >> load
    wf.execute()
    assert log == ["extract", "validate", "transform", "load"]

    log.clear()
    with workflow("fan_out") as wf:
        source, r1, r2, r3 = named(log, "source", "process_region_1", "process_region_2", "process_region_3")
        source >> (r1 | r2 | r3)
    wf.execute()
    assert log[0] == "source" and len(log) == 4

    log.clear()
    with workflow("fan_in") as wf:
        fetch_db, fetch_api, fetch_file, aggregate = named(log, "fetch_db", "fetch_api", "fetch_file", "aggregate")
        (fetch_db | fetch_api | fetch_file) >> aggregate
    wf.execute()
    assert log[-1] == "aggregate" and len(log) == 4

    log.clear()
    with workflow("diamond_merge") as wf:
        fetch, transform_a, transform_b, merge, store = named(
            log, "fetch", "transform_a", "transform_b", "merge", "store"
        )
        fetch >> (transform_a | transform_b) >> merge >> store
    wf.execute()
    assert log[0] == "fetch" and log[-2:] == ["merge", "store"]

    log.clear()
    with workflow("multi_stage") as wf:
        extract_a, extract_b, validate, transform_a, transform_b, load_db, load_s3 = named(
            log, "extract_a", "extract_b", "validate", "transform_a", "transform_b", "load_db", "load_s3"
        )
        (extract_a | extract_b) >> validate >> (transform_a | transform_b) >> (load_db | load_s3)
    wf.execute()
    assert log.index("validate") == 2 and sorted(log[-2:]) == ["load_db", "load_s3"]


def test_section6_cycles_for_state_machines() -> None:
    rounds: list[int] = []
    with workflow("cycle") as wf:

        @task(inject_context=True)
        def process(context):  # type: ignore[no-untyped-def]
            rounds.append(context.cycle_count)
            not_done = len(rounds) < 3
            if not_done:
                context.next_iteration()  # Creates cycle

    wf.execute()
    assert rounds == [1, 2, 3]


# === Section 8: channels ===========================================================================


def test_section8_producer_consumer() -> None:
    seen: dict[str, Any] = {}
    with workflow("channels") as wf:
        # Producer task
        @task(inject_context=True)
        def producer(context):  # type: ignore[no-untyped-def]
            channel = context.get_channel()
            channel.set("config", {"batch_size": 100})
            channel.set("metrics", {"processed": 0})

        # Consumer task (decoupled)
        @task(inject_context=True)
        def consumer(context):  # type: ignore[no-untyped-def]
            channel = context.get_channel()
            config = channel.get("config")
            metrics = channel.get("metrics", default={})
            seen.update(config=config, metrics=metrics)

        producer >> consumer
    wf.execute()
    assert seen == {"config": {"batch_size": 100}, "metrics": {"processed": 0}}


def test_section8_channel_operations() -> None:
    with workflow("ops") as wf:

        @task(inject_context=True)
        def operate(context: TaskExecutionContext) -> Any:
            channel = context.get_channel()
            key, value = "k", [1, 2]
            channel.set(key, value)  # Store value
            got = channel.get(key, default=None)  # Retrieve value
            keys = channel.keys()  # List all keys
            channel.clear()  # Clear all data
            return got, keys, channel.keys()

    assert wf.execute() == ([1, 2], ["k"], [])


def test_section8_shared_configuration_metrics_and_progress() -> None:
    def load_config() -> dict[str, Any]:
        return {"model": "small"}

    with workflow("use_cases") as wf:

        @task(inject_context=True)
        def setup(context):  # type: ignore[no-untyped-def]
            config = load_config()
            context.get_channel().set("config", config)

        # All subsequent tasks access config
        @task(inject_context=True)
        def process(context):  # type: ignore[no-untyped-def]
            config = context.get_channel().get("config")
            return config

        @task(inject_context=True)
        def task_with_metrics(context):  # type: ignore[no-untyped-def]
            channel = context.get_channel()
            metrics = channel.get("metrics", [])
            metrics.append({"task": "...", "duration": 1.5})
            channel.set("metrics", metrics)

        @task(inject_context=True)
        def track_progress(context):  # type: ignore[no-untyped-def]
            channel = context.get_channel()
            progress = channel.get("progress", 0)
            channel.set("progress", progress + 10)

        setup >> process >> task_with_metrics >> track_progress
    _, ctx = wf.execute(ret_context=True)
    channel = ctx.get_channel()
    assert ctx.get_result("process") == {"model": "small"}
    assert channel.get("metrics") == [{"task": "...", "duration": 1.5}]
    assert channel.get("progress") == 10
