#!/usr/bin/env bash
# Installs the Debian packages ddialab needs that are missing, for one purpose:
#   scripts/deps.sh build   compile ddialab
#   scripts/deps.sh test    build + what the test suite drives (curl, python3, promtool, clang)
#   scripts/deps.sh bench   test + the peers the benchmarks compare against (etcd, wrk)
# As root it runs apt-get; otherwise it prints the exact apt-get line and fails.
set -euo pipefail

purpose=${1:-build}
build_pkgs=(gcc make cmake pkg-config libh2o-dev libuv1-dev libssl-dev libcurl4-openssl-dev
    libjansson-dev libsqlite3-dev zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev librdkafka-dev)
test_pkgs=(libcmocka-dev curl python3 prometheus clang clang-format libclang-rt-14-dev iproute2 procps
    nftables kcat nodejs)
bench_pkgs=(etcd-server etcd-client wrk redis-server redis-tools)

case "$purpose" in
build) wanted=("${build_pkgs[@]}") ;;
test) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
bench) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
*)
    echo "usage: scripts/deps.sh build|test|bench" >&2
    exit 2
    ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "ddialab needs these Debian packages; run as root:" >&2
    echo "  apt-get update && $line" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
