#!/bin/sh
# docker-base-image.sh: make the local base image `debian:bookworm-slim`
# where no registry is reachable (see ../shared/ENVIRONMENT.md,
# "Containers"). Needs root, debootstrap and a running Docker daemon
# (DOCKER_HOST as usual).
#
#   scripts/docker-base-image.sh [--force]
#
# Does nothing when the image exists (--force rebuilds it). Otherwise it
# imports a cached root filesystem tarball, or first makes one:
# `debootstrap --variant=minbase bookworm` from the Debian mirror the host's
# apt sources name (read at run time, never stored in the project), with
# the host's Debian apt sources and apt settings copied in, so that
# `apt-get` inside image builds reaches the same mirror. The tree is then
# slimmed as the official "-slim" images are (no manuals, docs or locales,
# and dpkg told to keep it that way).
#
#   DIGITD_DOCKER_CACHE  where the tarball is kept
#                        (default /var/cache/digitd-docker)
#   DEBIAN_MIRROR        override the mirror taken from the apt sources
#   BASE_IMAGE           image name to create (default debian:bookworm-slim)
# Exit status: 0 done, 1 failure, 77 not root.
set -eu

IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
SUITE=bookworm
CACHE=${DIGITD_DOCKER_CACHE:-/var/cache/digitd-docker}
ARCH=$(dpkg --print-architecture)
TARBALL=$CACHE/debian-$SUITE-slim-$ARCH.tar.gz

say() { printf 'docker-base-image.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

force=0
case "${1:-}" in
--force) force=1 ;;
"") ;;
-h | --help)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*) die "unknown option $1 (try --help)" ;;
esac

if [ "$(id -u)" != 0 ]; then
    say "must run as root (debootstrap and docker import); skipping"
    exit 77
fi
docker version >/dev/null 2>&1 || die "no Docker daemon answers (DOCKER_HOST=${DOCKER_HOST:-unset}); start one with scripts/dockerd.sh start"

if [ $force = 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "$IMAGE exists"
    exit 0
fi

# Every apt source file of the host, one-line (.list) and deb822 (.sources).
apt_source_files() {
    [ -f /etc/apt/sources.list ] && echo /etc/apt/sources.list
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && echo "$f"
    done
    return 0
}

# The first mirror that serves "$SUITE" (the suite itself, not -updates or
# -security), from the host's apt sources.
find_mirror() {
    for f in $(apt_source_files); do
        case "$f" in
        *.sources)
            # deb822 stanzas: paragraphs of "Key: value" lines.
            awk -v suite="$SUITE" '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "" && !disabled) {
                        split(uris, u, " "); print u[1]; found = 1; exit
                    }
                    types = suites = uris = ""; disabled = 0
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                tolower($1) == "types:"   { $1 = ""; types = $0 }
                tolower($1) == "uris:"    { $1 = ""; sub(/^ +/, ""); uris = $0 }
                tolower($1) == "suites:"  { $1 = ""; sub(/^ +/, ""); suites = $0 }
                tolower($1) == "enabled:" && tolower($2) == "no" { disabled = 1 }
                END { if (!found) flush() }
            ' "$f"
            ;;
        *)
            # deb [options] URI suite components...
            awk -v suite="$SUITE" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit }
                }
            ' "$f"
            ;;
        esac
    done | head -n 1
}

make_tarball() {
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found: apt-get install -y debootstrap"
    mirror=${DEBIAN_MIRROR:-$(find_mirror)}
    [ -n "$mirror" ] || die "no apt source for $SUITE found in /etc/apt; set DEBIAN_MIRROR"
    say "debootstrap $SUITE from $mirror (about a minute)"
    work=$(mktemp -d /var/tmp/digitd-rootfs.XXXXXX)
    trap 'rm -rf "$work"' EXIT INT TERM
    root=$work/root
    debootstrap --variant=minbase "$SUITE" "$root" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        die "debootstrap failed"
    }

    # The host's Debian apt sources: the files that name the mirror (others,
    # such as third-party repositories, need keys the image does not have).
    rm -f "$root/etc/apt/sources.list"
    for f in $(apt_source_files); do
        if grep -qF "$mirror" "$f"; then
            cp "$f" "$root/etc/apt/${f#/etc/apt/}"
        fi
    done
    # The host's apt settings, except hooks that run host programs.
    for f in /etc/apt/apt.conf.d/*; do
        [ -f "$f" ] || continue
        grep -qE 'Invoke|Pre-Install-Pkgs' "$f" && continue
        cp "$f" "$root/etc/apt/apt.conf.d/"
    done

    # Slim it as the official -slim images are, and keep it so.
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# digitd base image: leave out manuals, docs and translations, as the
# official debian:*-slim images do.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    printf 'Acquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    printf 'Acquire::GzipIndexes "true";\n' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$root/etc/apt/apt.conf.d/docker-no-recommends"
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    for d in groff info linda lintian man; do
        rm -rf "${root:?}/usr/share/$d"
    done
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
        -exec rm -rf {} + 2>/dev/null || true
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/ldconfig/aux-cache \
        "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/* \
        "$root/etc/machine-id" "$root/etc/hostname"
    : >"$root/etc/machine-id"

    mkdir -p "$CACHE"
    tar --numeric-owner -C "$root" -czf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$work"
    trap - EXIT INT TERM
    say "cached $TARBALL ($(du -h "$TARBALL" | cut -f1))"
}

if [ $force = 1 ] || [ ! -s "$TARBALL" ]; then
    make_tarball
fi
docker import --change 'CMD ["bash"]' "$TARBALL" "$IMAGE" >/dev/null
say "imported $IMAGE from $TARBALL ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }'))"
