"""The `llmworks` command: the one table of stages. Each stage's own `cli.py` holds its commands.

Stage CLI modules import heavy libraries (torch, transformers, llama_cpp) inside their commands,
so `llmworks --help` stays fast.
"""

from __future__ import annotations

import sys

import typer

from llmworks import __version__
from llmworks.agent import cli as agent_cli
from llmworks.chat import cli as chat_cli
from llmworks.data import cli as data_cli
from llmworks.environment import configure_environment
from llmworks.errors import UserError
from llmworks.eval import cli as eval_cli
from llmworks.export import cli as export_cli
from llmworks.models import cli as models_cli
from llmworks.rag import cli as rag_cli
from llmworks.serve import cli as serve_cli
from llmworks.servebench import cli as bench_cli
from llmworks.train import cli as train_cli

app = typer.Typer(
    name="llmworks",
    help="Open-LLM toolkit: models, chat, data, train, serve, bench, eval, agent; more stages land here as they are built.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The one table of subcommands: name -> the stage's Typer app (sub-groups) or command function.
GROUPS: dict[str, typer.Typer] = {
    "models": models_cli.app,
    "data": data_cli.app,
    "train": train_cli.app,
    "export": export_cli.app,
    "bench": bench_cli.app,
    "eval": eval_cli.app,
    "agent": agent_cli.app,
    "rag": rag_cli.app,
}
COMMANDS = {
    "chat": chat_cli.chat,
    "generate": chat_cli.generate,
    "serve": serve_cli.serve,
}

for _name, _group in GROUPS.items():
    app.add_typer(_group, name=_name)
for _name, _fn in COMMANDS.items():
    app.command(_name)(_fn)
data_cli.synth_app.command("tool-calls")(
    agent_cli.synth_tool_calls
)  # it runs the agent's tools: above data, so not in data/
data_cli.app.command("demo")(agent_cli.data_demo)  # it runs the agent's tools too
models_cli.app.command("check")(
    chat_cli.models_check
)  # it runs a model: above the engines, so not in models/


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmworks {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """llmworks: data -> fine-tune -> export -> serve -> evaluate, offline, on a CPU."""


def main() -> None:
    configure_environment()
    try:
        app()
    except UserError as e:
        fix = f" {e.fix}" if e.fix else ""
        print(f"error: {e.problem}{fix}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
