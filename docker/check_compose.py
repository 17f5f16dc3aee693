#!/usr/bin/env python3
"""Checks docker/compose.yaml: services, images, build, volumes, healthchecks and wiring, also of
the `citus` profile (a coordinator, two workers, their registration and circad on them).

Usage: check_compose.py [path/to/compose.yaml]. Prints one line per problem and exits 1 when
there is any; also runs `docker compose config` when a docker engine and compose plugin exist.
"""
import os
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import yaml

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "compose.yaml")
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)
    return cond


def env_of(svc):
    """environment as a dict, whether written as a mapping or as a list of KEY=VALUE."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def healthcheck_ok(name, svc):
    hc = svc.get("healthcheck")
    if not check(isinstance(hc, dict) and not hc.get("disable"), f"{name}: no healthcheck"):
        return
    test = hc.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    check(isinstance(test, list) and len(test) >= 2 and test[0] in ("CMD", "CMD-SHELL"),
          f"{name}: healthcheck test must be [CMD…] or [CMD-SHELL, …], got {test!r}")
    return " ".join(str(t) for t in test or [])


def ports_of(svc):
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((str(p.get("published")), str(p.get("target"))))
        else:
            parts = str(p).split("/")[0].split(":")
            out.append((parts[-2] if len(parts) >= 2 else None, parts[-1]))
    return out


with open(path, encoding="utf-8") as f:
    doc = yaml.safe_load(f)
check(isinstance(doc, dict), "compose file is not a mapping")
services = (doc or {}).get("services") or {}
volumes = (doc or {}).get("volumes") or {}
for s in ("postgres", "mosquitto", "circad"):
    check(s in services, f"service {s} is missing")

pg = services.get("postgres") or {}
if pg:
    check(pg.get("image") == "postgres:15", f"postgres: image is {pg.get('image')!r}, expected postgres:15")
    mounts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in pg.get("volumes") or []]
    data = [m for m in mounts if m.split(":")[1:2] == ["/var/lib/postgresql/data"]]
    if check(data, "postgres: nothing mounted on /var/lib/postgresql/data"):
        vol = data[0].split(":")[0]
        check(vol in volumes, f"postgres: {vol!r} is not a named volume declared under volumes:")
    test = healthcheck_ok("postgres", pg)
    check(test is None or "pg_isready" in test, f"postgres: healthcheck does not use pg_isready: {test!r}")
    penv = env_of(pg)
    for k, v in (("POSTGRES_USER", "circa"), ("POSTGRES_PASSWORD", "circa"), ("POSTGRES_DB", "circa")):
        check(penv.get(k) == v, f"postgres: {k} is {penv.get(k)!r}, expected {v!r}")

mq = services.get("mosquitto") or {}
if mq:
    check(mq.get("image") == "eclipse-mosquitto:2", f"mosquitto: image is {mq.get('image')!r}, expected eclipse-mosquitto:2")

cd = services.get("circad") or {}
if cd:
    build = cd.get("build")
    if check(isinstance(build, dict), "circad: build must be a mapping with context and dockerfile"):
        check(build.get("context") == "..", f"circad: build context is {build.get('context')!r}, expected '..'")
        check(build.get("dockerfile") == "docker/Dockerfile",
              f"circad: dockerfile is {build.get('dockerfile')!r}, expected docker/Dockerfile")
        ctx = os.path.join(os.path.dirname(os.path.abspath(path)), build.get("context") or ".")
        check(os.path.isfile(os.path.join(ctx, build.get("dockerfile") or "Dockerfile")),
              "circad: the dockerfile does not exist relative to the build context")
    env = env_of(cd)
    u = urlsplit(env.get("DATABASE_URL") or "")
    check(u.scheme in ("postgresql", "postgres"), f"circad: DATABASE_URL {env.get('DATABASE_URL')!r} is not a postgresql:// URL")
    check(u.hostname == "postgres", f"circad: DATABASE_URL host is {u.hostname!r}, expected the postgres service")
    check(u.port == 5432, f"circad: DATABASE_URL port is {u.port!r}, expected 5432")
    check(u.path == "/circa" and u.username == "circa" and u.password == "circa",
          "circad: DATABASE_URL must be postgresql://circa:circa@postgres:5432/circa")
    check(env.get("CIRCA_DEMO") == "1", f"circad: CIRCA_DEMO is {env.get('CIRCA_DEMO')!r}, expected '1'")
    listen = env.get("CIRCA_LISTEN")
    check(listen is None or listen.endswith(":8080") and not listen.startswith("127."),
          f"circad: CIRCA_LISTEN={listen!r} is not reachable through the published port 8080")
    dep = cd.get("depends_on")
    if check(isinstance(dep, dict) and "postgres" in dep, "circad: depends_on postgres (long form) is missing"):
        check((dep["postgres"] or {}).get("condition") == "service_healthy",
              "circad: depends_on postgres must have condition service_healthy")
    check(("8080", "8080") in ports_of(cd), f"circad: port 8080:8080 not published (ports {cd.get('ports')!r})")
    for v in cd.get("volumes") or []:
        src = v.split(":")[0] if isinstance(v, str) else v.get("source")
        if src and not src.startswith((".", "/", "~")):
            check(src in volumes, f"circad: volume {src!r} is not declared under volumes:")
    check(str(cd.get("stop_signal", "SIGTERM")) == "SIGTERM", "circad: stop_signal must be SIGTERM")

# Profile citus: a coordinator and two workers (one image), their registration, circad on them.
NODES = ("citus-coordinator", "citus-worker-1", "citus-worker-2")
for name in ("postgres", "mosquitto", "circad"):
    check(not (services.get(name) or {}).get("profiles"),
          f"{name}: has profiles; `docker compose up` must start it without --profile")
for name in NODES + ("citus-setup", "circad-citus"):
    svc = services.get(name)
    if check(isinstance(svc, dict), f"service {name} (profile citus) is missing"):
        check(svc.get("profiles") == ["citus"], f"{name}: profiles is {svc.get('profiles')!r}, expected [citus]")
node_vols = set()
for name in NODES + ("citus-setup",):
    svc = services.get(name) or {}
    build = svc.get("build") or {}
    check(build.get("dockerfile") == "docker/citus.Dockerfile" and build.get("context") == "..",
          f"{name}: build must be context '..', dockerfile docker/citus.Dockerfile")
    ctx = os.path.join(os.path.dirname(os.path.abspath(path)), "..")
    check(os.path.isfile(os.path.join(ctx, "docker/citus.Dockerfile")), "docker/citus.Dockerfile does not exist")
    check(svc.get("image") == "localhost/circa-citus:13.2.2",
          f"{name}: image is {svc.get('image')!r}, expected localhost/circa-citus:13.2.2 (one image for all)")
    env = env_of(svc)
    for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        check(env.get(k) == "circa", f"{name}: {k} is {env.get(k)!r}, expected 'circa'")
for name in NODES:
    svc = services.get(name) or {}
    test = healthcheck_ok(name, svc)
    check(test is None or "--healthcheck" in test, f"{name}: healthcheck is not citus-node --healthcheck")
    data = [v for v in svc.get("volumes") or [] if isinstance(v, str) and v.endswith(":/var/lib/postgresql/data")]
    if check(len(data) == 1, f"{name}: one named volume on /var/lib/postgresql/data expected"):
        vol = data[0].split(":")[0]
        check(vol in volumes, f"{name}: volume {vol!r} is not declared under volumes:")
        check(vol not in node_vols, f"{name}: shares its data volume {vol!r} with another node")
        node_vols.add(vol)
    check(not svc.get("ports"), f"{name}: publishes ports; only circad-citus needs to be reachable")
setup = services.get("citus-setup") or {}
if setup:
    check(setup.get("command") == ["register"], f"citus-setup: command is {setup.get('command')!r}, expected [register]")
    env = env_of(setup)
    check(env.get("CITUS_COORDINATOR") == "citus-coordinator:5432",
          f"citus-setup: CITUS_COORDINATOR is {env.get('CITUS_COORDINATOR')!r}")
    check((env.get("CITUS_WORKERS") or "").split() == ["citus-worker-1:5432", "citus-worker-2:5432"],
          f"citus-setup: CITUS_WORKERS is {env.get('CITUS_WORKERS')!r}")
    dep = setup.get("depends_on") or {}
    for n in NODES:
        check(isinstance(dep, dict) and (dep.get(n) or {}).get("condition") == "service_healthy",
              f"citus-setup: must depend on {n} being healthy")
    check(str(setup.get("restart")) == "no", "citus-setup: a one-shot job must not restart")
cc = services.get("circad-citus") or {}
if cc:
    build = cc.get("build") or {}
    check(build.get("dockerfile") == "docker/Dockerfile" and cc.get("image") == (cd or {}).get("image"),
          "circad-citus: must build docker/Dockerfile into circad's image")
    env = env_of(cc)
    u = urlsplit(env.get("DATABASE_URL") or "")
    check(u.hostname == "citus-coordinator" and u.port == 5432 and u.path == "/circa"
          and u.username == "circa" and u.password == "circa",
          f"circad-citus: DATABASE_URL must be postgresql://circa:circa@citus-coordinator:5432/circa, got {env.get('DATABASE_URL')!r}")
    dep = cc.get("depends_on") or {}
    check(isinstance(dep, dict) and (dep.get("citus-setup") or {}).get("condition") == "service_completed_successfully",
          "circad-citus: must depend on citus-setup completed successfully (workers added before migrate)")
    cports = ports_of(cc)
    check(("8081", "8080") in cports, f"circad-citus: port 8081:8080 not published (ports {cc.get('ports')!r})")
    check(not set(p for p, _ in cports) & set(p for p, _ in ports_of(cd)), "circad-citus: publishes a port circad publishes")
    for v in cc.get("volumes") or []:
        src = v.split(":")[0] if isinstance(v, str) else v.get("source")
        check(src in volumes, f"circad-citus: volume {src!r} is not declared under volumes:")
        check(src not in [x.split(":")[0] for x in (cd or {}).get("volumes") or [] if isinstance(x, str)],
              f"circad-citus: shares volume {src!r} with circad (another database's key)")

# `docker compose config` validates against the real compose specification.
docker = shutil.which("docker")
if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0 \
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
    r = subprocess.run([docker, "compose", "-f", path, "config", "-q"], capture_output=True, text=True)
    check(r.returncode == 0, f"docker compose config: {r.stderr.strip()}")
    print("check_compose: docker compose config accepts the file")
else:
    print("check_compose: no docker engine with compose; `docker compose config` not run")

for p in problems:
    print(f"check_compose: {path}: {p}")
if not problems:
    print(f"check_compose: {path}: ok")
sys.exit(1 if problems else 0)
