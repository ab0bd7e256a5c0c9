"""nginx configuration is a pure function of the desired state: tested as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.agent import nginx
from dockyard.agent.models import Site, TlsFiles, Upstream
from dockyard.agent.nginx import NginxLayout

LAYOUT = NginxLayout(Path("/srv/agent/nginx"), http_port=8080, https_port=8443)
SWITCH = LAYOUT.switch_layout
SITE = Site(service="web", server_names=["shop.example.com", "www.shop.example.com"],
            upstreams=[Upstream(host="10.0.0.2", port=18000), Upstream(host="::1", port=18001)])

EXPECTED_EDGE_SITE = """# Managed by dockyard-agent for service web; changes are overwritten.
upstream dockyard_edge_web {
    server unix:/run/dockyard-nginx/bef87d8b30de/web.sock;
    keepalive 32;
}

server {
    listen 8080;
    server_name shop.example.com www.shop.example.com;

    location / {
        proxy_pass http://dockyard_edge_web;
        # Safe for every method on this hop: a reloading switch closes only IDLE keep-alive
        # connections and always answers a request it accepted, so a request that failed
        # here never reached it.
        proxy_next_upstream error timeout non_idempotent;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
}
"""

EXPECTED_SWITCH_SITE = """# Managed by dockyard-agent for service web; changes are overwritten.
upstream dockyard_web {
    server 10.0.0.2:18000 max_fails=1 fail_timeout=5s;
    server [::1]:18001 max_fails=1 fail_timeout=5s;
    keepalive 32;
}

server {
    listen unix:/run/dockyard-nginx/bef87d8b30de/web.sock;

    location / {
        proxy_pass http://dockyard_web;
        proxy_next_upstream error timeout;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $http_x_real_ip;
        proxy_set_header X-Forwarded-For $http_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;
    }
}
"""

EXPECTED_EDGE_MAIN = """# Managed by dockyard-agent; changes are overwritten.
worker_processes auto;
pid /srv/agent/nginx/nginx.pid;
error_log /srv/agent/nginx/logs/error.log warn;

events {
    worker_connections 4096;
}

http {
    server_names_hash_bucket_size 128;
    access_log /srv/agent/nginx/logs/access.log;
    client_body_temp_path /srv/agent/nginx/tmp/client_body;
    proxy_temp_path /srv/agent/nginx/tmp/proxy;
    fastcgi_temp_path /srv/agent/nginx/tmp/fastcgi;
    uwsgi_temp_path /srv/agent/nginx/tmp/uwsgi;
    scgi_temp_path /srv/agent/nginx/tmp/scgi;
    client_max_body_size 100m;
    server_tokens off;

    server {
        listen 8080 default_server;
        return 404;
    }

    include /srv/agent/nginx/sites/*.conf;
}
"""

EXPECTED_SWITCH_MAIN = """# Managed by dockyard-agent; changes are overwritten.
worker_processes auto;
pid /srv/agent/nginx/switch/nginx.pid;
error_log /srv/agent/nginx/switch/logs/error.log warn;

events {
    worker_connections 4096;
}

http {
    server_names_hash_bucket_size 128;
    access_log /srv/agent/nginx/switch/logs/access.log;
    client_body_temp_path /srv/agent/nginx/switch/tmp/client_body;
    proxy_temp_path /srv/agent/nginx/switch/tmp/proxy;
    fastcgi_temp_path /srv/agent/nginx/switch/tmp/fastcgi;
    uwsgi_temp_path /srv/agent/nginx/switch/tmp/uwsgi;
    scgi_temp_path /srv/agent/nginx/switch/tmp/scgi;
    client_max_body_size 100m;
    server_tokens off;

    include /srv/agent/nginx/switch/sites/*.conf;
}
"""


def test_edge_site_text() -> None:
    assert nginx.render_edge_site(SITE, LAYOUT) == EXPECTED_EDGE_SITE
    assert nginx.render_site(SITE, LAYOUT) == EXPECTED_EDGE_SITE


def test_switch_site_text() -> None:
    assert nginx.render_switch_site(SITE, SWITCH) == EXPECTED_SWITCH_SITE
    assert nginx.render_site(SITE, SWITCH) == EXPECTED_SWITCH_SITE


def test_the_edge_site_does_not_change_with_the_upstreams() -> None:
    moved = SITE.model_copy(update={"upstreams": [Upstream(host="10.0.0.9", port=19000)]})
    assert nginx.render_edge_site(moved, LAYOUT) == EXPECTED_EDGE_SITE
    assert nginx.render_switch_site(moved, SWITCH) != EXPECTED_SWITCH_SITE


def test_edge_site_with_tls_listens_on_both_ports_with_its_files() -> None:
    tls = TlsFiles(certificate="/srv/agent/certs/shop.crt", key="/srv/agent/certs/shop.key")
    site = SITE.model_copy(update={"tls": tls})
    assert nginx.render_edge_site(site, LAYOUT) == EXPECTED_EDGE_SITE.replace(
        "    listen 8080;\n",
        "    listen 8080;\n    listen 8443 ssl;\n"
        "    ssl_certificate /srv/agent/certs/shop.crt;\n"
        "    ssl_certificate_key /srv/agent/certs/shop.key;\n",
    )
    assert nginx.render_switch_site(site, SWITCH) == EXPECTED_SWITCH_SITE


def test_main_configuration_text() -> None:
    assert nginx.render_main(LAYOUT) == EXPECTED_EDGE_MAIN


def test_switch_main_configuration_listens_on_no_port() -> None:
    assert nginx.render_main(SWITCH) == EXPECTED_SWITCH_MAIN


def test_layouts() -> None:
    assert LAYOUT.switch_layout == NginxLayout(Path("/srv/agent/nginx/switch"), 8080, 8443,
                                               switch=True)
    assert LAYOUT.site_file("web") == Path("/srv/agent/nginx/sites/web.conf")
    assert SWITCH.site_file("web") == Path("/srv/agent/nginx/switch/sites/web.conf")
    assert SWITCH.pid_file == Path("/srv/agent/nginx/switch/nginx.pid")
    assert SWITCH.socket("web") == Path("/run/dockyard-nginx/bef87d8b30de/web.sock")


def test_argv() -> None:
    base = ["nginx", "-p", "/srv/agent/nginx/", "-e", "/srv/agent/nginx/logs/error.log",
            "-c", "/srv/agent/nginx/nginx.conf"]
    assert nginx.check_argv("nginx", LAYOUT) == [*base, "-t", "-q"]
    assert nginx.start_argv("nginx", LAYOUT) == base
    assert nginx.reload_argv("nginx", LAYOUT) == [*base, "-s", "reload"]
    assert nginx.stop_argv("nginx", LAYOUT) == [*base, "-s", "quit"]
    assert nginx.start_argv("nginx", SWITCH) == [
        "nginx", "-p", "/srv/agent/nginx/switch/", "-e",
        "/srv/agent/nginx/switch/logs/error.log", "-c", "/srv/agent/nginx/switch/nginx.conf"]


def test_socket_paths_stay_short_whatever_the_agent_directory() -> None:
    deep = NginxLayout(Path("/srv/" + "d" * 200)).switch_layout
    assert len(str(deep.socket("a" * 63))) < 107
    assert deep.socket("web").parent != SWITCH.socket("web").parent


@pytest.mark.parametrize(
    "root", ["relative/dir", "/srv/my agent", "/srv/a;b", "/srv/{x}", "/srv/x\n"])
def test_an_nginx_directory_that_would_break_the_file_is_refused(root: str) -> None:
    with pytest.raises(ValueError, match="plain path"):
        NginxLayout(Path(root))
