# digitd: the handwritten-digit recognition service, as a container image.
#
#   docker build -t digitd .
#   docker run --rm -p 8080:8080 digitd
#
# Two stages from debian:bookworm-slim: `build` compiles digitd and runs
# its unit tests (the ones that need MNIST skip); the runtime stage holds
# only the runtime libraries, the stripped binary, the shipped models and
# the page, and runs as an unprivileged user. No registry here? See
# docs/docker.md (scripts/docker-base-image.sh makes the base image).
ARG BASE_IMAGE=debian:bookworm-slim

# ---- build ---------------------------------------------------------------
FROM ${BASE_IMAGE} AS build
# hershey-fonts-data: the generated "not a digit" negatives (unit tests and
# training a dense11 model)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make cmake pkg-config binutils \
      libmicrohttpd-dev libcjson-dev libstb-dev libpng-dev libjpeg62-turbo-dev \
      check zlib1g-dev libseccomp-dev hershey-fonts-data \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# RUN_UNIT_TESTS=0 skips the unit tests (a quicker image, not a checked one).
ARG RUN_UNIT_TESTS=1
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIGITD_MNIST_DIR= \
 && cmake --build build -j"$(nproc)" \
 && if [ "$RUN_UNIT_TESTS" = 1 ]; then \
      ctest --test-dir build -L unit -j"$(nproc)" --output-on-failure; \
    fi \
 && cmake --install build --prefix /out --strip

# ---- runtime -------------------------------------------------------------
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgomp1 libmicrohttpd12 libcjson1 libpng16-16 libjpeg62-turbo zlib1g libseccomp2 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt \
      /var/log/dpkg.log /var/log/alternatives.log \
 && groupadd --system --gid 10001 digitd \
 && useradd --system --uid 10001 --gid digitd --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin digitd
COPY --from=build /out/bin/digitd /usr/local/bin/digitd
# The shipped models (default.model is a link to the default one) and the
# page, owned by root: the daemon only reads them. Mount your own models
# directory over /models to serve another model.
COPY models/ /models/
COPY web/ /usr/share/digitd/web/
RUN digitd --version

# The daemon reads these; flags given after `serve` win over them.
ENV DIGITD_PORT=8080 \
    DIGITD_BIND=0.0.0.0 \
    DIGITD_MODEL=/models/default.model \
    DIGITD_WEB_ROOT=/usr/share/digitd/web
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# `digitd probe` asks the daemon's /readyz on DIGITD_PORT: no curl needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["digitd", "probe"]
# digitd serve finishes in-flight requests and exits on SIGTERM (or SIGINT).
STOPSIGNAL SIGTERM
ENTRYPOINT ["digitd"]
CMD ["serve"]
