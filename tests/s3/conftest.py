"""Fixtures of the object-store suite: a real S3 endpoint (moto's server on 127.0.0.1, a
free port, started once per session and stopped at its end), this process pointed at it for
each test, one cache dumped to it and its local twin."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

from softlabels_reliability_faults import dump_args, invoke
from softlabels_s3_server import S3Server, available, start


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    why = available()
    if why:
        pytest.skip(why)
    server = start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The server, with this process's environment and fsspec configuration pointing at it
    (fake credentials, FSSPEC_S3_ENDPOINT_URL) for the test."""
    with s3_server.configure():
        yield s3_server


@pytest.fixture(scope="session")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted local dump (one teacher, 5 chunks): what every S3 cache must equal."""
    out = tmp_path_factory.mktemp("s3-reference") / "single.slc"
    result = invoke(*dump_args(out, "single"), "--json")
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def s3_cache(s3_server: S3Server, local_reference: Path) -> str:
    """The same dump on S3 (made once; tests that change it work on a copy)."""
    url = s3_server.url("reference/single.slc")
    with s3_server.configure():
        result = invoke(*dump_args(url, "single"), "--json")
    assert result.exit_code == 0, result.stderr
    return url


@pytest.fixture
def s3_copy(s3: S3Server, s3_cache: str) -> str:
    """A server-side copy of the S3 cache, free to change."""
    import uuid

    dest = s3.url(f"copy-{uuid.uuid4().hex[:8]}/c.slc")
    s3.fs().copy(s3_cache, dest, recursive=True)
    return dest
