"""pytest fixtures for the cluster tests: one control plane for the session (tests/cluster/cluster.py)."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import Cluster  # noqa: E402

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def cluster(request):
    started = Cluster()
    print(f"\ncluster logs in {started.folder}")
    yield started
    started.close()
    failed = request.session.testsfailed
    if failed or os.environ.get("KCACHE_CLUSTER_KEEP"):
        print(f"cluster logs kept in {started.folder}")
    else:
        shutil.rmtree(started.folder, ignore_errors=True)


@pytest.fixture
def namespace(cluster, request):
    """A fresh namespace per test (entries are namespace-scoped, so tests never share one)."""

    def make(prefix: str = "", labels: dict | None = None) -> str:
        base = (prefix or request.node.name.replace("_", "-"))[:40].strip("-").lower()
        name = f"{base}-{next(_namespaces)}"
        cluster.create_namespace(name, labels)
        return name

    return make
