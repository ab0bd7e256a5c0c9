"""A local S3-compatible server for tests: moto's standalone server on a free loopback port
(no S3 is reachable from here), with a bucket made for the test."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest

from tests.pg import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "dockyard-backups"


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self) -> S3Client:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_s3_server(log: Path) -> S3Server:
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    with log.open("wb") as output:
        process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto_server exited early:\n{log.read_text()[-2000:]}")
        try:
            httpx.get(endpoint + "/moto-api/", timeout=1)
            return S3Server(endpoint, process)
        except httpx.TransportError:
            time.sleep(0.05)
    process.terminate()
    pytest.fail("moto_server did not answer within 60 s")
