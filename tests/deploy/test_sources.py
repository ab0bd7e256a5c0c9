"""Sources: uploaded archives (hostile ones refused whole), git refs, image references and the
build context."""

from __future__ import annotations

import http.server
import io
import os
import shutil
import stat
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.deploy.archives import PayloadTooLarge, receive_archive, unpack_archive
from dockyard.deploy.sources import (
    CONTEXT_MTIME,
    GitFailed,
    build_context,
    fetch_git,
    git_checkout_argv,
    git_fetch_argv,
    git_init_argv,
    git_rev_parse_argv,
    validate_git_ref,
    validate_git_url,
    validate_image_reference,
)
from dockyard.kernel.errors import InvalidInput

# Archives made in the test: (name, kind, payload) where payload is data or a link target.


def _info(name: str, kind: bytes, payload: str | bytes, mode: int) -> tuple[tarfile.TarInfo,
                                                                          bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, mode
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = str(payload)
        return info, None
    data = payload if isinstance(payload, bytes) else payload.encode()
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def make_tar(path: Path, entries: list[tuple[str, bytes, str | bytes, int]],
             mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for name, kind, payload, file_mode in entries:
            info, data = _info(name, kind, payload, file_mode)
            if "\x00" in name:
                info.pax_headers = {"path": name}
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file(name: str, data: str = "x", mode: int = 0o644) -> tuple[str, bytes, str, int]:
    return (name, tarfile.REGTYPE, data, mode)


def symlink(name: str, target: str) -> tuple[str, bytes, str, int]:
    return (name, tarfile.SYMTYPE, target, 0o777)


def hardlink(name: str, target: str) -> tuple[str, bytes, str, int]:
    return (name, tarfile.LNKTYPE, target, 0o644)


def special(name: str, kind: bytes) -> tuple[str, bytes, str, int]:
    return (name, kind, "", 0o644)


def directory(name: str) -> tuple[str, bytes, str, int]:
    return (name, tarfile.DIRTYPE, "", 0o755)


HOSTILE_TARS = {
    "parent": ([file("../evil")], "'../evil' escapes the app directory"),
    "nested parent": ([file("app/../../evil")], "'app/../../evil' escapes the app directory"),
    "absolute": ([file("/tmp/evil")], "'/tmp/evil' is an absolute path"),
    "backslash": ([file("..\\evil")], "'..\\\\evil' uses a Windows path"),
    "drive": ([file("C:/evil")], "'C:/evil' uses a Windows path"),
    "nul": ([file("a\x00b")], "'a\\x00b' has a NUL character"),
    "absolute symlink": ([symlink("link", "/etc/passwd")],
                         "'link' links to '/etc/passwd', outside the app directory"),
    "parent symlink": ([symlink("link", "../outside")],
                       "'link' links to '../outside', outside"),
    "deep symlink": ([directory("sub"), symlink("sub/link", "../../x")],
                     "'sub/link' links to '../../x', outside"),
    "symlink chain": ([symlink("a", "."), symlink("b", "a/..")],
                      "'b' links to 'a/..', outside"),
    "symlink loop": ([symlink("a", "b"), symlink("b", "a")], "'a' links to 'b', outside"),
    "absolute hard link": ([hardlink("h", "/etc/passwd")],
                           "'h' is a hard link to '/etc/passwd', outside"),
    "parent hard link": ([hardlink("h", "../x")], "'h' is a hard link to '../x', outside"),
    "hard link to nothing": ([hardlink("h", "missing")],
                             "'h' is a hard link to something that is not a file"),
    "hard link forward": ([hardlink("h", "later"), file("later")],
                          "'h' is a hard link to something that is not a file before it"),
    "hard link to a symlink": ([symlink("s", "ok.txt"), hardlink("h", "s")],
                               "'h' is a hard link to something that is not a file"),
    "char device": ([special("null", tarfile.CHRTYPE)], "'null' is a device, fifo"),
    "block device": ([special("sda", tarfile.BLKTYPE)], "'sda' is a device, fifo"),
    "fifo": ([special("pipe", tarfile.FIFOTYPE)], "'pipe' is a device, fifo"),
    "duplicate": ([file("twice"), file("./twice")], "'./twice' appears twice"),
    "directory over a symlink": ([directory("sub"), symlink("d", "sub"), directory("d/")],
                                 "'d' appears twice"),
    "replaces the root": ([symlink(".", "/")], "'.' appears twice or replaces the app"),
}


@pytest.mark.parametrize("case", HOSTILE_TARS, ids=list(HOSTILE_TARS))
def test_a_hostile_tar_is_refused_before_anything_is_extracted(tmp_path: Path,
                                                               case: str) -> None:
    entries, message = HOSTILE_TARS[case]
    archive = make_tar(tmp_path / "upload", [file("ok.txt"), *entries])
    with pytest.raises(InvalidInput, match="archive entry ") as caught:
        unpack_archive(archive, tmp_path / "app")
    assert message in caught.value.message
    assert caught.value.status_code == 422
    assert not (tmp_path / "app").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload"]


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "upload", [file(f"f{n}") for n in range(4)])
    with pytest.raises(InvalidInput, match="more than 3 entries"):
        unpack_archive(archive, tmp_path / "app", max_entries=3)
    assert unpack_archive(archive, tmp_path / "app", max_entries=4) == tmp_path / "app"


def test_a_tar_bomb_is_refused_by_its_unpacked_size(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "upload", [file("a", "0" * 600), file("b", "0" * 600)])
    with pytest.raises(InvalidInput, match="archive entry 'b' takes the unpacked size over"):
        unpack_archive(archive, tmp_path / "app", max_bytes=1000)
    assert not (tmp_path / "app").exists()


GITHUB_STYLE = [
    directory("shop-1a2b3c"), file("shop-1a2b3c/app.py", "print('hi')\n"),
    file("shop-1a2b3c/run.sh", "#!/bin/sh\n", 0o755), directory("shop-1a2b3c/static"),
    symlink("shop-1a2b3c/static/app.py", "../app.py"), symlink("shop-1a2b3c/here", "."),
    hardlink("shop-1a2b3c/copy.py", "shop-1a2b3c/app.py"),
]


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_a_tar_is_recognised_by_content_and_its_single_top_directory_is_the_root(
        tmp_path: Path, mode: str) -> None:
    archive = make_tar(tmp_path / "upload.zip", GITHUB_STYLE, mode)  # the name misleads
    root = unpack_archive(archive, tmp_path / "app")
    assert root == tmp_path / "app" / "shop-1a2b3c"
    assert (root / "static" / "app.py").read_text() == "print('hi')\n"
    assert os.readlink(root / "static" / "app.py") == "../app.py"
    assert (root / "copy.py").read_text() == "print('hi')\n"
    assert os.stat(root / "run.sh").st_mode & 0o111 == 0o111
    assert os.stat(root / "app.py").st_mode & 0o111 == 0


def test_several_top_level_entries_keep_the_destination_as_root(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "upload", [directory("."), file("./app.py"), directory("./lib"),
                                             directory("lib/"), file("./lib/x.py")])
    assert unpack_archive(archive, tmp_path / "app") == tmp_path / "app"
    assert (tmp_path / "app" / "lib" / "x.py").exists()


def test_a_single_top_level_file_keeps_the_destination_as_root(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "upload", [file("app.py")])
    assert unpack_archive(archive, tmp_path / "app") == tmp_path / "app"


@pytest.mark.parametrize("content", [b"", b"hello, not an archive" * 40,
                                     b"\x1f\x8b\x08\x00garbage", b"PK\x03\x04garbage"])
def test_something_else_is_not_an_archive(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "upload.tar.gz").write_bytes(content)
    with pytest.raises(InvalidInput, match=r"^not a tar or zip archive"):
        unpack_archive(tmp_path / "upload.tar.gz", tmp_path / "app")
    assert not (tmp_path / "app").exists()


def _damage(archive: Path, at: int) -> Path:
    raw = bytearray(archive.read_bytes())
    raw[at:at + 64] = b"\xff" * 64
    archive.write_bytes(bytes(raw))
    return archive


@pytest.mark.parametrize(("mode", "at"), [("w", 1024), ("w", 10 * 1024), ("w:gz", 4000)])
def test_a_damaged_tar_is_refused_not_cut_short(tmp_path: Path, mode: str, at: int) -> None:
    """A damaged header looks like the end of a tar to tarfile: the rest must not vanish."""
    entries = [file(f"f{n}", os.urandom(400).hex()[:500]) for n in range(20)]
    archive = _damage(make_tar(tmp_path / "upload", entries, mode), at)
    with pytest.raises(InvalidInput, match=r"^the tar archive (is damaged|could not be unpacked)"):
        unpack_archive(archive, tmp_path / "app")
    assert not (tmp_path / "app").exists()


def test_a_damaged_zip_is_refused(tmp_path: Path) -> None:
    entries = [Z(f"f{n}", os.urandom(4000)) for n in range(9)]
    archive = _damage(make_zip(tmp_path / "upload", entries), 12_000)
    with pytest.raises(InvalidInput, match=r"^the zip archive could not be unpacked"):
        unpack_archive(archive, tmp_path / "app")


def test_the_destination_must_be_new_or_empty(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "upload", [file("app.py")])
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "left-over").symlink_to("/etc")
    with pytest.raises(ValueError, match="must be a new or empty directory"):
        unpack_archive(archive, tmp_path / "app")


# Zip archives.

@dataclass(frozen=True)
class Z:
    name: str
    data: bytes = b"x"
    mode: int = stat.S_IFREG | 0o644


def make_zip(path: Path, entries: list[Z]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name.replace("\x00", "#"))
            info.create_system, info.external_attr = 3, entry.mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.data)
    raw = path.read_bytes()
    for entry in entries:  # zipfile cannot write a NUL in a name: patch it in
        raw = raw.replace(entry.name.replace("\x00", "#").encode(), entry.name.encode())
    path.write_bytes(raw)
    return path


def zip_link(name: str, target: str) -> Z:
    return Z(name, target.encode(), stat.S_IFLNK | 0o777)


HOSTILE_ZIPS = {
    "parent": ([Z("../evil")], "'../evil' escapes the app directory"),
    "absolute": ([Z("/tmp/evil")], "'/tmp/evil' is an absolute path"),
    "backslash": ([Z("..\\evil")], "uses a Windows path"),
    "drive": ([Z("C:/evil")], "'C:/evil' uses a Windows path"),
    "nul": ([Z("ok\x00/../../evil")], "has a NUL character"),
    "absolute symlink": ([zip_link("link", "/etc/passwd")], "'link' links to '/etc/passwd'"),
    "parent symlink": ([zip_link("d/link", "../../x")], "'d/link' links to '../../x'"),
    "fifo": ([Z("pipe", b"", stat.S_IFIFO | 0o644)], "'pipe' is a device, fifo"),
    "char device": ([Z("tty", b"", stat.S_IFCHR | 0o644)], "'tty' is a device, fifo"),
    "bomb": ([Z("zeros", b"\0" * 5000)], "'zeros' takes the unpacked size over"),
}


@pytest.mark.parametrize("case", HOSTILE_ZIPS, ids=list(HOSTILE_ZIPS))
def test_a_hostile_zip_is_refused_before_anything_is_extracted(tmp_path: Path,
                                                               case: str) -> None:
    entries, message = HOSTILE_ZIPS[case]
    archive = make_zip(tmp_path / "upload", [Z("ok.txt"), *entries])
    with pytest.raises(InvalidInput, match="archive entry ") as caught:
        unpack_archive(archive, tmp_path / "app", max_bytes=4096)
    assert message in caught.value.message
    assert not (tmp_path / "app").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload"]


def test_a_zip_with_too_many_entries_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "upload", [Z(f"f{n}") for n in range(4)])
    with pytest.raises(InvalidInput, match="more than 3 entries"):
        unpack_archive(archive, tmp_path / "app", max_entries=3)


def test_a_zip_keeps_exec_bits_links_and_its_single_top_directory(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "upload.tar", [
        Z("shop-main/", b"", stat.S_IFDIR | 0o755), Z("shop-main/app.py", b"print(1)\n"),
        Z("shop-main/bin/run", b"#!/bin/sh\n", stat.S_IFREG | 0o755),
        zip_link("shop-main/bin/app.py", "../app.py"),
        Z("shop-main/plain.txt", b"windows made me", 0),
    ])
    root = unpack_archive(archive, tmp_path / "app")
    assert root == tmp_path / "app" / "shop-main"
    assert os.stat(root / "bin" / "run").st_mode & 0o777 == 0o755
    assert os.stat(root / "app.py").st_mode & 0o777 == 0o644
    assert (root / "bin" / "app.py").read_text() == "print(1)\n"
    assert (root / "plain.txt").read_text() == "windows made me"


# Streaming an upload.

async def _chunks(sent: list[int], count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        sent.append(size)
        yield b"x" * size


async def test_an_upload_within_the_limit_is_written(tmp_path: Path) -> None:
    sent: list[int] = []
    dest = await receive_archive(_chunks(sent, 4, 256), tmp_path / "upload", limit=1024)
    assert dest.read_bytes() == b"x" * 1024


async def test_an_oversized_upload_stops_early_and_leaves_no_file(tmp_path: Path) -> None:
    sent: list[int] = []
    with pytest.raises(PayloadTooLarge) as caught:
        await receive_archive(_chunks(sent, 100, 1000), tmp_path / "upload", limit=2500)
    assert len(sent) == 3
    assert not (tmp_path / "upload").exists()
    assert caught.value.status_code == 413
    assert caught.value.message == (
        "the archive is over the limit of 0 MB (2500 bytes); raise the limit with the "
        "setting DOCKYARD_MAX_ARCHIVE_BYTES")
    assert "over the limit of 100 MB" in PayloadTooLarge(100 * 1024 * 1024).message


# Git: a real repository made here with the git binary.

@dataclass(frozen=True)
class Origin:
    path: Path
    first: str
    main: str
    feature: str


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def _commit(repo: Path, text: str) -> str:
    (repo / "app.py").write_text(text)
    _git(repo, "add", "app.py")
    _git(repo, "commit", "--quiet", "-m", text)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    if shutil.which("git") is None:
        pytest.fail("git is not installed: apt-get install git")
    repo = tmp_path / "origin"
    repo.mkdir()
    _git(repo, "init", "--quiet", "-b", "main")
    first = _commit(repo, "v1")
    _git(repo, "tag", "-a", "v1.0", "-m", "first release")
    main = _commit(repo, "v2")
    _git(repo, "checkout", "--quiet", "-b", "feature/x")
    feature = _commit(repo, "v3")
    _git(repo, "checkout", "--quiet", "main")
    return Origin(repo, first, main, feature)


@pytest.mark.parametrize(("ref", "expected", "text"), [
    (None, "main", "v2"), ("main", "main", "v2"), ("feature/x", "feature", "v3"),
    ("v1.0", "first", "v1"), ("first-sha", "first", "v1"),
])
def test_fetch_git_checks_out_a_ref_and_drops_git(origin: Origin, tmp_path: Path,
                                                  ref: str | None, expected: str,
                                                  text: str) -> None:
    ref = origin.first if ref == "first-sha" else ref
    sha = fetch_git(str(origin.path), ref, tmp_path / "checkout")
    assert sha == getattr(origin, expected)
    assert (tmp_path / "checkout" / "app.py").read_text() == text
    assert sorted(p.name for p in (tmp_path / "checkout").iterdir()) == ["app.py"]


def test_fetch_git_takes_a_file_url(origin: Origin, tmp_path: Path) -> None:
    assert fetch_git(f"file://{origin.path}", "v1.0", tmp_path / "co") == origin.first


def test_a_missing_ref_says_what_git_said(origin: Origin, tmp_path: Path) -> None:
    with pytest.raises(GitFailed) as caught:
        fetch_git(str(origin.path), "nope", tmp_path / "checkout")
    assert caught.value.message == (f"git could not fetch ref 'nope' from {origin.path}: "
                                    "fatal: couldn't find remote ref nope")


def test_a_failed_fetch_never_shows_the_password(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is not installed: apt-get install git")
    with pytest.raises(GitFailed) as caught:
        fetch_git("http://deploy:s3cret@127.0.0.1:9/repo.git", "main", tmp_path / "co")
    assert caught.value.message.startswith(
        "git could not fetch ref 'main' from http://***@127.0.0.1:9/repo.git: ")
    assert "s3cret" not in caught.value.message


def test_a_url_that_looks_like_an_option_never_reaches_git(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not a git URL"):
        fetch_git("--upload-pack=touch /tmp/pwned", None, tmp_path / "co")
    with pytest.raises(InvalidInput, match="is not a git ref"):
        fetch_git("https://example.com/a.git", "--upload-pack=x", tmp_path / "co")
    assert not (tmp_path / "co").exists()


@pytest.mark.parametrize("url", [
    "https://github.com/acme/shop.git", "http://10.0.0.2/shop", "ssh://git@host:2222/shop.git",
    "git://host/shop", "file:///srv/git/shop", "git@github.com:acme/shop.git", "/srv/git/shop",
    "https://user:token@host/shop.git", "ssh://git@[::1]:22/shop.git", "ssh://[2001:db8::1]/x",
    "git@host:/srv/git/shop.git", "https://host",
])
def test_git_urls_we_accept(url: str) -> None:
    assert validate_git_url(url) == url


@pytest.mark.parametrize("url", [
    "", "-oProxyCommand=x", "shop", "./shop", "host:shop", "ext::sh -c touch% /tmp/x",
    "https://host/a b", "https://host/a\tb", "https://host/a\x00", "https://host/\x1b[31m",
    "ssh://-oProxyCommand=x/y", "ssh://user@-oProxyCommand=x/y", "git@-host:x", "git@host:-x",
    "ftp://host/x", "https://host/" + "a" * 2048,
    "ssh://[-oProxyCommand=x]/y", "ssh://git@[-oProxyCommand=x]:22/y", "ssh://[host]/y",
    "ssh://[::1%eth0]/y", "ssh://[::1]/-y", "https://host/a/-b", "https://-host/y",
    "ssh://-l@host/y", "git@host:a/-b", "git@host:", "fd::17", "https://host/y\n",
    "https://host/y\u202e", "file://",
])
def test_git_urls_we_refuse(url: str) -> None:
    with pytest.raises(InvalidInput, match="is not a git URL"):
        validate_git_url(url)


def test_a_refused_url_does_not_echo_its_password() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_git_url("https://me:s3cret@host/a b")
    assert "s3cret" not in caught.value.message


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "feature/new-ui", "release_2024", "a" * 255,
                                 "0123456789abcdef0123456789abcdef01234567"])
def test_git_refs_we_accept(ref: str) -> None:
    assert validate_git_ref(ref) == ref


@pytest.mark.parametrize("ref", ["", "-x", "a..b", "a b", "a" * 256, "HEAD~1", "main^",
                                 "a:b", "@{-1}", "x\n", "é", ".hidden", "/abs", "a/../b"])
def test_git_refs_we_refuse(ref: str) -> None:
    with pytest.raises(InvalidInput, match="is not a git ref"):
        validate_git_ref(ref)


def test_git_argv_lists() -> None:
    dest = Path("/w/src")
    assert git_init_argv(dest) == ["git", "init", "--quiet", "--", "/w/src"]
    assert git_fetch_argv(dest, "https://h/a.git", None) == [
        "git", "-C", "/w/src", "fetch", "--depth", "1", "--", "https://h/a.git", "HEAD"]
    assert git_fetch_argv(dest, "https://h/a.git", "v1")[-1] == "v1"
    assert git_checkout_argv(dest) == ["git", "-C", "/w/src", "checkout", "--detach",
                                       "FETCH_HEAD"]
    assert git_rev_parse_argv(dest) == ["git", "-C", "/w/src", "rev-parse", "HEAD"]


class _AskForPassword(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_repository_that_wants_a_password_fails_at_once_instead_of_prompting(
        tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AskForPassword)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/private.git"
        with pytest.raises(GitFailed) as refused:
            fetch_git(url, None, tmp_path / "src", timeout=60)
    finally:
        server.shutdown()
    assert "longer than" not in refused.value.message
    assert "git could not fetch" in refused.value.message


# Image references.

@pytest.mark.parametrize(("ref", "expected"), [
    ("nginx", ("nginx", "latest")),
    ("nginx:1.27", ("nginx", "1.27")),
    ("team/app:v1_2-rc.1", ("team/app", "v1_2-rc.1")),
    ("localhost:5000/app", ("localhost:5000/app", "latest")),
    ("registry.example.com:5000/team/app:1.2", ("registry.example.com:5000/team/app", "1.2")),
    ("127.0.0.1:5000/shop/web:Deploy_1a2b", ("127.0.0.1:5000/shop/web", "Deploy_1a2b")),
])
def test_image_references_we_accept(ref: str, expected: tuple[str, str]) -> None:
    assert validate_image_reference(ref) == expected


@pytest.mark.parametrize(("ref", "message"), [
    ("nginx@sha256:" + "a" * 64, "digests (name@sha256:...) are not supported yet"),
    ("Nginx:1.27", "the repository name must be lowercase"),
    ("team/App", "the repository name must be lowercase"),
    ("ngi nx", "no spaces"),
    ("nginx\n", "no spaces"),
    ("", "no spaces"),
    ("nginx:", "is not an image reference"),
    (":1.0", "is not an image reference"),
    ("nginx:-bad", "is not an image reference"),
    ("-nginx", "is not an image reference"),
    ("a/" * 300 + "a", "is not an image reference"),
])
def test_image_references_we_refuse(ref: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_image_reference(ref)
    assert message in caught.value.message


# The build context.

def _tree(root: Path) -> Path:
    (root / "sub" / ".git").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "sub" / ".git" / "HEAD").write_text("ref\n")
    (root / "app.py").write_text("print('hi')\n")
    (root / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (root / "sub" / "run.sh").chmod(0o700)
    (root / "secret.txt").write_text("private")
    (root / "secret.txt").chmod(0o600)
    (root / "link").symlink_to("app.py")
    (root / "empty").mkdir()
    return root


def _members(context: Path) -> Iterator[tuple[str, str, int, int, int, str]]:
    with tarfile.open(context) as tar:
        for m in tar:
            yield m.name, m.type.decode(), m.mode, m.mtime, m.uid, m.linkname


def test_the_build_context_is_the_tree_without_git_plus_the_dockerfile(tmp_path: Path) -> None:
    app = _tree(tmp_path / "app")
    name = build_context(app, tmp_path / "context.tar", "FROM scratch\n")
    assert name == "Dockerfile.dockyard"
    t = CONTEXT_MTIME
    assert list(_members(tmp_path / "context.tar")) == [
        ("app.py", "0", 0o644, t, 0, ""), ("empty", "5", 0o755, t, 0, ""),
        ("link", "2", 0o777, t, 0, "app.py"), ("secret.txt", "0", 0o644, t, 0, ""),
        ("sub", "5", 0o755, t, 0, ""), ("sub/run.sh", "0", 0o755, t, 0, ""),
        ("Dockerfile.dockyard", "0", 0o644, t, 0, ""),
    ]
    with tarfile.open(tmp_path / "context.tar") as tar:
        dockerfile = tar.extractfile("Dockerfile.dockyard")
        assert dockerfile is not None
        assert dockerfile.read() == b"FROM scratch\n"


def test_the_same_tree_gives_the_same_bytes(tmp_path: Path) -> None:
    first = _tree(tmp_path / "first")
    build_context(first, tmp_path / "one.tar", "FROM scratch\n")
    second = tmp_path / "elsewhere" / "second"
    shutil.copytree(first, second, symlinks=True)
    for path in [second, *second.rglob("*")]:
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    build_context(second, tmp_path / "two.tar", "FROM scratch\n")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    (second / "app.py").write_text("print('changed')\n")
    build_context(second, tmp_path / "three.tar", "FROM scratch\n")
    assert (tmp_path / "one.tar").read_bytes() != (tmp_path / "three.tar").read_bytes()


def test_the_apps_own_dockerfile_is_used_when_nothing_is_generated(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text("FROM scratch\n")
    (app / "Dockerfile.dockyard").write_text("stale")
    assert build_context(app, tmp_path / "c.tar", None) == "Dockerfile"
    assert [m[0] for m in _members(tmp_path / "c.tar")] == ["Dockerfile", "Dockerfile.dockyard"]
    build_context(app, tmp_path / "d.tar", "FROM busybox\n")
    with tarfile.open(tmp_path / "d.tar") as tar:
        assert tar.getnames() == ["Dockerfile", "Dockerfile.dockyard"]
        generated = tar.extractfile("Dockerfile.dockyard")
        assert generated is not None
        assert generated.read() == b"FROM busybox\n"


def test_no_dockerfile_at_all_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    with pytest.raises(InvalidInput, match="no Dockerfile"):
        build_context(tmp_path / "app", tmp_path / "c.tar", None)
