"""A promotion or rollback killed (SIGKILL) at every step leaves a consistent alias.

A real process runs the swap and kills itself just before or just after the
N-th call of the primitives that write (file replace and fsync, deletes, the
server's metadata and alias calls), for N = 1, 2, ... until one run finishes.
After each kill, a fresh process sees the alias on the old or the new
collection, a history that agrees with it, the right rollback target, and the
same end state once the swap is run again.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from genai_assets.rag.blue_green import BlueGreenIndex
from genai_assets_tests.rag.engines import ENGINES, open_engine
from genai_assets_tests.rag.test_blue_green import V1, V2, V3, V4, make_collection

# The primitives each engine writes with; the killer wraps every one.
PRIMITIVES = {
    "edge": ["os:replace", "shutil:rmtree", "pathlib:Path.unlink"],
    "server-standin": [
        "qdrant_client:QdrantClient.update_collection",
        "qdrant_client:QdrantClient.update_collection_aliases",
        "qdrant_client:QdrantClient.delete_collection",
    ],
}

KILLER = textwrap.dedent(
    """
    import importlib, os, signal, sys
    from pathlib import Path
    from genai_assets.rag.blue_green import BlueGreenIndex
    from genai_assets_tests.rag.engines import open_engine

    engine, folder, action, kill_at = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    calls = 0

    def step():
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(function):
        def wrapped(*args, **kwargs):
            step()
            result = function(*args, **kwargs)
            step()
            return result
        return wrapped

    store = open_engine(engine, folder)
    for target in {primitives!r}[engine]:
        module_name, attribute = target.split(":")
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, wrap(getattr(owner, name)))
    index = BlueGreenIndex(store, "documents", keep_previous=1)
    if action == "promote":
        index.promote({v3!r}, reason="killed test")
    else:
        index.rollback(reason="killed test")
    store.close()
    """
)


def prepared(engine, folder):
    """V1 then V2 promoted (V2 live, V1 kept), V3 and V4 candidates."""
    store = open_engine(engine, folder)
    for name in (V1, V2, V3, V4):
        make_collection(store, name)
    index = BlueGreenIndex(store, "documents", keep_previous=1)
    index.promote(V1)
    index.promote(V2)
    store.close()


def state(engine, folder):
    store = open_engine(engine, folder)
    try:
        index = BlueGreenIndex(store, "documents", keep_previous=1)
        return index.live(), {v.name: v.status for v in index.versions()}
    finally:
        store.close()


def finish(engine, folder, action):
    """Run the swap again to its end in this process, as the next run would."""
    store = open_engine(engine, folder)
    try:
        index = BlueGreenIndex(store, "documents", keep_previous=1)
        if action == "promote":
            index.promote(V3)
        elif index.live() == V2:
            index.rollback()
        else:
            index.prune()
    finally:
        store.close()


def rollback_target(engine, folder):
    store = open_engine(engine, folder)
    try:
        return BlueGreenIndex(store, "documents").rollback().live
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_swap_killed_at_every_step_leaves_old_or_new(engine, action, tmp_path):
    template = tmp_path / "template"
    prepared(engine, template)
    old_state = state(engine, template)
    clean = tmp_path / "clean"
    shutil.copytree(template, clean)
    finish(engine, clean, action)
    new_state = state(engine, clean)
    assert new_state[0] == (V3 if action == "promote" else V1)
    script = KILLER.format(primitives=PRIMITIVES, v3=V3)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kills = 0
    for kill_at in range(1, 40):
        folder = tmp_path / f"kill{kill_at}"
        shutil.copytree(template, folder)
        run = subprocess.run(
            [sys.executable, "-c", script, engine, str(folder), action, str(kill_at)],
            env=env,
            timeout=120,
            capture_output=True,
            text=True,
        )
        if run.returncode == 0:
            break
        assert run.returncode == -signal.SIGKILL, run.stderr
        kills += 1
        live, statuses = state(engine, folder)
        assert live in (old_state[0], new_state[0]), f"killed at {kill_at}: {live}"
        assert [n for n, s in statuses.items() if s == "live"] == [live]
        if live == old_state[0]:
            # Nothing happened as far as readers and the history can tell.
            assert {n: s for n, s in statuses.items() if n in old_state[1]} == {
                n: s for n, s in old_state[1].items() if n in statuses
            }
        else:
            assert statuses[V2] == ("previous" if action == "promote" else "rolled_back")
        # The next rollback goes where the visible state says.
        probe = tmp_path / f"probe{kill_at}"
        shutil.copytree(folder, probe)
        expected_target = {V2: V1, V3: V2}.get(live)
        if expected_target is not None and statuses.get(expected_target) == "previous":
            assert rollback_target(engine, probe) == expected_target
        finish(engine, folder, action)
        assert state(engine, folder) == new_state, f"killed at {kill_at}"
    else:
        pytest.fail("the swap never ran to its end")
    assert kills >= 2  # the killer hit the swap before and after its commit point
