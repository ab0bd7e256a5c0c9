"""Docker Engine calls as data: exact payloads for exact specs."""

from __future__ import annotations

import io

from dockyard.agent import commands as cmd
from dockyard.agent.buildconfig import BuildOptions
from dockyard.agent.commands import EngineCall
from dockyard.agent.models import (
    ContainerSpec,
    HealthCheck,
    ImageRef,
    ImageSummary,
    PortBinding,
    VolumeMount,
)

IMAGE = ImageRef(repository="10.0.0.1:5000/shop/web", tag="deploy_0123abcd")
FULL = ContainerSpec(
    name="web-1", service="web", image=IMAGE, command=["python3", "app.py"],
    env={"PORT": "8000", "GREETING": "a b;c"}, labels={"release": "r1"},
    ports=[PortBinding(container_port=8000, host_port=18000, host_ip="127.0.0.1")],
    health=HealthCheck(command=["curl", "-f", "http://localhost:8000"], interval_seconds=2,
                       timeout_seconds=1.5, retries=4, start_period_seconds=0.5),
    memory_bytes=256 * 1024 * 1024, cpus=0.5,
    volumes=[VolumeMount(volume="web-data", target="/data")],
)
LOGS = cmd.ContainerLogs(max_bytes=1_000_000, files=2)


def test_container_config_is_the_engine_create_body() -> None:
    assert cmd.container_config(FULL, LOGS) == {
        "Image": "10.0.0.1:5000/shop/web:deploy_0123abcd",
        "Cmd": ["python3", "app.py"],
        "Env": ["GREETING=a b;c", "PORT=8000"],
        "Labels": {"release": "r1", "dockyard.managed": "true", "dockyard.service": "web"},
        "ExposedPorts": {"8000/tcp": {}},
        "Healthcheck": {"Test": ["CMD", "curl", "-f", "http://localhost:8000"],
                        "Interval": 2_000_000_000, "Timeout": 1_500_000_000, "Retries": 4,
                        "StartPeriod": 500_000_000},
        "HostConfig": {
            "PortBindings": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18000"}]},
            "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
            "Mounts": [{"Type": "volume", "Source": "web-data", "Target": "/data"}],
            "Memory": 268_435_456,
            "NanoCpus": 500_000_000,
            "LogConfig": {"Type": "json-file",
                          "Config": {"max-size": "1000000", "max-file": "2"}},
        },
    }


def test_a_minimal_spec_leaves_out_command_health_and_limits() -> None:
    spec = ContainerSpec(name="w", service="web", image=IMAGE)
    config = cmd.container_config(spec, cmd.ContainerLogs())
    assert "Cmd" not in config
    assert "Healthcheck" not in config
    assert config["HostConfig"] == {"PortBindings": {}, "Mounts": [], "RestartPolicy": {
        "Name": "unless-stopped", "MaximumRetryCount": 0}, "LogConfig": {
        "Type": "json-file", "Config": {"max-size": "10485760", "max-file": "3"}}}


def test_our_labels_win_over_user_labels() -> None:
    spec = ContainerSpec(name="w", service="web", image=IMAGE,
                         labels={"dockyard.service": "other", "dockyard.managed": "no"})
    assert cmd.container_config(spec, LOGS)["Labels"] == {
        "dockyard.service": "web", "dockyard.managed": "true"}


def test_running_creates_volumes_then_the_container_then_starts_it() -> None:
    assert cmd.run_container(FULL, LOGS) == [
        EngineCall("create_volume", {"name": "web-data", "driver": "local", "labels": {
            "dockyard.managed": "true", "dockyard.service": "web"}}),
        EngineCall("create_container_from_config",
                   {"config": cmd.container_config(FULL, LOGS), "name": "web-1"}),
        EngineCall("start", {"container": "web-1"}),
    ]


def test_simple_calls() -> None:
    assert cmd.stop_container("w", 7) == EngineCall("stop", {"container": "w", "timeout": 7})
    assert cmd.remove_container("w") == EngineCall(
        "remove_container", {"container": "w", "force": True, "v": False})
    assert cmd.list_containers({"b": "2", "a": "1"}) == EngineCall(
        "containers", {"all": True, "filters": {"label": ["a=1", "b=2"]}})
    assert cmd.container_logs("w", follow=True, tail=10) == EngineCall("logs", {
        "container": "w", "stream": True, "follow": True, "tail": 10, "stdout": True,
        "stderr": True})
    assert cmd.pull_image(IMAGE) == EngineCall("pull", {
        "repository": "10.0.0.1:5000/shop/web", "tag": "deploy_0123abcd", "stream": True,
        "decode": True})
    assert cmd.push_image(IMAGE).method == "push"
    assert cmd.tag_image(ImageRef(repository="a"), IMAGE) == EngineCall("tag", {
        "image": "a:latest", "repository": "10.0.0.1:5000/shop/web", "tag": "deploy_0123abcd"})
    assert cmd.remove_image("a:b") == EngineCall(
        "remove_image", {"image": "a:b", "force": False, "noprune": False})
    assert cmd.prune_dangling_images(604800) == EngineCall(
        "prune_images", {"filters": {"dangling": True, "until": "604800s"}})
    assert cmd.prune_build_cache(3600, 1024) == EngineCall(
        "prune_builds", {"filters": {"until": "3600s"}, "keep_storage": 1024})
    assert cmd.list_volumes("web") == EngineCall(
        "volumes", {"filters": {"label": ["dockyard.service=web"]}})


def test_build_and_import_carry_their_streams() -> None:
    context = io.BytesIO(b"tar")
    assert cmd.build_image(context, IMAGE, "docker/Dockerfile") == EngineCall("build", {
        "fileobj": context, "custom_context": True,
        "tag": "10.0.0.1:5000/shop/web:deploy_0123abcd", "dockerfile": "docker/Dockerfile",
        "rm": True, "forcerm": True, "decode": True, "buildargs": None,
        "container_limits": None})
    limited = cmd.build_image(context, IMAGE, "Dockerfile", BuildOptions(
        ("A=1",), memory_mb=100, cpus=1)).kwargs
    assert (limited["buildargs"], limited["container_limits"]) == (
        {"A": "1"}, {"memory": 100 * 1024 * 1024, "memswap": 100 * 1024 * 1024,
                     "cpusetcpus": "0-0"})
    chunks = [b"a", b"b"]
    assert cmd.import_image(chunks, IMAGE, ('CMD ["python3"]',)) == EngineCall(
        "import_image_from_stream", {"stream": chunks, "repository": "10.0.0.1:5000/shop/web",
                                     "tag": "deploy_0123abcd", "changes": ['CMD ["python3"]']})
    assert cmd.import_image(chunks, IMAGE).kwargs["changes"] is None


def image(created: int, *tags: str) -> ImageSummary:
    return ImageSummary(id=f"sha256:{created}", tags=list(tags), created=created, size=1)


def test_prune_keeps_the_newest_deploy_tags_of_each_repository() -> None:
    images = [
        image(1, "shop/web:deploy_00000001", "shop/web:latest"),
        image(2, "shop/web:deploy_00000002"),
        image(3, "shop/web:deploy_00000003"),
        image(4, "shop/api:deploy_0000000a"),
        image(5, "reg:5000/shop/api:deploy_0000000b", "reg:5000/shop/api:deploy_0000000c"),
        image(0, "base:bookworm"),
    ]
    assert cmd.deploy_tags_to_remove(images, keep=1) == [
        "reg:5000/shop/api:deploy_0000000b",
        "shop/web:deploy_00000002", "shop/web:deploy_00000001",
    ]
    assert cmd.deploy_tags_to_remove(images, keep=2) == ["shop/web:deploy_00000001"]
    assert cmd.deploy_tags_to_remove(images, keep=3) == []


def test_prune_of_one_repository_keeps_exactly_the_retained_tags() -> None:
    """Identical rebuilds share one image (and its date): only the control plane knows
    which release is newest, so it names the tags to keep."""
    images = [
        image(1, "reg:5000/w/shop/web:deploy_0000000a", "reg:5000/w/shop/web:deploy_0000000b",
              "reg:5000/w/shop/web:latest"),
        image(2, "reg:5000/w/shop/web:deploy_0000000c", "reg:5000/w/shop/api:deploy_0000000d"),
    ]
    assert cmd.deploy_tags_outside(images, "reg:5000/w/shop/web", {"deploy_0000000b"}) == [
        "reg:5000/w/shop/web:deploy_0000000a", "reg:5000/w/shop/web:deploy_0000000c"]
    assert cmd.deploy_tags_outside(images, "reg:5000/w/shop/web",
                                   {"deploy_0000000a", "deploy_0000000b", "deploy_0000000c"}) == []
