"""Shared fixtures: the live inference server with the tiny model, over real HTTP."""

from __future__ import annotations

import pytest

from tests.support import ServerProcess


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One server for the whole run: MODEL_ID=tiny builds the model under DATA_DIR and loads it from there."""
    server = ServerProcess(tmp_path_factory.mktemp("live-server"), INJECT_FAULTS="1", MASKED_MIN_SIZE="64",
                           MAX_QUEUE="64", MAX_UPLOAD_MB="4", OVERLAP_FINISHING="1")  # auto: only on a GPU
    server.start()
    yield server
    server.stop()
