"""nginx configuration as a pure function of desired state, and the argv that drives nginx.

Each node runs two nginx instances. The EDGE holds the client connections (HTTP/HTTPS ports,
server names, TLS) and proxies every site to a unix socket of the SWITCH, which holds the
site's container upstreams. Switching upstreams reloads only the switch, whose reload closes
nothing but idle keep-alive connections of the edge: clients never see a connection close.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from dockyard.agent.models import Site
from dockyard.kernel.errors import InvalidInput

_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]+")
MAIN_CONF = "nginx.conf"
PID_FILE = "nginx.pid"
SWITCH_DIR = "switch"
SOCKETS_BASE = Path("/run/dockyard-nginx")
MAX_SOCKET_PATH = 107  # bytes: sun_path holds 108, the terminating NUL included
HEADER = "# Managed by dockyard-agent; changes are overwritten.\n"


@dataclass(frozen=True)
class NginxLayout:
    """Where one nginx instance keeps its files; every path lives under `root`.

    The edge layout listens on the ports; `switch_layout` is its switch instance, which
    listens only on the unix sockets in `sockets`."""

    root: Path
    http_port: int = 80
    https_port: int = 443
    switch: bool = False

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

    @property
    def switch_layout(self) -> NginxLayout:
        return NginxLayout(self.root / SWITCH_DIR, self.http_port, self.https_port, switch=True)

    @property
    def sockets(self) -> Path:
        """Short, and reachable by nginx's workers (user nobody) whatever the mode of the
        agent's state directory (under /root, say): one directory per switch instance."""
        return SOCKETS_BASE / hashlib.sha256(str(self.root).encode()).hexdigest()[:12]

    def site_file(self, service: str) -> Path:
        return self.sites / f"{service}.conf"

    def socket(self, service: str) -> Path:
        """The unix socket of `service`; refused when the kernel could not bind its path."""
        path = self.sockets / f"{service}.sock"
        if len(bytes(path)) > MAX_SOCKET_PATH:
            raise InvalidInput(
                f"the unix socket path {path} is {len(bytes(path))} bytes, over the limit of "
                f"{MAX_SOCKET_PATH}: use a shorter service name or agent state directory")
        return path


def render_main(layout: NginxLayout) -> str:
    """The main configuration: our paths and every site included; the edge also answers
    unknown names with a catch-all 404, the switch listens on nothing but its sites' sockets."""
    root = layout.root
    temp = "\n".join(
        f"    {kind}_temp_path {root / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    catch_all = "" if layout.switch else f"""    server {{
        listen {layout.http_port} default_server;
        return 404;
    }}

"""
    return f"""{HEADER}worker_processes auto;
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

{catch_all}    include {layout.sites}/*.conf;
}}
"""


def _upstream(name: str, servers: list[str]) -> str:
    lines = "".join(f"    server {server};\n" for server in servers)
    return f"upstream {name} {{\n{lines}    keepalive 32;\n}}\n"


def _location(upstream: str, directives: list[str], forwarded: dict[str, str]) -> str:
    headers = {"Connection": '""', "Host": "$host", **forwarded}
    lines = [f"proxy_pass http://{upstream};", *directives, "proxy_http_version 1.1;",
             *(f"proxy_set_header {name} {value};" for name, value in headers.items())]
    body = "".join(f"        {line}\n" for line in lines)
    return f"    location / {{\n{body}    }}\n"


_EDGE_RETRY = [
    "# Safe for every method on this hop: a reloading switch closes only IDLE keep-alive",
    "# connections and always answers a request it accepted, so a request that failed",
    "# here never reached it.",
    "proxy_next_upstream error timeout non_idempotent;",
]
_CLIENT_HEADERS = {"X-Real-IP": "$remote_addr",
                   "X-Forwarded-For": "$proxy_add_x_forwarded_for",
                   "X-Forwarded-Proto": "$scheme"}
_EDGE_HEADERS = {"X-Real-IP": "$http_x_real_ip",
                 "X-Forwarded-For": "$http_x_forwarded_for",
                 "X-Forwarded-Proto": "$http_x_forwarded_proto"}


def _listens(site: Site, layout: NginxLayout) -> str:
    listens = [f"listen {layout.http_port};"]
    if site.tls is not None:
        listens += [f"listen {layout.https_port} ssl;",
                    f"ssl_certificate {site.tls.certificate};",
                    f"ssl_certificate_key {site.tls.key};"]
    listens.append(f"server_name {' '.join(site.server_names)};")
    return "".join(f"    {line}\n" for line in listens)


def render_edge_site(site: Site, layout: NginxLayout) -> str:
    """The edge's server block of one service: names and TLS, proxied to the switch socket.
    It changes only when the names or TLS files do, never with the upstreams."""
    upstream = f"dockyard_edge_{site.service}"
    socket = layout.switch_layout.socket(site.service)
    return (f"# Managed by dockyard-agent for service {site.service}; changes are overwritten.\n"
            f"{_upstream(upstream, [f'unix:{socket}'])}\n"
            f"server {{\n{_listens(site, layout)}\n"
            f"{_location(upstream, _EDGE_RETRY, _CLIENT_HEADERS)}}}\n")


def render_switch_site(site: Site, layout: NginxLayout) -> str:
    """The switch's server of one service: its socket, proxied to the containers; it passes
    on the client headers the edge set."""
    upstream = f"dockyard_{site.service}"
    servers = [f"{u.address} max_fails=1 fail_timeout=5s" for u in site.upstreams]
    retry = ["proxy_next_upstream error timeout;"]
    return (f"# Managed by dockyard-agent for service {site.service}; changes are overwritten.\n"
            f"{_upstream(upstream, servers)}\n"
            f"server {{\n    listen unix:{layout.socket(site.service)};\n\n"
            f"{_location(upstream, retry, _EDGE_HEADERS)}}}\n")


def render_site(site: Site, layout: NginxLayout) -> str:
    """The site file of `site` for the instance `layout` describes."""
    return render_switch_site(site, layout) if layout.switch else render_edge_site(site, layout)


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
