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
@click.option("--max-request-mb", default=64, show_default=True, type=click.IntRange(1, 4096),
              help="Refuse larger requests (413) before reading them.")
@click.option("--api-workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="API processes (SQLite in WAL mode serves them all); the training worker is always one.")
@click.option("--executor", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="Where jobs train: in the worker process, or as Ray tasks with the policy's `resources` "
                   "(pip install 'tasksafe[ray]'; the state dir must be on storage the Ray workers share).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="With --executor ray: the cluster to join; without it a local Ray instance is started.")
def serve(host: str, port: int, state_dir: str, policy_file: str | None, max_request_mb: int, api_workers: int,
          executor: str, ray_address: str | None) -> None:
    """Run the provider gateway: an OpenAI-compatible fine-tuning API (/v1/files,
    /v1/fine_tuning/jobs, /v1/models) that validates and audits every uploaded file, protects
    every job, trains it and releases the model only past a safety gate. Create keys with
    `tasksafe keys create TENANT`. Jobs survive a restart (docs/gateway.md)."""
    from tasksafe.errors import require

    require("fastapi", "gateway")  # first: without the gateway extra, one line naming it
    require("uvicorn", "gateway")
    import subprocess
    import sys

    import uvicorn

    from tasksafe.gateway.app import create_app
    from tasksafe.gateway.worker import Policy, _die_with_parent
    from tasksafe.settings import load_settings

    policy = load_settings(Policy, policy_file)
    missing = policy.missing_data()
    if missing:  # found at start by the provider, never by a customer's job
        raise click.ClickException("the policy needs data this machine does not have (set TASKSAFE_DATA_DIR to "
                                   "a folder with it; docs/data.md):\n  "
                                   + "\n  ".join(missing))
    click.echo(f"tasksafe gateway: state {state_dir}; models {', '.join(policy.models)}; protection "
               f"{policy.protect} ({policy.mitigation}, {policy.fraction:.0%}); training on {executor}; "
               f"listening on http://{host}:{port}/v1", err=True)
    app = create_app(state_dir, policy, worker=False, max_request_bytes=max_request_mb * 2**20)
    # the worker is its own process, so training never holds up the API; it dies with the server
    if ray_address and executor != "ray":
        raise click.UsageError("--ray-address is for --executor ray")
    worker = subprocess.Popen([sys.executable, "-m", "tasksafe.gateway.worker", state_dir, policy_file or "", executor,
                               ray_address or ""], preexec_fn=_die_with_parent)
    try:
        if api_workers == 1:
            uvicorn.run(app, host=host, port=port, log_level="info")  # a line per request
        else:
            import os

            os.environ.update({"TASKSAFE_GATEWAY_STATE": state_dir, "TASKSAFE_GATEWAY_POLICY": policy_file or "",
                               "TASKSAFE_GATEWAY_MAX_BYTES": str(max_request_mb * 2**20)})
            uvicorn.run("tasksafe.gateway.app:app_from_env", factory=True, workers=api_workers, host=host, port=port,
                        log_level="info")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()


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


@keys.command("list")
@STATE_DIR
def list_keys(state_dir: str) -> None:
    """Every API key: its id (the start of its hash; the key itself is never stored), tenant and
    creation time."""
    from tasksafe.gateway.state import State
    from tasksafe.gateway.views import when

    found = State(state_dir).list_keys()
    if not found:
        click.echo("no keys (create one with `tasksafe keys create TENANT`)")
    for key in found:
        click.echo(f"{key['id']}  {key['tenant']:<24} created {when(key['created_at'])}")


@keys.command("revoke")
@click.argument("key_id", required=False)
@click.option("--tenant", default=None, help="Revoke every key of this tenant instead.")
@STATE_DIR
def revoke_key(key_id: str | None, tenant: str | None, state_dir: str) -> None:
    """Revoke the key KEY_ID (from `tasksafe keys list`), or every key of --tenant. Requests with
    a revoked key are refused at once; the tenant's files, jobs and models stay."""
    from tasksafe.gateway.state import State

    if bool(key_id) == bool(tenant):
        raise click.UsageError("give a KEY_ID or --tenant, not both")
    gone = State(state_dir).revoke_keys(key_id, tenant)
    if not gone:
        raise click.ClickException(f"no key {key_id!r}" if key_id else f"tenant {tenant!r} has no keys")
    click.echo(f"revoked {gone} key(s)")
