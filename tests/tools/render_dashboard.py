"""Draws the CloudWatch dashboard of template.yaml as an SVG, with sample data, for the docs.

The picture in docs/operations.md is this script's output (docs/images/dashboard.svg), so
that what users see before they deploy is the dashboard the template creates: every widget at
its grid position and size, its title, its lines with their labels and axes, hidden helper
metrics left out, expressions drawn from the metric they compute on, and the horizontal
annotations (the timeouts). Only the numbers are made up: each line gets a plausible,
deterministic series (a backfill that settles, runs well under the timeout, failures that
are rare), so the output is byte-for-byte the same on every machine and a template change
shows up as a changed picture. tests/tools/test_template.py fails when the committed picture
differs from a fresh render.

Usage: python tests/tools/render_dashboard.py [--check]
       (writes docs/images/dashboard.svg; --check only compares; needs PyYAML, as
       tests/.venv and tests/.venv-sam have)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
OUTPUT = REPO / "docs" / "images" / "dashboard.svg"
STACK = "cdf-s3-replicator"
REGION = "eu-west-1"

# Grid: CloudWatch dashboards are 24 columns wide; one row unit is about a third of a column.
COLUMN = 50
ROW = 34
GAP = 6
MARGIN = 10
FONT = "Helvetica, Arial, sans-serif"
# CloudWatch's default line colours, in order.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
HOURS = 24


# --------------------------------------------------------------------------- the template
class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Sub, !Ref, !If, ...) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    name = "Ref" if suffix == "Ref" else ("Fn::GetAtt" if suffix == "GetAtt" else f"Fn::{suffix}")
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=TemplateLoader)  # noqa: S506


def sample_value(template: dict, name: str) -> str:
    """What a `${name}` of the dashboard body shows for a stack deployed with the defaults."""
    if name == "AWS::StackName":
        return STACK
    if name == "AWS::Region":
        return REGION
    parameters = template.get("Parameters", {})
    if name in parameters:
        return str(parameters[name].get("Default", name))
    logical, _, attribute = name.partition(".")
    if attribute == "Arn":  # alarms: the widget shows their names
        return f"{STACK}-{logical}"
    return f"{STACK}-{logical}"


def dashboard(template: dict) -> dict:
    """The dashboard body as CloudFormation would store it for a default stack."""
    body = template["Resources"]["ReplicationDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    resolved = re.sub(r"\$\{([^}]+)\}", lambda m: sample_value(template, m.group(1)), body)
    return json.loads(resolved)


# --------------------------------------------------------------------------- sample data
def _noise(key: str, count: int) -> list[float]:
    """`count` numbers in [0, 1), the same for the same key on every machine."""
    out: list[float] = []
    block = 0
    while len(out) < count:
        digest = hashlib.sha256(f"{key}/{block}".encode()).digest()
        out.extend(int.from_bytes(digest[i:i + 4], "big") / 2**32 for i in range(0, 32, 4))
        block += 1
    return out[:count]


def _settling(count: int, start: float, end: float, noise: list[float], spread: float) -> list[float]:
    """A backfill in the first hours, then steady values with some spread."""
    settle = max(1, count // 6)
    values = []
    for i in range(count):
        base = start if i < settle else end
        values.append(base * (1 - spread + 2 * spread * noise[i]))
    return values


def _rare(count: int, noise: list[float], every: int, height: float) -> list[float]:
    """Mostly zero, with an occasional small value."""
    return [height * (1 + (i % 2)) if noise[i] < 1 / every else 0.0 for i in range(count)]


def sample_series(namespace: str, metric: str, function: str, stat: str, period: int,
                  timeout_ms: dict[str, float]) -> list[float]:
    """A plausible series for one metric line, one value per period over 24 hours."""
    count = HOURS * 3600 // period
    noise = _noise(f"{namespace}/{metric}/{function}/{stat}/{period}", count)
    sync = "Sync" in function
    runs_per_period = max(1.0, period / (900 if sync else 3600))
    if namespace == "AWS/Lambda":
        if metric == "Invocations":
            return [runs_per_period if period >= (900 if sync else 3600) else float(i % 4 == 0)
                    for i in range(count)]
        if metric == "Duration":
            limit = timeout_ms["sync" if sync else "snapshot"]
            return _settling(count, 0.93 * limit, 0.3 * limit, noise, 0.25)
        if metric == "Throttles":
            return _rare(count, noise, 30, 1.0)
        return [0.0] * count
    if metric in ("RunDuration", "MaintenanceDuration"):
        limit = timeout_ms["sync" if sync else "snapshot"]
        share = 0.9 if metric == "RunDuration" else 0.12
        return _settling(count, share * limit, share * limit * 0.3, noise, 0.25)
    if metric in ("Rows",):
        scale = 1.0 if stat == "Average" else 1.6
        return _settling(count, 480_000 * scale, 6_000 * scale, noise, 0.4)
    if metric in ("Bytes", "BytesCompacted"):
        return _settling(count, 95e6, 1.4e6, noise, 0.4)
    if metric in ("Commits", "Files", "FilesCompacted", "Checkpoints", "FilesVacuumed"):
        return _settling(count, 24, 4, noise, 0.5)
    if metric in ("StreamsTotal", "ViewsTotal", "TablesMaintained"):
        return [16.0] * count
    if metric == "StreamsCaughtUp":
        return [0.0 if i < count // 6 else 16.0 for i in range(count)]
    if metric == "StreamsBehind":
        return [16.0 if i < count // 6 else 0.0 for i in range(count)]
    if metric == "Lag":
        return _settling(count, 7_200_000, 600_000, noise, 0.5)
    if metric == "VerifyLagMax":
        return _settling(count, 3_600_000, 900_000, noise, 0.5)
    if metric == "VerifySampled":
        return [200.0] * count
    if metric in ("FilesUnchanged",):
        return [28.0 if i >= count // 6 else 10.0 for i in range(count)]
    if metric in ("FilesMerged",):
        return [4.0 if i >= count // 6 else 0.0 for i in range(count)]
    if metric in ("FilesRebuilt",):
        return [32.0 if i < count // 6 else 0.0 for i in range(count)]
    if metric in ("FailuresRetryable", "StreamsSuperseded", "CursorResets", "MembershipRefreshed",
                  "TablesDeferred"):
        # What a healthy stack still sees now and then; none of it raises an alarm.
        return _rare(count, noise, 30, 1.0)
    # Errors, permanent failures, divergences, quarantine: none in a healthy stack, matching
    # the alarm widget's all-OK sample.
    return [0.0] * count


def _evaluate(expression: str, series: dict[str, list[float]]) -> list[float]:
    """The dashboard's expressions: `<id> / <number>` (milliseconds to minutes)."""
    match = re.fullmatch(r"\s*(\w+)\s*/\s*([0-9.]+)\s*", expression)
    if not match or match.group(1) not in series:
        raise ValueError(f"expression not drawn by this script: {expression!r}")
    divisor = float(match.group(2))
    return [v / divisor for v in series[match.group(1)]]


# --------------------------------------------------------------------------- drawing helpers
def _fmt(value: float) -> str:
    """Coordinates with one decimal: enough for a picture, identical on every platform."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _nice_max(value: float) -> float:
    """The smallest axis maximum of 4 equal, round steps (1, 2, 2.5 or 5 times 10^k) >= value."""
    if value <= 0:
        return 4.0
    quarter = value / 4
    exponent = math.floor(math.log10(quarter))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= quarter:
            return 4 * candidate
    return 4 * 10 ** (exponent + 1)


def _fit(text: str, width_px: float, size: float) -> str:
    """`text`, cut with an ellipsis where it would overflow `width_px` (estimated widths)."""
    per_line = max(4, int(width_px / (size * 0.56)))
    return text if len(text) <= per_line else text[: per_line - 1] + "…"


def _tick(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            number = value / limit
            return (f"{number:.1f}".rstrip("0").rstrip(".")) + suffix
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _wrap(text: str, width_px: float, size: float) -> list[str]:
    per_line = max(10, int(width_px / (size * 0.55)))
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > per_line:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines


def _text(x: float, y: float, text: str, size: float = 11, fill: str = "#16191f",
          weight: str = "normal", anchor: str = "start") -> str:
    return (f'<text x="{_fmt(x)}" y="{_fmt(y)}" font-size="{_fmt(size)}" fill="{fill}" '
            f'font-weight="{weight}" text-anchor="{anchor}">{escape(text)}</text>')


def _frame(x: float, y: float, w: float, h: float) -> str:
    return (f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(w)}" height="{_fmt(h)}" '
            'fill="#ffffff" stroke="#d5dbdb" rx="2"/>')


def _markdown_plain(markdown: str) -> str:
    return re.sub(r"\*\*|\*|`", "", markdown)


# --------------------------------------------------------------------------- widgets
def draw_text(widget: dict, x: float, y: float, w: float, h: float) -> list[str]:
    out = [_frame(x, y, w, h)]
    lines = _wrap(_markdown_plain(widget["properties"]["markdown"]), w - 20, 11)
    for i, line in enumerate(lines[: int((h - 10) // 15)]):
        out.append(_text(x + 10, y + 20 + 15 * i, line))
    return out


def draw_alarms(widget: dict, x: float, y: float, w: float, h: float) -> list[str]:
    props = widget["properties"]
    out = [_frame(x, y, w, h), _text(x + 10, y + 18, _fit(props.get("title", ""), w - 20, 12), 12,
                                    weight="bold")]
    for i, alarm in enumerate(props["alarms"]):
        row_y = y + 40 + 24 * i
        if row_y > y + h - 8:
            break
        out.append(f'<rect x="{_fmt(x + 10)}" y="{_fmt(row_y - 11)}" width="34" height="15" '
                   'rx="2" fill="#1d8102"/>')
        out.append(_text(x + 27, row_y, "OK", 9, "#ffffff", "bold", "middle"))
        out.append(_text(x + 52, row_y, alarm, 11))
    return out


def draw_metric(widget: dict, x: float, y: float, w: float, h: float,
                timeout_ms: dict[str, float]) -> list[str]:
    props = widget["properties"]
    period = int(props.get("period", 300))
    series: dict[str, list[float]] = {}
    lines: list[tuple[str, str, list[float]]] = []  # label, axis, values
    pending: list[tuple[dict, str]] = []
    for entry in props["metrics"]:
        options = entry[-1] if isinstance(entry[-1], dict) else {}
        if "expression" in options:
            pending.append((options, options.get("yAxis", "left")))
            lines.append((options.get("label", options["expression"]), options.get("yAxis", "left"), []))
            continue
        namespace, metric, _dimension, function = entry[:4]
        values = sample_series(namespace, metric, function, options.get("stat", "Average"),
                               int(options.get("period", period)), timeout_ms)
        if "id" in options:
            series[options["id"]] = values
        if options.get("visible", True):
            lines.append((options.get("label", metric), options.get("yAxis", "left"), values))
    for options, _axis in pending:
        label = options.get("label", options["expression"])
        index = next(i for i, line in enumerate(lines) if line[0] == label and not line[2])
        lines[index] = (label, lines[index][1], _evaluate(options["expression"], series))

    annotations = props.get("annotations", {}).get("horizontal", [])
    legend_rows = math.ceil(len(lines) / max(1, int((w - 20) // 150)))
    plot_left, plot_right = x + 46, x + w - (46 if any(a == "right" for _, a, _ in lines) else 14)
    plot_top, plot_bottom = y + 34, y + h - 26 - 14 * legend_rows
    out = [_frame(x, y, w, h), _text(x + 10, y + 18, _fit(props.get("title", ""), w - 20, 12), 12,
                                    weight="bold")]

    axis_max = {}
    for axis in ("left", "right"):
        values = [v for _, a, vs in lines if a == axis for v in vs]
        if axis == "left":
            values += [float(a["value"]) for a in annotations]
        axis_max[axis] = _nice_max(max(values) * 1.05) if values else 1.0

    for step in range(5):  # grid and ticks
        level = plot_bottom - (plot_bottom - plot_top) * step / 4
        out.append(f'<line x1="{_fmt(plot_left)}" y1="{_fmt(level)}" x2="{_fmt(plot_right)}" '
                   f'y2="{_fmt(level)}" stroke="#eaeded"/>')
        out.append(_text(plot_left - 4, level + 3, _tick(axis_max["left"] * step / 4), 9,
                         "#545b64", anchor="end"))
        if any(a == "right" for _, a, _ in lines):
            out.append(_text(plot_right + 4, level + 3, _tick(axis_max["right"] * step / 4), 9,
                             "#545b64"))
    y_label = props.get("yAxis", {}).get("left", {}).get("label")
    if y_label:
        out.append(_text(x + 10, plot_top - 4, y_label, 9, "#545b64"))
    for hour in range(0, HOURS + 1, 6):  # time axis: the last 24 hours
        tx = plot_left + (plot_right - plot_left) * hour / HOURS
        label = "now" if hour == HOURS else f"-{HOURS - hour}h"
        out.append(_text(tx, plot_bottom + 12, label, 9, "#545b64", anchor="middle"))

    for i, (_label, axis, values) in enumerate(lines):
        if not values:
            continue
        colour = PALETTE[i % len(PALETTE)]
        step_x = (plot_right - plot_left) / max(1, len(values) - 1)
        points = " ".join(
            f"{_fmt(plot_left + step_x * j)},"
            f"{_fmt(plot_bottom - (plot_bottom - plot_top) * min(v, axis_max[axis]) / axis_max[axis])}"
            for j, v in enumerate(values))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                   'stroke-width="1.5"/>')
    for annotation in annotations:
        level = plot_bottom - (plot_bottom - plot_top) * float(annotation["value"]) / axis_max["left"]
        out.append(f'<line x1="{_fmt(plot_left)}" y1="{_fmt(level)}" x2="{_fmt(plot_right)}" '
                   f'y2="{_fmt(level)}" stroke="#d13212" stroke-dasharray="5,3"/>')
        out.append(_text(plot_right - 4, level - 4, annotation.get("label", ""), 9, "#d13212",
                         anchor="end"))

    per_row = max(1, int((w - 20) // 150))
    for i, (label, axis, _values) in enumerate(lines):
        lx = x + 10 + 150 * (i % per_row)
        ly = plot_bottom + 28 + 14 * (i // per_row)
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{_fmt(lx)}" y="{_fmt(ly - 7)}" width="10" height="3" fill="{colour}"/>')
        suffix = " (right)" if axis == "right" else ""
        shown = label + suffix
        out.append(_text(lx + 14, ly - 3, shown if len(shown) <= 26 else shown[:25] + "…", 9))
    return out


# --------------------------------------------------------------------------- the picture
def render(template: dict | None = None) -> str:
    template = template or load_template()
    body = dashboard(template)
    parameters = template.get("Parameters", {})
    timeout_ms = {
        "sync": float(parameters["SyncTimeoutSeconds"]["Default"]) * 1000,
        "snapshot": float(parameters["SnapshotTimeoutSeconds"]["Default"]) * 1000,
    }
    widgets = body["widgets"]
    rows = max(w["y"] + w["height"] for w in widgets)
    width = MARGIN * 2 + 24 * COLUMN
    height = MARGIN * 2 + rows * ROW + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}">',
        f'<rect width="{width}" height="{height}" fill="#f2f3f3"/>',
        _text(MARGIN, MARGIN + 14, f"{STACK}-replication (sample data, last {HOURS} hours)", 13,
              weight="bold"),
    ]
    for widget in widgets:
        wx = MARGIN + widget["x"] * COLUMN + GAP / 2
        wy = MARGIN + 30 + widget["y"] * ROW + GAP / 2
        ww = widget["width"] * COLUMN - GAP
        wh = widget["height"] * ROW - GAP
        kind = widget["type"]
        if kind == "text":
            out += draw_text(widget, wx, wy, ww, wh)
        elif kind == "alarm":
            out += draw_alarms(widget, wx, wy, ww, wh)
        elif kind == "metric":
            out += draw_metric(widget, wx, wy, ww, wh, timeout_ms)
        else:
            raise ValueError(f"widget type not drawn by this script: {kind}")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Draws the template's dashboard as an SVG")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when {OUTPUT.relative_to(REPO)} differs from a fresh render")
    args = parser.parse_args()
    svg = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != svg:
            print(f"{OUTPUT.relative_to(REPO)} is out of date: run tests/tools/render_dashboard.py",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(svg, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
