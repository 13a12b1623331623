"""A real S3 endpoint on the loopback: moto's server in a child process (imported by name).

:func:`start` runs ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free port in a
child process that ends when its stdin closes (so it never outlives the tests), creates a
bucket, and returns an :class:`S3Server` with the environment a client needs: fake
credentials and ``FSSPEC_S3_ENDPOINT_URL``, which fsspec reads into its configuration (for
child processes; :meth:`S3Server.configure` applies it to this process's fsspec).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["S3Server", "start"]

BUCKET = "softlabels-test"
_SERVER = """
import logging, sys
logging.disable(logging.CRITICAL)  # no request log
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the parent closes it (or dies)
server.stop()
"""
# Fake credentials, and nothing read from ~/.aws or an instance metadata service.
CLIENT_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def available() -> str | None:
    """Why the S3 tests cannot run here (None when they can)."""
    for module in ("moto.server", "s3fs", "flask"):
        try:
            __import__(module)
        except ImportError as exc:
            return f"needs moto[server] and s3fs ({exc}); pip install -e '.[dev]'"
    return None


@dataclass
class S3Server:
    proc: subprocess.Popen[str]
    port: int
    bucket: str = BUCKET
    env: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str | None = None) -> str:
        """A fresh ``s3://`` location in the test bucket."""
        return f"s3://{self.bucket}/{name or uuid.uuid4().hex}"

    @contextmanager
    def configure(self) -> Iterator[None]:
        """This process's environment and fsspec configuration pointed at the server."""
        import fsspec.config

        saved_env = {k: os.environ.get(k) for k in self.env}
        saved_conf = fsspec.config.conf.get("s3")
        os.environ.update(self.env)
        fsspec.config.conf["s3"] = {**(saved_conf or {}), "endpoint_url": self.endpoint}
        try:
            yield
        finally:
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            if saved_conf is None:
                fsspec.config.conf.pop("s3", None)
            else:
                fsspec.config.conf["s3"] = saved_conf

    def fs(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(endpoint_url=self.endpoint, skip_instance_cache=True)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start() -> S3Server:
    """Start the server and create the test bucket."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **CLIENT_ENV},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the moto server did not start (said {line!r})")
    port = int(line)
    server = S3Server(proc=proc, port=port)
    server.env = {**CLIENT_ENV, "FSSPEC_S3_ENDPOINT_URL": server.endpoint}
    with server.configure():
        server.fs().mkdir(server.bucket)
    return server
