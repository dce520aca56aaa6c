"""A task's results as one self-contained HTML file (embedded SVG) or PNG files, for a member
without the console (``teeflow task report``). Built from outputs already decrypted here."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from teeflow.console.plots import Picture, metric_pictures, metric_summary, training_picture

__all__ = ["report_html", "report_pictures", "write_pngs"]


def report_pictures(
    metrics: Mapping[str, Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]] = (),
    *,
    fmt: str = "svg",
) -> list[tuple[str, Picture]]:
    """(slot, picture) for every metrics output, then the training curve from progress events."""
    out = [
        (slot, p) for slot, doc in sorted(metrics.items()) for p in metric_pictures(doc, fmt=fmt)
    ]
    curve = training_picture([e for e in events if e.get("kind") == "progress"], fmt=fmt)
    if curve is not None:
        out.append(("progress", curve))
    return out


def report_html(
    task: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]] = (),
) -> str:
    """One HTML page: the task, each metrics output's headline numbers and pictures (inline
    SVG), and the training curve. Every string from the task is escaped."""
    e = html.escape
    contract = task["contract"]
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>teeflow report {e(str(task['id']))}</title>",
        "<style>body{font:15px system-ui,sans-serif;max-width:1100px;margin:1rem auto;"
        "padding:0 1rem}figure{display:inline-block;margin:.5rem;vertical-align:top}"
        "figure svg{max-width:100%;height:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}</style>",
        f"<h1>Task {e(str(task['id']))}: {e(str(contract['function']['name']))}</h1>",
        f"<p>status <b>{e(str(task['status']))}</b> · contract hash "
        f"<code>{e(str(task['contract_hash']))}</code> · enclave "
        f"{e(str(contract['executor']['tee']))}"
        + (" <b>SIMULATED</b>" if contract["executor"]["tee"] == "sim" else "")
        + "</p>",
    ]
    pictures = report_pictures(metrics, events)
    for slot, doc in sorted(metrics.items()):
        summary = metric_summary(doc)
        parts.append(f"<h2>{e(slot)}</h2>")
        if summary:
            rows = "".join(
                f"<tr><th>{e(k)}</th><td>{e(json.dumps(v))}</td></tr>" for k, v in summary.items()
            )
            parts.append(f"<table>{rows}</table>")
        for owner, picture in pictures:
            if owner == slot:
                parts.append(_figure(picture))
    for owner, picture in pictures:
        if owner == "progress":
            parts.append("<h2>Training progress (decrypted events)</h2>" + _figure(picture))
    parts.append("</html>\n")
    return "\n".join(parts)


def _figure(picture: Picture) -> str:
    svg = picture.data.decode("utf-8")
    svg = svg[svg.find("<svg") :]  # drop the XML prolog and doctype inside HTML
    return f"<figure>{svg}<figcaption>{html.escape(picture.title)}</figcaption></figure>"


def write_pngs(
    directory: Path,
    metrics: Mapping[str, Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]] = (),
) -> list[Path]:
    """One PNG per picture, named ``SLOT-KEY.png``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for slot, picture in report_pictures(metrics, events, fmt="png"):
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{slot}-{picture.key}")
        path = directory / f"{name}.png"
        path.write_bytes(picture.data)
        written.append(path)
    return written
