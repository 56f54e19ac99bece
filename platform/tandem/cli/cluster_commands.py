"""``tandem up / down / status / env``: the embedded cluster's life cycle.

Not to be confused with Ray's ``ray up / ray down cluster.yaml``, which launch and
tear down a real multi-machine cluster; ``tandem status`` describes either."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from tandem.cli.app import app, client, console

if TYPE_CHECKING:
    from tandem.sdk import ClusterStatus


@app.command()
def up(
    no_pin: bool = typer.Option(
        False, "--no-pin", help="Let every pool use every core (for comparisons only)."
    ),
    work_conserving: bool = typer.Option(
        False,
        "--work-conserving",
        help="Let training also run on the serve cores, in the idle scheduling class "
        "(more training throughput, a longer serving tail: see docs/performance.md).",
    ),
) -> None:
    """Start the embedded single-machine cluster (not Ray's `ray up`).

    One Ray node per pool, each pinned to its cores, state under TANDEM_HOME. A real
    multi-machine cluster starts with Ray's own `ray up cluster.yaml` instead.
    """
    state = client().up(pinned=not no_pin, work_conserving=work_conserving)
    console.print(f"embedded cluster up: GCS {state.gcs_address}, dashboard {state.dashboard_url}")
    for name, cores in state.cores.items():
        gpus = state.gpus.get(name)
        shown = f", GPUs {','.join(gpus)}" if gpus else ""
        borrowed = state.borrowed_cores.get(name)
        shown += f", and {borrowed} while serving leaves them idle" if borrowed else ""
        console.print(f"  {name:<6} cores {cores}{shown}")
    console.print('Use Ray\'s own CLIs against it with: eval "$(tandem env)"')


@app.command()
def down() -> None:
    """Stop the embedded single-machine cluster (not Ray's `ray down`).

    Only the processes of TANDEM_HOME's cluster; never touches other Ray clusters. A
    cluster from `ray up cluster.yaml` stops with `ray down cluster.yaml`.
    """
    home = client().settings.home
    if client().down():
        console.print(f"stopped the cluster under {home}")
    else:
        console.print(f"no cluster was running under {home}")


def show_status(status: ClusterStatus) -> None:
    table = Table(title=f"Ray cluster at {status.address}")
    for column in (
        "pool",
        "node",
        "alive",
        "cores",
        "GPUs",
        "resources (available/total)",
        "running",
    ):
        table.add_column(column)
    for node in status.nodes:
        resources = ", ".join(
            f"{name} {node.available.get(name, 0):g}/{total:g}"
            for name, total in sorted(node.resources.items())
        )
        running = ", ".join(f"{name}×{count}" for name, count in sorted(node.running.items()))
        table.add_row(
            node.pool,
            node.node_id[:8],
            "yes" if node.alive else "no",
            ",".join(map(str, node.cores)) or "-",
            node.gpu_summary(),
            resources,
            running or "-",
        )
    console.print(table)


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show nodes, pools, their resources and what runs on them.

    The embedded cluster, or the one RAY_ADDRESS names.
    """
    result = client().status()
    if as_json:
        console.print_json(json.dumps(asdict(result)))
    else:
        show_status(result)


@app.command()
def env() -> None:
    """Print exports that point Ray's own CLIs at the embedded cluster.

    For `ray job submit`, `serve deploy`, `ray status`; tandem commands keep treating the
    cluster as the embedded one.
    """
    for name, value in client().env().items():
        print(f"export {name}={shlex.quote(value)}")
