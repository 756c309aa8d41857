"""Each function imports with what a deployed one has, the layer's requirements, and nothing heavy it does not
use: not CEL's own CLI (typer, rich, prompt_toolkit), not firebase-admin (only deliver sends, and it imports
firebase-admin at its first send). Each leaves the garbage collector on, with what its import made frozen."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from engage.local.bench import _PROBE_ENV, REPO, layer_python

FUNCTIONS = sorted(d.name for d in (REPO / "functions").iterdir() if (d / "app.py").exists())
PROBE = """
import gc, json, runpy, sys
runpy.run_path(sys.argv[1], run_name="app")
heavy = sorted(m for m in ("cel.cli", "typer", "rich", "prompt_toolkit", "firebase_admin") if m in sys.modules)
print(json.dumps({"heavy": heavy, "gc_on": gc.isenabled(), "frozen": gc.get_freeze_count() > 0}))
"""


@pytest.fixture
def _stack() -> None:
    """No DynamoDB Local needed here (overrides the integration conftest's autouse fixture)."""


@pytest.fixture(scope="module")
def python():
    return layer_python()  # a virtualenv holding exactly layers/engage/requirements.txt (cached by its digest)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_imports_with_the_layers_requirements_and_nothing_heavy_it_does_not_use(python, function):
    env = {"PATH": os.environ["PATH"], **_PROBE_ENV, "PYTHONPATH": str(REPO / "layers/engage"),
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip

    ran = subprocess.run([str(python), "-c", PROBE, str(REPO / "functions" / function / "app.py")],
                         env=env, capture_output=True, text=True, cwd=REPO / "functions" / function)  # fmt: skip

    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout.splitlines()[-1]) == {"heavy": [], "gc_on": True, "frozen": True}
