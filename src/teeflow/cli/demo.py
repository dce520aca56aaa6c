"""``teeflow demo``: run the multi-party scenarios on a local simulated platform."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from teeflow.cli._output import fail


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        scenario: Annotated[str, typer.Option(help="medical, credit or all")] = "all",
        data_dir: Annotated[
            Path | None, typer.Option(help="platform data directory (default: a new temp dir)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    ) -> None:
        """Start a local platform, create the members, run the scenarios, show who saw what."""
        from teeflow.demo import run_demo

        err = Console(stderr=True)
        try:
            report = run_demo(
                scenario=scenario,
                data_dir=data_dir,
                say=(lambda _m: None) if as_json else (lambda m: err.print(m, highlight=False)),
            )
        except (RuntimeError, ValueError) as exc:
            fail(str(exc))
        data = report.to_dict()
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        console = Console()
        console.print("[bold red]SIMULATED TEE[/]: every check is real, no hardware protection")
        table = Table(title="Who saw what", title_justify="left")
        for column in ("task", "output", "readable by", "refused to", "operator"):
            table.add_column(column)
        for row in data["who_saw_what"]:
            readable = ", ".join(row["readable_by"]) or (
                f"nobody: joint output of {', '.join(row['joint_owners'])}, stays in the enclave"
                if row["joint_owners"]
                else "nobody"
            )
            table.add_row(
                row["task"], row["output"], readable, ", ".join(row["refused_to"]), row["operator"]
            )
        console.print(table)
        console.print_json(json.dumps(data["results"]))
        console.print(f"platform data (ciphertext, audit log, logs): {data['data_dir']}")
