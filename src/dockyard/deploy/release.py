"""The release phase: the Procfile's `release:` command, run once per deployment in a new
container of the new release, before any server switches (the place for migrations)."""

from __future__ import annotations

from dockyard.agent.client import AgentError
from dockyard.agent.models import OneOffRun
from dockyard.deploy import injection, plan, rollout
from dockyard.deploy.run import DeployFailed, Run
from dockyard.models.deployment_plan import Phase

OUTPUT_TAIL = 4000  # characters of the command's output kept in the failure message


def release_request(run: Run, command: list[str], server_id: str) -> OneOffRun:
    """The release command's run on `server_id`, which resolves the linked services' names."""
    return OneOffRun(service=run.site, image=run.image, command=command,
                     extra_hosts=injection.extra_hosts(run.plan.links, server_id),
                     env={**rollout.release_env(run), "DOCKYARD_PROCESS": "release.1"},
                     labels={plan.DEPLOYMENT_LABEL: run.deployment_id,
                             plan.PROCESS_TYPE_LABEL: "release"},
                     timeout_seconds=run.settings.release_timeout_seconds)


async def run_release_command(run: Run) -> None:
    """Run the release command on the first server; a failure (its exit code and the end of
    its output) fails the deployment while the previous release keeps serving."""
    command = run.plan.processes.release
    if command is None or not run.plan.run_release:
        return
    target = run.targets[0]
    await run.enter(Phase.RELEASE, f"running the release command on {target.name}: "
                                   f"{command[-1]}")
    await rollout.pull(run, target)
    output, code, timed_out = "", None, False
    try:
        async for line in target.client.run_one_off(release_request(run, command, target.id)):
            if "output" in line:
                text = str(line["output"])
                output = (output + text)[-OUTPUT_TAIL:]
                await run.emit("log", text.rstrip("\n"), source="release")
            elif "exit_code" in line:
                code, timed_out = line["exit_code"], bool(line.get("timed_out"))
    except AgentError as exc:
        raise DeployFailed(f"the release command could not run: {exc.detail}") from exc
    _check(run, code, timed_out, output)
    await run.emit("log", "the release command succeeded", source="release")


def _check(run: Run, code: object, timed_out: bool, output: str) -> None:
    if code == 0 and not timed_out:
        return
    why = (f"ran longer than {run.settings.release_timeout_seconds} s (setting "
           "DOCKYARD_RELEASE_TIMEOUT_SECONDS)" if timed_out else f"exited with code {code}")
    raise DeployFailed(f"the release command {why}; the previous release keeps serving. "
                       f"Its last output:\n{output.strip() or '(nothing)'}")
