"""``echo``: copy every input slot to the output slot of the same name (a platform self-test)."""

from __future__ import annotations

from teeflow.functions.api import Context, FunctionError

__all__ = ["run"]


def run(ctx: Context) -> None:
    """Write input ``X`` to output ``X``, byte for byte; every input needs a matching output."""
    missing = sorted(set(ctx.inputs) - set(ctx.outputs))
    if missing:
        raise FunctionError(
            f"echo needs an output slot for each input; add output slots {', '.join(missing)}"
        )
    extra = sorted(set(ctx.outputs) - set(ctx.inputs))
    if extra:
        raise FunctionError(f"echo has no input for output slots {', '.join(extra)}")
    for slot, data in ctx.inputs.items():
        ctx.outputs[slot].write(data.read_bytes())
    ctx.progress(step=1, of=1)
