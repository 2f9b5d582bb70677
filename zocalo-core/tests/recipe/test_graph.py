from __future__ import annotations

from zocalo_core._recipe import Recipe, to_dot, to_mermaid

RECIPE = Recipe(
    {
        "1": {"queue": "watcher", "output": {"any": 2, "timeout": 3}, "error": 4},
        "2": {"queue": "runner", "topic": "runner.status", "output": 3},
        "3": {"queue": 'jsonl"ines'},
        "4": {"service": "nothing"},
        "5": {"topic": "announce"},
        "start": [[1, {}]],
        "error": 5,
    }
)


def test_dot_has_nodes_with_id_and_destinations() -> None:
    dot = to_dot(RECIPE)

    assert dot.startswith("digraph recipe {\n")
    assert dot.endswith("}\n")
    assert '  start [shape=circle, label="start"];' in dot
    assert '  error [shape=octagon, label="error"];' in dot
    assert '  n1 [label="1\\nqueue: watcher"];' in dot
    assert '  n2 [label="2\\nqueue: runner\\ntopic: runner.status"];' in dot
    assert '  n3 [label="3\\nqueue: jsonl\\"ines"];' in dot
    assert '  n4 [label="4"];' in dot


def test_dot_edges_are_labelled_and_error_links_dashed() -> None:
    edges = [line.strip() for line in to_dot(RECIPE).splitlines() if "->" in line]

    assert edges == [
        "start -> n1;",
        "error -> n5 [style=dashed];",
        'n1 -> n2 [label="any"];',
        'n1 -> n3 [label="timeout"];',
        'n1 -> n4 [label="error", style=dashed];',
        "n2 -> n3;",
    ]


def test_dot_without_top_level_error_has_no_error_node() -> None:
    dot = to_dot(Recipe({"1": {"queue": "a"}, "start": [[1, {}]]}))

    assert "error" not in dot


def test_mermaid_flowchart() -> None:
    lines = to_mermaid(RECIPE).splitlines()

    assert lines[:3] == ["flowchart TD", "  start((start))", "  error{{error}}"]
    assert '  n2["2<br/>queue: runner<br/>topic: runner.status"]' in lines
    assert '  n3["3<br/>queue: jsonl#quot;ines"]' in lines
    assert [line for line in lines if "--" in line or "-." in line] == [
        "  start --> n1",
        "  error -.-> n5",
        '  n1 -->|"any"| n2',
        '  n1 -->|"timeout"| n3',
        '  n1 -.->|"error"| n4',
        "  n2 --> n3",
    ]
