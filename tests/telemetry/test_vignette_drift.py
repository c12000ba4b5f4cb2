"""The vignettes against the code: documentation and telemetry cannot drift apart.

``vignettes/opentelemetry.md`` and ``vignettes/audit-logging.md`` are parsed
(their machine-readable format is described in each, under "How to read the
catalog") and compared with what the flows of ``test_catalog.py`` emit:

* every span, attribute, phase, parent and kind the code emits is documented,
  and everything documented as emitted (``Status: emitted``, ``When: always``)
  is emitted;
* the same for audit event types, their fields and their severities;
* the OTel log records follow the documented field translation;
* every metric instrument is documented with its unit and attributes.

Entries marked as emitted by the worker backends, ``reserved`` events and
attributes or fields with a condition in their ``When`` column are documented
but need not be exercised by the flows.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest

from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry import metrics
from dash_oauth_otel.telemetry import spans
from tests.idp.harness import TestProvider
from tests.telemetry.test_catalog import CatalogRun
from tests.telemetry.test_catalog import catalog_run

VIGNETTES = Path(__file__).resolve().parents[2] / "vignettes"
OTEL_DOC = VIGNETTES / "opentelemetry.md"
AUDIT_DOC = VIGNETTES / "audit-logging.md"

SPAN_STATUSES = {"emitted", "emitted by the worker backends"}
EVENT_STATUSES = {"emitted", "reserved"}
SEVERITIES = {"INFO", "WARN", "ERROR"}
LOGGING_LEVELS = {"INFO": "INFO", "WARN": "WARNING", "ERROR": "ERROR"}
SPAN_COMMON = "Common attributes"
EVENT_COMMON = "Fields of every event"

_TICKED = re.compile(r"`([^`]+)`")
_HEADING = re.compile(r"^(#{1,6}) +(.+?) *$")
_LINE = re.compile(r"^(Kind|Parent|Phases|Includes|Status|Severity): *(.*)$")


# -- the format ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One row of an attribute or field table."""

    key: str
    when: str
    meaning: str

    @property
    def always(self) -> bool:
        return self.when.strip().lower() == "always"


@dataclass
class Section:
    """A level-3 section: a span, an event or a named group of attributes."""

    name: str
    lines: dict[str, str] = field(default_factory=dict)
    tables: list[list[list[str]]] = field(default_factory=list)

    def table(self, first_header: str) -> list[list[str]] | None:
        for table in self.tables:
            if table and table[0][0] == first_header:
                return table[1:]
        return None

    def rows(self, first_header: str) -> dict[str, Row]:
        found = self.table(first_header)
        out: dict[str, Row] = {}
        for cells in found or []:
            key = _ticked(cells[0])
            assert len(key) == 1, f"{self.name}: one key per row expected, got {cells[0]!r}"
            assert key[0] not in out, f"{self.name}: {key[0]} listed twice"
            out[key[0]] = Row(key[0], cells[1], cells[2] if len(cells) > 2 else "")
        return out

    def includes(self) -> list[str]:
        raw = self.lines.get("Includes", "")
        return [part.strip() for part in raw.split(",") if part.strip()]


def _ticked(text: str) -> list[str]:
    return _TICKED.findall(text)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse(path: Path) -> dict[str, Section]:
    """The level-3 sections of a vignette, by heading, with their lines and tables."""
    sections: dict[str, Section] = {}
    current: Section | None = None
    table: list[list[str]] | None = None
    in_code = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        heading = _HEADING.match(raw)
        if heading:
            table = None
            current = None
            if len(heading.group(1)) == 3:
                name = heading.group(2)
                assert name not in sections, f"{path.name}: section {name!r} appears twice"
                current = sections[name] = Section(name)
            continue
        if current is None:
            continue
        line = _LINE.match(raw)
        if line and table is None:
            current.lines[line.group(1)] = line.group(2).strip()
            continue
        if raw.startswith("|"):
            cells = _cells(raw)
            if table is None:
                table = [cells]
                current.tables.append(table)
            elif not set("".join(cells)) <= set("-: "):
                table.append(cells)
            continue
        table = None
    return sections


def top_level_table(path: Path, first_header: str) -> list[list[str]]:
    """Rows of the table (anywhere in the file) whose first header cell is ``first_header``."""
    rows: list[list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("|"):
            cells = _cells(raw)
            if rows is None and cells[0] == first_header:
                rows = []
            elif rows is not None and not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows is not None:
            break
    assert rows is not None, f"{path.name}: no table headed {first_header!r}"
    return rows


# -- the documented catalogs -----------------------------------------------------------


@dataclass
class Documented:
    """One span or event as documented: its lines and the attributes it may carry."""

    name: str
    status: str
    section: Section
    allowed: dict[str, Row]
    """Own rows over included groups over common rows (the first one wins)."""
    own: dict[str, Row]


def _resolve(
    sections: dict[str, Section], section: Section, header: str, common: str
) -> dict[str, Row]:
    allowed: dict[str, Row] = dict(sections[common].rows(header))
    for group in section.includes():
        assert group in sections, f"{section.name}: unknown group {group!r} in Includes"
        allowed.update(sections[group].rows(header))
    allowed.update(section.rows(header))
    return allowed


def documented_spans() -> dict[str, Documented]:
    sections = parse(OTEL_DOC)
    out: dict[str, Documented] = {}
    for name, section in sections.items():
        if not name.startswith("dash_oauth_otel."):
            continue
        assert section.table("Attribute") is not None, f"{name}: no attribute table"
        out[name] = Documented(
            name,
            section.lines.get("Status", ""),
            section,
            _resolve(sections, section, "Attribute", SPAN_COMMON),
            section.rows("Attribute"),
        )
    return out


def documented_events() -> dict[str, Documented]:
    sections = parse(AUDIT_DOC)
    out: dict[str, Documented] = {}
    for name, section in sections.items():
        if section.table("Field") is None or "Status" not in section.lines:
            continue
        out[name] = Documented(
            name,
            section.lines["Status"],
            section,
            _resolve(sections, section, "Field", EVENT_COMMON),
            section.rows("Field"),
        )
    return out


def _parents(line: str) -> tuple[set[str], bool, bool]:
    names = {n for n in _ticked(line) if n.startswith("dash_oauth_otel.")}
    return names, bool(re.search(r"\broot\b", line)), "current span" in line


@pytest.fixture(scope="module")
def run(idp_server: TestProvider) -> CatalogRun:
    return catalog_run(idp_server)


@pytest.fixture(scope="module")
def doc_spans() -> dict[str, Documented]:
    return documented_spans()


@pytest.fixture(scope="module")
def doc_events() -> dict[str, Documented]:
    return documented_events()


def _conditional(row: Row) -> bool:
    """A row whose ``When`` starts with "only": it need not appear in the flows."""
    return row.when.strip().lower().startswith("only")


def _listed(sections: dict[str, Section], doc: Documented, header: str) -> dict[str, Row]:
    """The rows of a span's or event's own table and of its included groups."""
    rows: dict[str, Row] = {}
    for group in doc.section.includes():
        rows.update(sections[group].rows(header))
    rows.update(doc.own)
    return rows


def _present(attributes: Any, key: str) -> bool:
    return key in attributes and attributes[key] is not None


# -- the format itself -----------------------------------------------------------------


def test_every_span_section_is_complete(doc_spans):
    for name, doc in doc_spans.items():
        lines = doc.section.lines
        for required in ("Kind", "Parent", "Phases", "Status"):
            assert lines.get(required), f"{name}: no {required}: line"
        assert lines["Kind"] in ("internal", "client"), name
        assert doc.status in SPAN_STATUSES, f"{name}: Status {doc.status!r}"
        assert _ticked(lines["Phases"]), f"{name}: no phase listed"
        parents, root, current = _parents(lines["Parent"])
        assert parents or root or current, f"{name}: Parent line names nothing"
        assert parents <= set(doc_spans), f"{name}: unknown parent in {lines['Parent']!r}"


def test_every_event_section_is_complete(doc_events):
    for name, doc in doc_events.items():
        assert doc.status in EVENT_STATUSES, f"{name}: Status {doc.status!r}"
        severities = set(_ticked(doc.section.lines.get("Severity", ""))) & SEVERITIES
        assert severities, f"{name}: no Severity: line"


# -- spans ---------------------------------------------------------------------------------


def test_documented_spans_are_the_catalog(doc_spans):
    catalog = {getattr(spans, n) for n in spans.__all__ if n.isupper()}
    assert set(doc_spans) - catalog == set(), "documented spans that are not in spans.py"
    assert catalog - set(doc_spans) == set(), "catalog spans missing from the vignette"


def test_emitted_spans_are_documented(run, doc_spans):
    emitted = {s.name for s in run.spans()}
    assert emitted - set(doc_spans) == set()


def test_documented_spans_are_emitted(run, doc_spans):
    emitted = {s.name for s in run.spans()}
    expected = {n for n, d in doc_spans.items() if d.status == "emitted"}
    assert expected - emitted == set(), "documented as emitted, never seen in the flows"
    workers = {n for n, d in doc_spans.items() if "worker" in d.status}
    assert workers == {n for n in doc_spans if n.endswith(".worker")}


def test_span_kinds_match(run, doc_spans):
    for found in run.spans():
        kind = doc_spans[found.name].section.lines["Kind"]
        assert found.kind.name.lower() == kind, f"{found.name} is {found.kind.name}"


def test_span_parents_match(run, doc_spans):
    for flow in run.flows.values():
        for found in flow.spans:
            names, root, current = _parents(doc_spans[found.name].section.lines["Parent"])
            if current:
                continue
            parent = flow.parent_of(found)
            if parent is None:
                assert root, f"{flow.name}: {found.name} is a root, the vignette says {names}"
            else:
                assert parent.name in names, (
                    f"{flow.name}: {found.name} is a child of {parent.name}, "
                    f"the vignette says {names} or root={root}"
                )


def test_span_phases_match(run, doc_spans):
    seen: dict[str, set[str]] = defaultdict(set)
    for found in run.spans():
        seen[found.name].add(str((found.attributes or {}).get("oauth.phase")))
    for name, phases in seen.items():
        documented = set(_ticked(doc_spans[name].section.lines["Phases"]))
        assert phases - documented == set(), f"{name}: undocumented phases"
        assert documented - phases == set(), f"{name}: documented phases never emitted"


def test_span_attributes_are_documented(run, doc_spans):
    undocumented: dict[str, set[str]] = defaultdict(set)
    for found in run.spans():
        allowed = doc_spans[found.name].allowed
        undocumented[found.name] |= set(found.attributes or {}) - set(allowed)
    assert {k: v for k, v in undocumented.items() if v} == {}


def test_always_attributes_are_on_every_span(run, doc_spans):
    missing: dict[str, set[str]] = defaultdict(set)
    for found in run.spans():
        attributes = found.attributes or {}
        for key, row in doc_spans[found.name].allowed.items():
            if row.always and not _present(attributes, key):
                missing[found.name].add(key)
    assert {k: v for k, v in missing.items() if v} == {}


def test_listed_attributes_are_seen_in_the_flows(run, doc_spans):
    # The common attributes depend on where a span is opened; everything a
    # span's own table and its groups list is seen at least once, unless the
    # vignette marks it conditional ("only ...").
    sections = parse(OTEL_DOC)
    seen: dict[str, set[str]] = defaultdict(set)
    for found in run.spans():
        seen[found.name] |= {k for k, v in (found.attributes or {}).items() if v is not None}
    never: dict[str, set[str]] = {}
    for name, doc in doc_spans.items():
        if doc.status != "emitted":
            continue
        rows = _listed(sections, doc, "Attribute")
        missing = {k for k, row in rows.items() if not _conditional(row)} - seen[name]
        if missing:
            never[name] = missing
    assert never == {}, "documented attributes never seen in the flows"


def test_span_status_follows_the_documented_rule(run):
    # Conventions: OK or ERROR, never unset; ERROR with error.type and exactly
    # one exception event carrying every attribute documented as always there.
    rows = parse(OTEL_DOC)["Exception event"].rows("Event attribute")
    always = {k for k, row in rows.items() if row.always}
    for found in run.spans():
        status = found.status.status_code.name
        assert status in ("OK", "ERROR"), (found.name, status)
        if status == "OK":
            assert found.events == (), found.name
            continue
        assert (found.attributes or {}).get("error.type"), found.name
        (event,) = found.events
        assert event.name == "exception", found.name
        assert always <= set(event.attributes or {}), (found.name, event.attributes)


def test_exception_events_are_documented(run):
    rows = parse(OTEL_DOC)["Exception event"].rows("Event attribute")
    events = [e for s in run.spans() for e in s.events]
    assert events, "no exception event in the flows"
    for event in events:
        assert event.name == "exception"
        attributes = dict(event.attributes or {})
        assert set(attributes) <= set(rows), set(attributes) - set(rows)
        for key, row in rows.items():
            assert not row.always or key in attributes, key
    for key in rows:
        assert any(key in (e.attributes or {}) for e in events), f"{key} never emitted"


# -- metrics --------------------------------------------------------------------------------


def test_metrics_match(run):
    rows = {_ticked(r[0])[0]: r for r in top_level_table(OTEL_DOC, "Instrument")}
    constants = {getattr(metrics, n) for n in metrics.__all__ if n.isupper()}
    assert set(rows) == constants
    for name, metric in run.metrics.items():
        assert name in rows, f"undocumented instrument {name}"
        _, _, unit, attributes, _ = rows[name]
        assert _ticked(unit) == [metric.unit], name
        keys = {k for point in metric.points for k in point}
        assert keys <= set(_ticked(attributes)), (name, keys - set(_ticked(attributes)))
    for name, row in rows.items():
        if "worker backends" not in row[4]:
            assert name in run.metrics, f"{name} documented but never recorded"


# -- logs --------------------------------------------------------------------------------------


def test_log_records_follow_the_documented_translation(run):
    translation = {
        _ticked(a)[0]: _ticked(b)[0] for a, b in top_level_table(OTEL_DOC, "Event field")
    }
    for flow in run.flows.values():
        records = {(r.event_name, r.timestamp): r for r in flow.logs}
        assert len(records) == len(flow.audit) == len(flow.logs), flow.name
        for event in flow.audit:
            record = records[(event["type"], int(event["timestamp"] * 1e9))]
            assert record.body == event["type"]
            expected = {
                translation.get(key, key): value
                for key, value in event.items()
                if key != "timestamp"
                and value is not None
                and not isinstance(value, (dict, list, tuple))
            }
            assert dict(record.attributes or {}) == expected, event["type"]


# -- audit events ------------------------------------------------------------------------------


def test_documented_events_are_the_catalog(doc_events):
    constants = {
        getattr(audit, n) for n in audit.__all__ if n.isupper() and n not in ("AuditHook",)
    }
    assert set(doc_events) - constants == set(), "documented events not in audit.py"
    assert constants - set(doc_events) == set(), "audit.py events missing from the vignette"


def test_emitted_events_are_documented(run, doc_events):
    emitted = {e["type"] for e in run.audit()}
    assert emitted - set(doc_events) == set()
    expected = {n for n, d in doc_events.items() if d.status == "emitted"}
    assert expected - emitted == set(), "documented as emitted, never seen in the flows"
    reserved = {n for n, d in doc_events.items() if d.status == "reserved"}
    assert reserved & emitted == set(), "events documented as reserved are emitted"


def test_event_fields_are_documented(run, doc_events):
    undocumented: dict[str, set[str]] = defaultdict(set)
    missing: dict[str, set[str]] = defaultdict(set)
    for event in run.audit():
        doc = doc_events[event["type"]]
        present = {k for k, v in event.items() if v is not None}
        undocumented[event["type"]] |= present - set(doc.allowed)
        missing[event["type"]] |= {k for k, r in doc.allowed.items() if r.always} - present
    assert {k: v for k, v in undocumented.items() if v} == {}, "undocumented fields"
    assert {k: v for k, v in missing.items() if v} == {}, "fields documented as always"


def test_listed_fields_are_seen_in_the_flows(run, doc_events):
    sections = parse(AUDIT_DOC)
    seen: dict[str, set[str]] = defaultdict(set)
    for event in run.audit():
        seen[event["type"]] |= {k for k, v in event.items() if v is not None}
    never: dict[str, set[str]] = {}
    for name, doc in doc_events.items():
        if doc.status != "emitted":
            continue
        rows = _listed(sections, doc, "Field")
        missing = {k for k, row in rows.items() if not _conditional(row)} - seen[name]
        if missing:
            never[name] = missing
    assert never == {}, "documented fields never seen in the flows"


def test_event_severities_match(run, doc_events):
    def allowed(event_type: str) -> set[str]:
        line = doc_events[event_type].section.lines["Severity"]
        return set(_ticked(line)) & SEVERITIES

    for flow in run.flows.values():
        for record in flow.logs:
            assert record.severity_text in allowed(record.event_name), (
                record.event_name,
                record.severity_text,
            )
        assert len(flow.log_lines) == len(flow.audit), flow.name
        for event, (level, _) in zip(flow.audit, flow.log_lines, strict=True):
            levels = {LOGGING_LEVELS[s] for s in allowed(event["type"])}
            assert level in levels, (event["type"], level)
