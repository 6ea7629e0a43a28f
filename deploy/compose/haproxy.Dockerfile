# Debian's haproxy (2.6) with deploy/compose/haproxy.cfg. Built from the
# same local debian:bookworm-slim as digitd's image (scripts/docker-base-image.sh).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
RUN DIGITD_LB_BIND=127.0.0.1:1 DIGITD_REPLICA1=127.0.0.1:2 DIGITD_REPLICA2=127.0.0.1:3 \
    DIGITD_REPLICA3=127.0.0.1:4 haproxy -c -f /etc/haproxy/haproxy.cfg
USER haproxy
STOPSIGNAL SIGUSR1
ENTRYPOINT ["haproxy", "-db", "-W", "-f", "/etc/haproxy/haproxy.cfg"]
