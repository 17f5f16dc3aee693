# A Citus 13.2 node on PostgreSQL 15 for the `citus` profile of docker/compose.yaml: the same
# image serves the coordinator, the workers and the one-shot registration (citus-node.sh).
#   podman build --format docker -f docker/citus.Dockerfile -t localhost/circa-citus:13.2.2 .
# Built from Citus's source on Debian 12's PostgreSQL 15, so it needs no registry but
# debian:bookworm-slim: docker/vendor/citus-<version>.tar.gz when it is there (machines without
# internet, see docker/vendor/README.md), else the release tarball from GitHub. Elsewhere
# Citus's own images (citusdata/citus) or packages do the same.
ARG CITUS_VERSION=13.2.2

# ---- build stage: Citus compiled against the server headers --------------------------------
FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
ARG CITUS_VERSION
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      build-essential postgresql-server-dev-15 liblz4-dev libzstd-dev libkrb5-dev libssl-dev \
      libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY docker/vendor/ ./vendor/
RUN set -e; t=vendor/citus-$CITUS_VERSION.tar.gz; \
    [ -f "$t" ] || curl -fsSL -o "$t" \
      "https://github.com/citusdata/citus/archive/refs/tags/v$CITUS_VERSION.tar.gz"; \
    tar xzf "$t"; cd "citus-$CITUS_VERSION"; \
    # Debian's PostgreSQL 15.20 exports have_createdb_privilege(), which Citus defines for 15 too.
    if grep -q have_createdb_privilege /usr/include/postgresql/15/server/commands/dbcommands.h; then \
      sed -i 's/^have_createdb_privilege(void)$/citus_unused_have_createdb_privilege(void)/' \
        src/include/pg_version_compat.h; \
    fi; \
    ./configure --without-libcurl >/dev/null; \
    make -j"$(nproc)" >/dev/null; \
    make install DESTDIR=/out >/dev/null
LABEL org.circa.stage=build

# ---- runtime stage: PostgreSQL 15, the extension, the node script --------------------------
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
ARG CITUS_VERSION
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
COPY --from=build /out/usr/ /usr/
COPY docker/citus-node.sh /usr/local/bin/citus-node
RUN chmod 0755 /usr/local/bin/citus-node
LABEL org.opencontainers.image.title="circa-citus" \
      org.opencontainers.image.description="Citus ${CITUS_VERSION} on PostgreSQL 15 for circa's compose profile citus"
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
WORKDIR /var/lib/postgresql
VOLUME /var/lib/postgresql/data
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=12 \
  CMD ["/usr/local/bin/citus-node", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/citus-node"]
CMD ["node"]
