#!/usr/bin/env bash
# Installs the Debian packages digitd needs, or says which are missing.
#   scripts/install-deps.sh build   compile and serve
#   scripts/install-deps.sh test    also run the whole test suite (browser included)
#   scripts/install-deps.sh bench   also the benchmark peers
#   scripts/install-deps.sh fuzz    also clang/libFuzzer and valgrind
#                                   (tests/fuzz/run.sh, tests/faults/valgrind.sh)
# As root it runs apt-get itself; otherwise it prints the exact apt-get
# line and fails, so nothing half-works.
set -euo pipefail

# hershey-fonts-data: letters and symbols drawn as "not a digit" when
# training (nn/negatives.c) and in the generator tests.
build=(cmake make gcc pkg-config libmicrohttpd-dev libcjson-dev libstb-dev
       libpng-dev libjpeg62-turbo-dev check zlib1g-dev
       libseccomp-dev hershey-fonts-data)
test=("${build[@]}" python3 chromium curl haproxy)
bench=("${test[@]}" python3-numpy python3-torch libopenblas0-pthread python3-flask python3-pil gunicorn wrk
       nginx-light)
fuzz=("${build[@]}" python3 clang libclang-rt-14-dev libomp-14-dev valgrind)

case "${1:-build}" in
  build) want=("${build[@]}") ;;
  test) want=("${test[@]}") ;;
  bench) want=("${bench[@]}") ;;
  fuzz) want=("${fuzz[@]}") ;;
  *) echo "usage: $0 [build|test|bench|fuzz]" >&2; exit 2 ;;
esac

# kubectl (the deploy tests' kustomize check): Debian's kubernetes-client,
# unless some kubectl is already there (another package's would conflict).
if [[ "${1:-build}" == test || "${1:-build}" == bench ]] && ! command -v kubectl >/dev/null; then
  want+=(kubernetes-client)
fi
missing=()
for p in "${want[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
# The browser test needs Node.js >= 18 with npm: Debian 12's own nodejs
# (18) and npm are enough, because tests/browser pins playwright-core
# 1.61.1, the last release that supports Node 18 (npm view playwright-core
# engines). A node that is already there (Debian's, or NodeSource's, which
# bundles npm and conflicts with Debian's npm package) is used as it is;
# otherwise Debian's packages.
if [[ "${1:-build}" != build && "${1:-build}" != fuzz ]]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
  fi
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "digitd needs these Debian packages; as root, run:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
if command -v node >/dev/null; then
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [[ $major -lt 18 ]]; then
    echo "note: Node.js $major is older than the browser test needs (18); that test will fail" >&2
  fi
fi
