"""Starting the three servers the benchmark compares: berth (and a baseline berth build), registry:2 and nginx.

Each gets a data directory of its own under the run's work directory, a free port on 127.0.0.1 and a log
file. The registries get the same minimal registry:2 configuration (filesystem storage, deletes on); for
registry:2 it adds what the official registry:2 image ships in its own config (the in-memory blob
descriptor cache, the storage health check), since that is how users run it. nginx serves the very files
berth stored, with sendfile, as an unprivileged user when the driver runs as root.
"""

import os
import pwd
import shutil

from . import procs


class Target:
    """A registry under test: `key` names its column in the results ("berth", "registry2", "baseline")."""

    def __init__(self, key, label, proc, root):
        self.key = key
        self.label = label
        self.proc = proc
        self.root = root

    @property
    def url(self):
        return self.proc.url


def _yaml_config(root, port, registry2):
    lines = [
        "version: 0.1",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if registry2:
        lines += ["  headers:", "    X-Content-Type-Options: [nosniff]"]
    lines += [
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root}",
        "  delete:",
        "    enabled: true",
    ]
    if registry2:
        lines += [
            "  cache:",
            "    blobdescriptor: inmemory",
            "log:",
            "  fields:",
            "    service: registry",
            "health:",
            "  storagedriver:",
            "    enabled: true",
            "    interval: 10s",
            "    threshold: 3",
        ]
    return "\n".join(lines) + "\n"


def start_registry(procs_, work, key, label, argv_prefix, registry2=False):
    """Starts berth (`argv_prefix` = [binary, "serve"]) or registry:2 (["docker-registry", "serve"]).

    Both log at their default level (info: a line per request) to a file, as they run by default."""
    d = os.path.join(work, key)
    root = os.path.join(d, "data")
    os.makedirs(root)
    port = procs.free_port()
    cfg = os.path.join(d, "config.yml")
    with open(cfg, "w") as f:
        f.write(_yaml_config(root, port, registry2))
    proc = procs_.start(
        key,
        argv_prefix + [cfg],
        os.path.join(d, "server.log"),
        f"http://127.0.0.1:{port}",
        env=procs.clean_env({"HOME": d}),
        cwd=d,
    )
    procs.wait_http(proc, "/v2/")
    return Target(key, label, proc, root)


NGINX_CONF = """\
# Written by the berth benchmark for one run: unprivileged, foreground, its own pid and logs.
daemon off;
master_process on;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    default_type application/octet-stream;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
        # The image the skopeo workload lays out as files: the registry API's answers, served statically.
        location = /v2/ {{ default_type application/json; return 200 "{{}}"; }}
        location ~ ^/v2/.+/manifests/ {{ default_type application/vnd.oci.image.manifest.v1+json; }}
    }}
}}
"""


def _unprivileged():
    """(user, group) to run nginx as when we are root: nobody, its primary group."""
    if os.geteuid() != 0:
        return None, None
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def start_nginx(procs_, work, docroot, workers):
    """nginx serving `docroot` (files the caller links in) with sendfile, on a free port."""
    d = os.path.join(work, "nginx")
    os.makedirs(os.path.join(d, "tmp"))
    port = procs.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, port=port, root=docroot, workers=workers))
    uid, gid = _unprivileged()
    if uid is not None:
        # Its own directory must be writable by it, and every directory above the files readable.
        for dirpath, _, _ in os.walk(d):
            os.chown(dirpath, uid, gid)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = procs_.start(
        "nginx",
        [nginx, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
        os.path.join(d, "stderr.log"),
        f"http://127.0.0.1:{port}",
        user=uid,
        group=gid,
        cwd=d,
    )
    procs.wait_http(proc, "/")
    return proc


def find_blob_file(root, digest):
    """The file in which a registry stored `digest` (berth: blobs/sha256/ab/<hex>; registry:2:
    .../blobs/sha256/ab/<hex>/data), found by name so the benchmark does not hard-code a layout."""
    hexpart = digest.split(":", 1)[1]
    for dirpath, dirnames, filenames in os.walk(root):
        if hexpart in filenames:
            return os.path.join(dirpath, hexpart)
        if hexpart in dirnames and os.path.isfile(os.path.join(dirpath, hexpart, "data")):
            return os.path.join(dirpath, hexpart, "data")
    return None
