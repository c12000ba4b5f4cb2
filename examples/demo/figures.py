"""Plotly figures of the trace page: the span waterfall and the small metric charts."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from html import escape

import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from dash_oauth_otel.telemetry import spans as catalog
from examples.demo.queries import GAP_MS
from examples.demo.queries import SpanRow
from examples.demo.queries import busy_stretches

__all__ = ["STATUS_COLORS", "bar_chart", "empty_figure", "histogram_chart", "waterfall"]

STATUS_COLORS = {"OK": "#2f9e77", "ERROR": "#d64545", "UNSET": "#8a94a6"}
PALETTE = ("#3b6fe0", "#f0a030", "#2f9e77", "#9b59b6", "#d64545", "#17a2b8")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
ROW_PX = 30


def _base_layout(fig: go.Figure, *, height: int, title: str | None = None) -> None:
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 20, "t": 46 if title else 10, "b": 40},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#ffffff",
        font={"family": FONT, "size": 12, "color": "#1d2433"},
        title={"text": title, "x": 0.01, "font": {"size": 14}} if title else None,
        hoverlabel={"bgcolor": "#1d2433", "font": {"color": "#ffffff", "family": FONT}},
        uirevision="keep",
    )


def empty_figure(message: str, *, height: int = 220) -> go.Figure:
    """A blank figure carrying ``message`` in its middle."""
    fig = go.Figure()
    _base_layout(fig, height=height)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=escape(message), showarrow=False, font={"size": 13, "color": "#5b6478"})
    return fig


def _duration(ms: float) -> str:
    return f"{ms:.2f} ms" if ms < 1 else f"{ms:.1f} ms"


def _hover(row: SpanRow) -> str:
    lines = [
        f"<b>{escape(row.name)}</b>",
        f"duration {row.duration_ms:.1f} ms · starts at +{row.start_ms:.1f} ms",
        f"status {row.status}",
        f"parent {escape(row.parent_name.removeprefix('dash_oauth_otel.'))}"
        if row.parent_name
        else "root span",
    ]
    for key, value in list(row.attributes.items())[:10]:
        text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        lines.append(f"{escape(key)} = {escape(text[:60])}")
    return "<br>".join(lines)


def _gap_label(before: Sequence[SpanRow], after: Sequence[SpanRow], seconds: float) -> str:
    if any(r.name == catalog.LOGIN_REQUEST for r in before) and any(
        r.name == catalog.CALLBACK for r in after
    ):
        return f"⋯ {seconds:.1f} s at the provider ⋯"
    return f"{seconds:.1f} s later"


def waterfall(rows: Sequence[SpanRow]) -> go.Figure:
    """One bar per span (x: start offset and duration in ms), coloured by status.

    Stretches where no span is open (the user typing a password at the
    provider) are cut out: each busy stretch gets its own panel with its own
    millisecond axis, and the cut is labelled with its length.
    """
    if not rows:
        return empty_figure("No spans recorded for this operation.", height=260)
    segments = busy_stretches(rows)
    spans_ms = [max(end - start, 1.0) for start, end in segments]
    total = sum(spans_ms)
    widths = [max(s / total, 0.22) for s in spans_ms]
    fig = make_subplots(
        rows=1,
        cols=len(segments),
        shared_yaxes=True,
        column_widths=[w / sum(widths) for w in widths],
        horizontal_spacing=0.08 if len(segments) > 1 else 0.02,
    )
    labels = [
        "\u00a0\u00a0\u00a0" * row.depth + ("└ " if row.depth else "") + row.short_name
        for row in rows
    ]
    members: list[list[int]] = [[] for _ in segments]
    for index, row in enumerate(rows):
        column = next(
            (i for i, (s, e) in enumerate(segments) if s <= row.start_ms <= e + GAP_MS), 0
        )
        members[column].append(index)
    shown: set[str] = set()
    for column, indices in enumerate(members, start=1):
        start, end = segments[column - 1]
        minimum = (end - start) * 0.006
        for status in ("OK", "ERROR", "UNSET"):
            chosen = [i for i in indices if rows[i].status == status]
            if not chosen:
                continue
            fig.add_trace(
                go.Bar(
                    orientation="h",
                    y=chosen,
                    base=[rows[i].start_ms for i in chosen],
                    x=[max(rows[i].duration_ms, minimum) for i in chosen],
                    marker={"color": STATUS_COLORS[status], "line": {"width": 0}},
                    name=status,
                    legendgroup=status,
                    showlegend=status not in shown,
                    text=[_duration(rows[i].duration_ms) for i in chosen],
                    textposition="outside",
                    cliponaxis=False,
                    textfont={"size": 11, "color": "#5b6478"},
                    customdata=[[rows[i].name, rows[i].status] for i in chosen],
                    hovertext=[_hover(rows[i]) for i in chosen],
                    hovertemplate="%{hovertext}<extra></extra>",
                    width=0.62,
                ),
                row=1,
                col=column,
            )
            shown.add(status)
        pad = max((end - start) * 0.18, 2.0)
        share = fig.layout[f"xaxis{column if column > 1 else ''}"].domain
        fig.update_xaxes(
            range=[start - pad * 0.15, end + pad],
            row=1,
            col=column,
            nticks=max(2, int(8 * (share[1] - share[0]))),
            tickangle=0,
            gridcolor="#eef0f4",
            zeroline=False,
        )
        if column > 1:
            previous = [rows[i] for i in members[column - 2]]
            current = [rows[i] for i in indices]
            seconds = (start - segments[column - 2][1]) / 1000
            left = fig.layout[f"xaxis{column - 1 if column > 2 else ''}"].domain[1]
            middle = (left + share[0]) / 2
            fig.add_shape(
                type="line",
                xref="paper",
                yref="paper",
                x0=middle,
                x1=middle,
                y0=0,
                y1=1,
                line={"color": "#c4cad6", "width": 1, "dash": "dot"},
            )
            fig.add_annotation(
                x=middle,
                y=1.0,
                xref="paper",
                yref="paper",
                yanchor="bottom",
                text=_gap_label(previous, current, seconds),
                showarrow=False,
                font={"size": 11, "color": "#5b6478"},
            )
    fig.update_yaxes(
        tickvals=list(range(len(rows))),
        ticktext=labels,
        autorange="reversed",
        showgrid=False,
        row=1,
        col=1,
    )
    _base_layout(fig, height=ROW_PX * len(rows) + 110)
    fig.add_annotation(
        text="ms since the operation started · idle time cut out",
        xref="paper",
        yref="paper",
        x=0.5,
        y=0,
        yshift=-44,
        showarrow=False,
        font={"size": 12, "color": "#5b6478"},
    )
    fig.update_layout(
        barmode="overlay",
        bargap=0.3,
        showlegend=False,
        margin={"l": 10, "r": 30, "t": 34, "b": 60},
    )
    return fig


def bar_chart(
    values: Mapping[str, float], *, title: str, unit: str, colors: Mapping[str, str] | None = None
) -> go.Figure:
    """A small bar chart of ``values`` (e.g. a counter's totals by outcome)."""
    if not values:
        return empty_figure(f"{title}: nothing recorded yet")
    keys = sorted(values)
    fig = go.Figure(
        go.Bar(
            x=keys,
            y=[values[k] for k in keys],
            marker={
                "color": [
                    (colors or {}).get(k, PALETTE[i % len(PALETTE)]) for i, k in enumerate(keys)
                ]
            },
            text=[f"{values[k]:g}" for k in keys],
            width=[0.45] * len(keys),
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{y:g} " + escape(unit) + "<extra></extra>",
        )
    )
    _base_layout(fig, height=220, title=title)
    fig.update_yaxes(title={"text": unit}, gridcolor="#eef0f4", rangemode="tozero")
    _integer_ticks(fig, max(values.values()))
    return fig


def histogram_chart(
    bounds_s: Sequence[float], counts: Mapping[str, Sequence[int]], *, title: str
) -> go.Figure:
    """Stacked bucket counts of a duration histogram (bounds in seconds, shown in ms)."""
    if not counts:
        return empty_figure(f"{title}: nothing recorded yet")
    labels = [f"≤{b * 1000:g}" for b in bounds_s] + [f">{bounds_s[-1] * 1000:g}"]
    last = max((i for series in counts.values() for i, c in enumerate(series) if c), default=0)
    keep = slice(0, min(len(labels), last + 2))
    fig = go.Figure()
    for i, (key, series) in enumerate(sorted(counts.items())):
        fig.add_trace(
            go.Bar(
                x=labels[keep],
                y=list(series)[keep],
                name=key,
                marker={"color": PALETTE[i % len(PALETTE)]},
                hovertemplate=f"{escape(key)} %{{x}} ms: %{{y}} requests<extra></extra>",
            )
        )
    _base_layout(fig, height=220, title=title)
    fig.update_layout(
        barmode="stack",
        legend={"x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
    )
    fig.update_xaxes(type="category", tickangle=0, title={"text": "duration bucket (ms)"})
    fig.update_yaxes(title={"text": "requests"}, gridcolor="#eef0f4", rangemode="tozero")
    _integer_ticks(fig, max(sum(column) for column in zip(*counts.values(), strict=False)))
    return fig


def _integer_ticks(fig: go.Figure, largest: float) -> None:
    """Whole-number ticks for small counts (no 0.5 logins)."""
    if largest <= 6:
        fig.update_yaxes(dtick=1, tickformat="d")
