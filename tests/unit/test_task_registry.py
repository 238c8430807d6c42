"""The task registry is closed: every task in ``backends.tasks.TASKS`` has a local runner or
the reason it has none (``backends.local.tasks.RUNNERS``), a renderer for its output kind
(``components.tasks.RENDERERS``) and a preset (``presets/tasks.yaml``), and no table names a
task that does not exist.

Each check is a function returning what is missing, run on the real tables (nothing may be
missing) and on copies with one entry dropped (the drop must be reported), so no check can
pass on a table that lost an entry.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import get_args

import pytest

from backends.local.tasks import RUNNERS, NoRunner, Runner
from backends.tasks import TASKS, Output, TaskSpec
from components.tasks import RENDERERS
from presets import load_task_presets

PRESETS = load_task_presets()  # the project's loader, reading presets/tasks.yaml afresh


def missing_runners(tasks: Mapping[str, TaskSpec], runners: Mapping[str, object]) -> list[str]:
    """Tasks with neither a ``Runner`` nor a ``NoRunner`` with a reason."""
    missing = []
    for name in tasks:
        entry = runners.get(name)
        stated = isinstance(entry, NoRunner) and entry.reason.strip()
        if not (isinstance(entry, Runner) or stated):
            missing.append(name)
    return missing


def stray_keys(tasks: Mapping[str, TaskSpec], table: Mapping[str, object]) -> list[str]:
    """Keys of ``table`` that are not tasks."""
    return sorted(set(table) - set(tasks))


def missing_renderers(tasks: Mapping[str, TaskSpec], renderers: Mapping[str, object]) -> list[str]:
    """Tasks whose output kind has no renderer."""
    return [name for name, spec in tasks.items() if not callable(renderers.get(spec.output))]


def missing_presets(tasks: Mapping[str, TaskSpec], presets: Mapping[str, object]) -> list[str]:
    """Tasks without an entry in presets/tasks.yaml."""
    return [name for name in tasks if name not in presets]


def without(table: Mapping[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in table.items() if k != key}


# -- the real tables --------------------------------------------------------------------


def test_there_are_tasks():
    assert len(TASKS) >= 25  # the checks below must not pass on an empty registry


def test_every_task_has_a_local_runner_or_a_stated_reason():
    assert missing_runners(TASKS, RUNNERS) == []


def test_runners_name_only_tasks():
    assert stray_keys(TASKS, RUNNERS) == []


def test_every_output_kind_has_a_renderer():
    assert missing_renderers(TASKS, RENDERERS) == []
    assert set(RENDERERS) == set(get_args(Output)), "a renderer per Output kind, no other"


def test_every_task_has_a_preset():
    assert missing_presets(TASKS, PRESETS) == []
    assert stray_keys(TASKS, PRESETS) == []


# -- a table that lost an entry is caught -----------------------------------------------


@pytest.mark.parametrize("name", list(TASKS))
def test_a_lost_runner_is_caught(name):
    assert name in missing_runners(TASKS, without(RUNNERS, name))


@pytest.mark.parametrize("name", [n for n, e in RUNNERS.items() if isinstance(e, NoRunner)])
def test_a_reason_left_empty_is_caught(name):
    assert name in missing_runners(TASKS, {**RUNNERS, name: NoRunner(" ")})


def test_a_runner_for_no_task_is_caught():
    stray = {**RUNNERS, "no_such_task": NoRunner("not a task")}
    assert "no_such_task" in stray_keys(TASKS, stray)


@pytest.mark.parametrize("kind", sorted({spec.output for spec in TASKS.values()}))
def test_a_lost_renderer_is_caught(kind):
    users = [name for name, spec in TASKS.items() if spec.output == kind]
    assert users and set(users) <= set(missing_renderers(TASKS, without(RENDERERS, kind)))


@pytest.mark.parametrize("name", list(TASKS))
def test_a_lost_preset_is_caught(name):
    assert name in missing_presets(TASKS, without(PRESETS, name))


# -- the package's imports go one way ---------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[2] / "backends" / "local" / "tasks"
# A module may import only modules of a lower rank (no cycles, none sideways).
RANKS = {
    "base": 0,
    "pipeline": 1,
    "direct": 1,
    "vision": 1,
    "embed": 1,
    "tabular": 1,
    "registry": 2,
    "local_tasks": 3,
    "__init__": 4,
}


def package_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "backends.local.tasks":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("backends.local.tasks."):
                found.add(node.module.rsplit(".", 1)[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("backends.local.tasks."):
                    found.add(alias.name.rsplit(".", 1)[1])
    return found


def test_every_module_of_the_package_is_ranked():
    assert {path.stem for path in PACKAGE.glob("*.py")} == set(RANKS)


@pytest.mark.parametrize("module", list(RANKS))
def test_imports_go_one_way(module):
    imported = package_imports(module)
    assert imported <= set(RANKS), f"{module} imports an unknown module: {imported - set(RANKS)}"
    upward = sorted(name for name in imported if RANKS[name] >= RANKS[module])
    assert not upward, f"{module} imports {upward} (same or higher rank: a cycle risk)"
