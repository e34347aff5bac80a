"""prefect.yaml, the one description of our deployments, and the settings that fill it in.

``prefect deploy`` reads the file; this module only reads it too (to check what the server holds
afterwards) and writes a copy with the values that come from settings: each deployment's
concurrency limit (``DP_DEPLOYMENT_CONCURRENCY``). String values that differ per machine stay Prefect
``{{ $VAR }}`` placeholders: ``DP_NIGHTLY_DIR`` is filled in when deploying, ``DP_REPO_DIR`` by the
worker when a run starts. Flow names are read from the flow files' source, so nothing here imports
a flow (and with it every step).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dp.settings import Settings, task_output_root
from deployments.supervisor import StackError

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO_ROOT / "prefect.yaml"


class PrefectFileError(StackError):
    """prefect.yaml is missing something the stack needs; the message says what."""


@dataclass(frozen=True)
class DeploymentSpec:
    flow_name: str  # the @flow's name, e.g. schema_workflow
    name: str  # the deployment's name, e.g. on-demand
    entrypoint: str  # path/to/file.py:function, relative to the repository

    @property
    def full_name(self) -> str:
        """``<flow name>/<deployment name>``, how Prefect's client and CLI address a deployment."""
        return f"{self.flow_name}/{self.name}"


def repo_dir(settings: Settings) -> Path:
    """The checkout flow runs start in (``DP_REPO_DIR``), by default the one this code is in."""
    return (settings.repo_dir or REPO_ROOT).expanduser().resolve()


def nightly_dir(settings: Settings) -> Path:
    """Task directory of the nightly refresh: the scheduled deployment's ``output_dir``."""
    return (settings.nightly_dir or task_output_root(settings) / "nightly").expanduser().resolve()


def load_prefect_file(path: Path = PREFECT_FILE) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrefectFileError(f"{path} not found; it declares the deployments") from None
    if not isinstance(document, dict) or not document.get("deployments"):
        raise PrefectFileError(f"{path} declares no deployments (expected a 'deployments:' list)")
    return document


def flows_in_file(path: Path) -> dict[str, str]:
    """``{function name: flow name}`` for every ``@flow``-decorated function of a Python file."""
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if getattr(target, "id", getattr(target, "attr", None)) != "flow":
                continue
            name = next((kw.value.value for kw in (call.keywords if call else [])
                         if kw.arg == "name" and isinstance(kw.value, ast.Constant)), node.name)
            found[node.name] = name
    return found


def deployment_specs(document: dict[str, Any], root: Path = REPO_ROOT) -> list[DeploymentSpec]:
    """The deployments a prefect.yaml declares, each with its flow's name read from the entrypoint."""
    specs = []
    for entry in document["deployments"]:
        entrypoint = entry.get("entrypoint", "")
        file_part, _, function = entrypoint.rpartition(":")
        if not file_part or not (root / file_part).is_file():
            raise PrefectFileError(f"deployment {entry.get('name')!r}: entrypoint {entrypoint!r} is not <file.py>:<flow function>")
        flows = flows_in_file(root / file_part)
        if function not in flows:
            raise PrefectFileError(f"deployment {entry.get('name')!r}: {function!r} is not a @flow in {file_part}")
        specs.append(DeploymentSpec(flow_name=flows[function], name=entry["name"], entrypoint=entrypoint))
    return specs


def render_prefect_file(settings: Settings, destination: Path, source: Path = PREFECT_FILE) -> Path:
    """Write prefect.yaml with the concurrency limit from settings; returns ``destination``."""
    document = load_prefect_file(source)
    for entry in document["deployments"]:
        limit = entry.get("concurrency_limit")
        if not isinstance(limit, dict):
            raise PrefectFileError(
                f"deployment {entry.get('name')!r} needs a concurrency_limit mapping (limit, collision_strategy)"
            )
        limit["limit"] = settings.deployment_concurrency
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return destination
