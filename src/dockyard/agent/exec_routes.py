"""The agent's routes for commands inside managed containers and the blobs they read and
write: upload a blob, run a command (stdin from a blob, stdout into a new one), read a blob
back, delete it."""

from __future__ import annotations

from starlette.responses import StreamingResponse

from dockyard.agent.execs import BlobId, BlobInfo, BlobStore, ExecRequest, ExecResult
from dockyard.agent.execs import run_in_container as run_command
from dockyard.agent.models import ContainerName
from dockyard.agent.parts import Parts
from dockyard.agent.web import Call, Param, Routes, path

BLOBS_PATH = "/blobs"
NAME: Param[str] = path("name", ContainerName)
BLOB: Param[str] = path("blob_id", BlobId)
routes: Routes[Parts] = Routes()


def _blobs(call: Call[Parts]) -> BlobStore:
    return BlobStore(call.parts.node.state_dir / "blobs")


@routes.post(BLOBS_PATH, status=201)
async def upload_blob(call: Call[Parts]) -> BlobInfo:
    return await _blobs(call).receive(call.request.stream())


@routes.post("/containers/{name}/execs", params=(NAME,), body=ExecRequest)
async def run_in_container(call: Call[Parts]) -> ExecResult:
    """Only in a container this agent manages; a missing one is 404."""
    node, name = call.parts.node, call[NAME]
    await node.container(name)
    return await run_command(node.runtime, _blobs(call), name, call.body(ExecRequest))


@routes.get(BLOBS_PATH + "/{blob_id}", params=(BLOB,))
async def read_blob(call: Call[Parts]) -> StreamingResponse:
    blobs, blob_id = _blobs(call), call[BLOB]
    blobs.existing(blob_id)
    return StreamingResponse(blobs.chunks(blob_id), media_type="application/octet-stream")


@routes.delete(BLOBS_PATH + "/{blob_id}", status=204, params=(BLOB,))
async def delete_blob(call: Call[Parts]) -> None:
    _blobs(call).delete(call[BLOB])
