"""The operator DSL (spec section 6): sequence, fan-out, fan-in, diamond, multi-stage, named groups."""

import threading

from graflow import task, workflow

ran: list[str] = []
lock = threading.Lock()


def step(name: str):
    @task(id=name)
    def _run() -> str:
        with lock:
            ran.append(name)
        return name

    return _run


def main() -> None:
    # Multi-stage: (load_a | load_b) >> validate >> (process_a | process_b) >> (save_db | save_file)
    with workflow("multi_stage") as wf:
        load_a, load_b, validate = step("load_a"), step("load_b"), step("validate")
        process_a, process_b = step("process_a"), step("process_b")
        save_db, save_file = step("save_db"), step("save_file")
        (load_a | load_b) >> validate >> (process_a | process_b) >> (save_db | save_file)
    wf.execute()
    print("multi-stage order:", ran)
    assert set(ran[:2]) == {"load_a", "load_b"} and ran[2] == "validate"
    assert set(ran[3:5]) == {"process_a", "process_b"} and set(ran[5:]) == {"save_db", "save_file"}

    # Diamond without groups: d runs once, after both b and c.
    ran.clear()
    with workflow("diamond") as wf:
        a, b, c, d = step("a"), step("b"), step("c"), step("d")
        a >> b >> d
        a >> c >> d
    wf.execute()
    print("diamond order:", ran)
    assert ran.count("d") == 1 and ran[-1] == "d" and ran[0] == "a"

    # A named group shows up under its name in results.
    ran.clear()
    with workflow("named") as wf:
        fetch_db, fetch_api, aggregate = step("fetch_db"), step("fetch_api"), step("aggregate")
        (fetch_db | fetch_api).set_group_name("fetch_all") >> aggregate
    _, ctx = wf.execute(ret_context=True)
    print("named group result:", ctx.get_result("fetch_all"))
    assert ctx.get_result("fetch_all") == {"fetch_db": "fetch_db", "fetch_api": "fetch_api"}
    assert sorted(wf.graph.edges()) == [("fetch_all", "aggregate")]


if __name__ == "__main__":
    main()
