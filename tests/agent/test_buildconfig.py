"""The build machine's pip and npm settings handed to a build: only http(s) indexes, the CA,
never an npm token; appended to the build context under .dockyard-build/."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from dockyard.agent import buildconfig
from dockyard.agent.buildconfig import PackageConfig


def test_http_indexes_and_the_ca_are_taken_local_paths_and_tokens_are_not(tmp_path: Path
                                                                          ) -> None:
    ca = tmp_path / "proxy-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nproxy\n")
    pip = tmp_path / "pip.conf"
    pip.write_text("[global]\nindex-url = https://mirror.invalid/simple\n"
                   "extra-index-url = file:///opt/wheels http://more.invalid/simple\n"
                   f"cert = {ca}\n")
    npmrc = tmp_path / "npmrc"
    npmrc.write_text('registry="https://npm.invalid/"\n//npm.invalid/:_authToken=s3cret\n'
                     "; cafile=/nowhere\n")
    config = buildconfig.machine_config({"PIP_CONFIG_FILE": str(pip),
                                         "NPM_CONFIG_USERCONFIG": str(npmrc)})
    assert config.index_url == "https://mirror.invalid/simple"
    assert config.extra_index_urls == ("http://more.invalid/simple",)
    assert config.npm_registry == "https://npm.invalid/"
    assert ca in config.ca_files
    files = buildconfig.config_files(config)
    assert b"s3cret" not in b"".join(files.values())
    assert b"proxy" in files["ca.crt"]


def test_environment_settings_win_and_must_be_urls() -> None:
    config = buildconfig.machine_config({"PIP_INDEX_URL": "https://env.invalid/simple",
                                         "npm_config_registry": "not a url\nregistry=x"})
    assert (config.index_url, config.npm_registry) == ("https://env.invalid/simple", None)


def test_the_files_a_build_stage_reads() -> None:
    files = buildconfig.config_files(PackageConfig(
        "https://m.invalid/simple", ("https://x.invalid/simple",), "https://n.invalid/", ()))
    assert files == {
        "pip.conf": b"[global]\nindex-url = https://m.invalid/simple\n"
                    b"extra-index-url = https://x.invalid/simple\n",
        "npmrc": b"registry=https://n.invalid/\n"}


def test_appended_to_the_context(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"CA")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("app.py")
        tar.addfile(info, io.BytesIO(b""))
    context.seek(0)
    buildconfig.add_to_context(context, PackageConfig(ca_files=(ca,)))
    assert context.tell() == 0
    with tarfile.open(fileobj=context) as tar:
        assert tar.getnames() == ["app.py", ".dockyard-build/pip.conf",
                                  ".dockyard-build/npmrc", ".dockyard-build/ca.crt"]
        ca_file = tar.extractfile(".dockyard-build/ca.crt")
        assert ca_file is not None
        assert ca_file.read() == b"CA"
        pip = tar.extractfile(".dockyard-build/pip.conf")
        assert pip is not None
        assert pip.read() == b"[global]\ncert = /.dockyard-build/ca.crt\n"
