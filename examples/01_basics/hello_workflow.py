"""The demo: an ETL pipeline with a parallel stage, on the embedded local default (no services).

Run: uv run python examples/01_basics/hello_workflow.py
"""

from graflow import task, workflow


@task
def extract() -> list[dict[str, object]]:
    return [
        {"city": "Osaka", "temp_c": 21.5},
        {"city": "Lyon", "temp_c": None},
        {"city": "Quito", "temp_c": 14.0},
    ]


@task
def clean(extract: list[dict[str, object]]) -> list[dict[str, object]]:
    """Parameters named like a task id receive that task's result."""
    return [row for row in extract if row["temp_c"] is not None]


@task
def enrich(extract: list[dict[str, object]]) -> dict[str, int]:
    return {str(row["city"]): len(str(row["city"])) for row in extract}


@task(inject_context=True)
def load(context, clean: list[dict[str, object]], enrich: dict[str, int]) -> str:
    context.get_channel().set("loaded_rows", len(clean))
    cities = ", ".join(f"{row['city']} ({enrich[str(row['city'])]} letters)" for row in clean)
    return f"loaded {len(clean)} rows: {cities}"


def main() -> None:
    with workflow("hello_etl") as wf:
        extract >> (clean | enrich) >> load

    result, context = wf.execute(ret_context=True)
    print(result)
    print("channel:", context.channel.items())
    assert result == "loaded 2 rows: Osaka (5 letters), Quito (5 letters)"
    assert context.get_result("enrich") == {"Osaka": 5, "Lyon": 4, "Quito": 5}
    assert context.channel.get("loaded_rows") == 2


if __name__ == "__main__":
    main()
