"""The agent's routes for commands inside managed containers and the blobs they read and
write: upload a blob, run a command (stdin from a blob, stdout into a new one), read a blob
back, delete it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import StreamingResponse

from dockyard.agent.execs import BlobId, BlobInfo, BlobStore, ExecRequest, ExecResult
from dockyard.agent.execs import run_in_container as run_command
from dockyard.agent.models import ContainerName
from dockyard.agent.node import Node

BLOBS_PATH = "/blobs"
router = APIRouter()


def _node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


def _blobs(request: Request) -> BlobStore:
    return BlobStore(_node(request).state_dir / "blobs")


NodeDep = Annotated[Node, Depends(_node)]
Blobs = Annotated[BlobStore, Depends(_blobs)]
BlobPath = Annotated[BlobId, Path()]


@router.post(BLOBS_PATH, status_code=201)
async def upload_blob(request: Request, blobs: Blobs) -> BlobInfo:
    return await blobs.receive(request.stream())


@router.post("/containers/{name}/execs")
async def run_in_container(name: Annotated[ContainerName, Path()], body: ExecRequest,
                           node: NodeDep, blobs: Blobs) -> ExecResult:
    """Only in a container this agent manages; a missing one is 404."""
    await node.container(name)
    return await run_command(node.runtime, blobs, name, body)


@router.get(BLOBS_PATH + "/{blob_id}")
async def read_blob(blob_id: BlobPath, blobs: Blobs) -> StreamingResponse:
    blobs.existing(blob_id)
    return StreamingResponse(blobs.chunks(blob_id), media_type="application/octet-stream")


@router.delete(BLOBS_PATH + "/{blob_id}", status_code=204)
async def delete_blob(blob_id: BlobPath, blobs: Blobs) -> None:
    blobs.delete(blob_id)
