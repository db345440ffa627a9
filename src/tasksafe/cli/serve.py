"""`tasksafe serve` and `tasksafe keys`: the provider gateway and its API keys."""

from __future__ import annotations

import click

STATE_DIR = click.option("--state-dir", default="gateway-state", show_default=True, type=click.Path(file_okay=False),
                         help="Where the gateway keeps its database and files.")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@STATE_DIR
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), default=None,
              help="YAML/JSON policy: allowed models, protection, budget, safety gate (docs/gateway.md).")
def serve(host: str, port: int, state_dir: str, policy_file: str | None) -> None:
    """Run the provider gateway: an OpenAI-compatible fine-tuning API (/v1/files,
    /v1/fine_tuning/jobs, /v1/models) that validates and audits every uploaded file, protects
    every job, trains it and releases the model only past a safety gate. Create keys with
    `tasksafe keys create TENANT`. Jobs survive a restart (docs/gateway.md)."""
    import uvicorn

    from tasksafe.gateway.app import create_app
    from tasksafe.gateway.worker import Policy
    from tasksafe.settings import load_settings

    policy = load_settings(Policy, policy_file)
    uvicorn.run(create_app(state_dir, policy), host=host, port=port, log_level="warning")


@click.group()
def keys() -> None:
    """The gateway's API keys (stored hashed; a key is shown once)."""


@keys.command("create")
@click.argument("tenant")
@STATE_DIR
def create_key(tenant: str, state_dir: str) -> None:
    """Create an API key for TENANT and print it."""
    from tasksafe.gateway.state import State

    click.echo(State(state_dir).create_key(tenant))
