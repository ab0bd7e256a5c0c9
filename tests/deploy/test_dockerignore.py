""".dockerignore applied when the build context is packed, with the docker CLI's rules."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from dockyard.deploy import dockerignore
from dockyard.deploy.sources import GENERATED_DOCKERFILE, build_context


@pytest.mark.parametrize(("patterns", "path", "ignored"), [
    ("node_modules", "node_modules", True),
    ("node_modules", "node_modules/express/index.js", True),
    ("node_modules", "src/node_modules", False),
    ("**/node_modules", "src/node_modules/x.js", True),
    ("*.pyc", "app.pyc", True),
    ("*.pyc", "pkg/app.pyc", False),
    ("**/*.pyc", "pkg/deep/app.pyc", True),
    ("/secrets", "secrets/key", True),
    ("./build/", "build/out.js", True),
    ("doc?", "docs", True),
    ("doc?", "doc", False),
    ("[a-c].txt", "b.txt", True),
    ("[!a-c].txt", "b.txt", False),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "CHANGES.md", True),
    ("!README.md\n*.md", "README.md", True),  # the last matching line wins
    ("logs\n!logs/keep.log", "logs/keep.log", False),
    ("logs\n!logs/keep.log", "logs/other.log", True),
    ("# a comment\n\n   ", "anything", False),
    ("a.b", "axb", False),
])
def test_patterns(patterns: str, path: str, ignored: bool) -> None:
    assert dockerignore.ignored_by(dockerignore.parse(patterns))(path) is ignored


def test_the_context_leaves_out_what_dockerignore_names(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "node_modules" / "x").mkdir(parents=True)
    (app / "node_modules" / "x" / "index.js").write_text("")
    (app / ".dockyard-build").mkdir()
    (app / ".dockyard-build" / "pip.conf").write_text("[global]\n")
    (app / "server.js").write_text("")
    (app / "Dockerfile").write_text("FROM scratch\n")
    (app / ".env").write_text("SECRET=1\n")
    (app / ".dockerignore").write_text("node_modules\n.env\nDockerfile\n.dockerignore\n")
    build_context(app, tmp_path / "own.tar", None)
    with tarfile.open(tmp_path / "own.tar") as tar:
        assert tar.getnames() == [".dockerignore", ".dockyard-build",
                                  ".dockyard-build/pip.conf", "Dockerfile", "server.js"]
    build_context(app, tmp_path / "generated.tar", "FROM x\n")
    with tarfile.open(tmp_path / "generated.tar") as tar:  # the builder's config is the agent's
        assert tar.getnames() == [".dockerignore", "Dockerfile", "server.js",
                                  GENERATED_DOCKERFILE]


def test_a_dockerignore_link_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("*\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.html").write_text("")
    (app / ".dockerignore").symlink_to(outside)
    assert not dockerignore.for_app(app)("index.html")
