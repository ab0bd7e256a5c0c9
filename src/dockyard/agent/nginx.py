"""nginx configuration as a pure function of desired state, and the argv that drives nginx."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dockyard.agent.models import Site

_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]+")
MAIN_CONF = "nginx.conf"
PID_FILE = "nginx.pid"


@dataclass(frozen=True)
class NginxLayout:
    """Where one nginx instance keeps its files; every path lives under `root`."""

    root: Path
    http_port: int = 80
    https_port: int = 443

    def __post_init__(self) -> None:
        if not _SAFE_PATH.fullmatch(str(self.root)):
            raise ValueError(f"nginx directory {self.root} must be an absolute, plain path")

    @property
    def conf(self) -> Path:
        return self.root / MAIN_CONF

    @property
    def sites(self) -> Path:
        return self.root / "sites"

    @property
    def pid_file(self) -> Path:
        return self.root / PID_FILE

    @property
    def error_log(self) -> Path:
        return self.root / "logs" / "error.log"

    def site_file(self, service: str) -> Path:
        return self.sites / f"{service}.conf"


def render_main(layout: NginxLayout) -> str:
    """The default configuration: our paths, a catch-all 404, and every site included."""
    root = layout.root
    temp = "\n".join(
        f"    {kind}_temp_path {root / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# Managed by dockyard-agent; changes are overwritten.
worker_processes auto;
pid {layout.pid_file};
error_log {layout.error_log} warn;

events {{
    worker_connections 4096;
}}

http {{
    server_names_hash_bucket_size 128;
    access_log {root}/logs/access.log;
{temp}
    client_max_body_size 100m;
    server_tokens off;

    server {{
        listen {layout.http_port} default_server;
        return 404;
    }}

    include {layout.sites}/*.conf;
}}
"""


def render_site(site: Site, layout: NginxLayout) -> str:
    """One service's upstream and server block; values were validated by `Site`."""
    upstream = f"dockyard_{site.service}"
    servers = "\n".join(f"    server {u.address} max_fails=1 fail_timeout=5s;"
                        for u in site.upstreams)
    listens = [f"    listen {layout.http_port};"]
    if site.tls is not None:
        listens += [f"    listen {layout.https_port} ssl;",
                    f"    ssl_certificate {site.tls.certificate};",
                    f"    ssl_certificate_key {site.tls.key};"]
    listen_block = "\n".join(listens)
    return f"""# Managed by dockyard-agent for service {site.service}; changes are overwritten.
upstream {upstream} {{
{servers}
    keepalive 32;
}}

server {{
{listen_block}
    server_name {" ".join(site.server_names)};

    location / {{
        proxy_pass http://{upstream};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
"""


def _base_argv(binary: str, layout: NginxLayout) -> list[str]:
    return [binary, "-p", f"{layout.root}/", "-e", str(layout.error_log), "-c", str(layout.conf)]


def check_argv(binary: str, layout: NginxLayout) -> list[str]:
    return [*_base_argv(binary, layout), "-t", "-q"]


def start_argv(binary: str, layout: NginxLayout) -> list[str]:
    return _base_argv(binary, layout)


def reload_argv(binary: str, layout: NginxLayout) -> list[str]:
    return [*_base_argv(binary, layout), "-s", "reload"]


def stop_argv(binary: str, layout: NginxLayout) -> list[str]:
    return [*_base_argv(binary, layout), "-s", "quit"]
