# syntax=docker/dockerfile:1
# PgBouncer in transaction mode, between the gateways and workers and Postgres (docker/pgbouncer.ini,
# docs/SCALING.md): Debian bookworm's pgbouncer 1.18, the version scripts/cluster.sh tests.
# Build from the repository root: docker build -f docker/pgbouncer.Dockerfile -t sentinel-pgbouncer .
# The passwords are not in the image: mount PgBouncer's auth_file at /etc/pgbouncer/userlist.txt
# (docker-compose.yml's `pgbouncer-users` config).

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends pgbouncer \
    && rm -rf /var/lib/apt/lists/* /etc/pgbouncer/userlist.txt \
    && useradd --system --uid 10001 --user-group --no-create-home pgbouncer
COPY docker/pgbouncer.ini /etc/pgbouncer/pgbouncer.ini
USER 10001:10001
EXPOSE 6432
# SIGINT is PgBouncer 1.18's safe shutdown: it lets the transactions in flight finish, then exits.
# SIGTERM would drop them at once.
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/sbin/pgbouncer"]
CMD ["/etc/pgbouncer/pgbouncer.ini"]
