"""nginx configuration is a pure function of the desired state: tested as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.agent import nginx
from dockyard.agent.models import Site, TlsFiles, Upstream
from dockyard.agent.nginx import NginxLayout

LAYOUT = NginxLayout(Path("/srv/agent/nginx"), http_port=8080, https_port=8443)
SITE = Site(service="web", server_names=["shop.example.com", "www.shop.example.com"],
            upstreams=[Upstream(host="10.0.0.2", port=18000), Upstream(host="::1", port=18001)])

EXPECTED_SITE = """# Managed by dockyard-agent for service web; changes are overwritten.
upstream dockyard_web {
    server 10.0.0.2:18000 max_fails=1 fail_timeout=5s;
    server [::1]:18001 max_fails=1 fail_timeout=5s;
    keepalive 32;
}

server {
    listen 8080;
    server_name shop.example.com www.shop.example.com;

    location / {
        proxy_pass http://dockyard_web;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
}
"""


def test_site_text() -> None:
    assert nginx.render_site(SITE, LAYOUT) == EXPECTED_SITE


def test_site_with_tls_listens_on_both_ports_with_its_files() -> None:
    tls = TlsFiles(certificate="/srv/agent/certs/shop.crt", key="/srv/agent/certs/shop.key")
    text = nginx.render_site(SITE.model_copy(update={"tls": tls}), LAYOUT)
    assert text == EXPECTED_SITE.replace(
        "    listen 8080;\n",
        "    listen 8080;\n    listen 8443 ssl;\n"
        "    ssl_certificate /srv/agent/certs/shop.crt;\n"
        "    ssl_certificate_key /srv/agent/certs/shop.key;\n",
    )


def test_main_configuration_text() -> None:
    assert nginx.render_main(LAYOUT) == """# Managed by dockyard-agent; changes are overwritten.
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


def test_argv() -> None:
    base = ["nginx", "-p", "/srv/agent/nginx/", "-e", "/srv/agent/nginx/logs/error.log",
            "-c", "/srv/agent/nginx/nginx.conf"]
    assert nginx.check_argv("nginx", LAYOUT) == [*base, "-t", "-q"]
    assert nginx.start_argv("nginx", LAYOUT) == base
    assert nginx.reload_argv("nginx", LAYOUT) == [*base, "-s", "reload"]
    assert nginx.stop_argv("nginx", LAYOUT) == [*base, "-s", "quit"]
    assert LAYOUT.site_file("web") == Path("/srv/agent/nginx/sites/web.conf")


@pytest.mark.parametrize(
    "root", ["relative/dir", "/srv/my agent", "/srv/a;b", "/srv/{x}", "/srv/x\n"])
def test_an_nginx_directory_that_would_break_the_file_is_refused(root: str) -> None:
    with pytest.raises(ValueError, match="plain path"):
        NginxLayout(Path(root))
