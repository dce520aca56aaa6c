"""The ``teeflow`` command: a thin front end over client/ and server/."""

from __future__ import annotations

import typer

from teeflow.cli import (
    account,
    attest,
    attest_trust,
    audit,
    console_cmd,
    dataset,
    demo,
    enclave,
    files,
    function,
    keys,
    member,
    model,
    server_cmd,
    task,
    task_outputs,
    task_report,
    tls_cmd,
)

app = typer.Typer(
    name="teeflow",
    help="Confidential deep learning: data usable but invisible.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys.app, name="keys")
app.add_typer(attest.app, name="attest")
app.add_typer(enclave.app, name="enclave")
files.register(app)
attest_trust.register(attest.app)
app.add_typer(account.app, name="account")
app.add_typer(dataset.app, name="dataset")
app.add_typer(function.app, name="function")
app.add_typer(model.app, name="model")
task_report.register(task.app)
task_outputs.register(task.app)
app.add_typer(task.app, name="task")
app.add_typer(member.app, name="member")
app.add_typer(audit.app, name="audit")
app.add_typer(tls_cmd.app, name="tls")
server_cmd.register(app)
demo.register(app)
console_cmd.register(app)

if __name__ == "__main__":
    app()
