"""faissctl's printing helpers: kubectl-style tables and ages, sizes, JSON/YAML."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import yaml

from faissctl.output import age, cell, dump, human_duration, relative, size, table, until

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=timezone.utc)


def test_a_table_aligns_columns_with_three_spaces_and_does_not_pad_the_last() -> None:
    out = table(["NAME", "RECALL", "MESSAGE"], [["a", 0.99, "x"], ["longer-name", None, ""]])
    assert out == (
        "NAME          RECALL   MESSAGE\n"
        "a             0.99     x\n"
        "longer-name   -        -\n"
    )


def test_an_indented_table_indents_every_line() -> None:
    assert table(["A"], [["b"]], indent="  ") == "  A\n  b\n"


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), ("", "-"), (True, "true"), (0.99350, "0.9935"), (1.0, "1"), (123.456, "123.5"), ("two\nlines", "two lines"), (7, "7")],
)
def test_cells_are_one_short_line(value: object, text: str) -> None:
    assert cell(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "0s"), (45, "45s"), (119, "119s"), (200, "3m20s"), (240, "4m"), (42 * 60, "42m"), (5 * 3600 + 600, "5h10m"),
     (20 * 3600, "20h"), (3 * 86400 + 4 * 3600, "3d4h"), (120 * 86400, "120d"), (760 * 86400, "2y30d")],
)
def test_durations_read_like_kubectl_ages(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_ages_and_relative_times_handle_past_future_and_missing_values() -> None:
    assert age("2026-11-21T11:55:00Z", NOW) == "5m"
    assert age(None, NOW) == "-" and age("not a time", NOW) == "-"
    assert relative("2026-11-21T11:00:00Z", NOW) == "2026-11-21T11:00:00Z (60m ago)"
    assert relative("2026-11-21T15:00:00Z", NOW) == "2026-11-21T15:00:00Z (in 3h)"
    assert until("2026-11-21T15:00:00Z", NOW) == "in 3h" and until("2026-11-21T11:00:00Z", NOW) == "now"


@pytest.mark.parametrize(("n", "text"), [(None, "-"), (812, "812 B"), (1_258_291, "1.2 MiB"), (3 * 1024**4, "3.0 TiB")])
def test_sizes_use_binary_units(n: int | None, text: str) -> None:
    assert size(n) == text


def test_json_and_yaml_keep_key_order_and_round_trip() -> None:
    data = {"name": "x", "serving": {"version": "v", "recall": 0.9}, "events": []}
    assert json.loads(dump(data, "json")) == data and list(json.loads(dump(data, "json"))) == ["name", "serving", "events"]
    assert yaml.safe_load(dump(data, "yaml")) == data and dump(data, "yaml").startswith("name: x\n")
    with pytest.raises(ValueError):
        dump(data, "xml")
