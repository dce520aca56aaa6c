"""``teeflow model export FILE --out DIR``: a model you hold, in a format other tools load.

Runs on your machine, on a model file you decrypted (``teeflow task output TASK model --out
FILE``): LR / MLP table models and CNN / ResNet-18 image models become PaddlePaddle inference
models (``paddle.jit.save``, preprocessing inside the graph); GBDT models become LightGBM text
models. ``features.json`` beside them gives the input order and statistics; docs/model-format.md
describes both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from teeflow.cli._output import emit, fail
from teeflow.cli._session import JsonOut

__all__ = ["app"]

app = typer.Typer(help="Models you hold in plaintext.", no_args_is_help=True)


@app.command()
def export(
    file: Annotated[
        Path, typer.Argument(help="A teeflow model file (decrypted output).", dir_okay=False)
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory to write to.", file_okay=False)],
    as_json: JsonOut = False,
) -> None:
    """Export FILE to DIR: Paddle inference format (LightGBM text for gbdt), plus
    features.json."""
    from teeflow.client import ClientError
    from teeflow.client._models import export_model

    if not file.is_file():
        fail(f"{file} is not a readable file")
    try:
        result = export_model(file.read_bytes(), out)
    except ClientError as exc:
        fail(str(exc))
    emit(
        {
            "format": result["format"],
            "model": result["model"],
            "preprocessing_in_graph": result["preprocessing_in_graph"],
            "directory": str(out),
            "files": result["files"],
        },
        as_json=as_json,
        title="Model exported",
    )
