#!/usr/bin/env bash
# Installs the Debian 12 packages modelzoo builds and runs with, if any is missing.
# Sourced by run.sh and test.sh; safe to run on its own.
set -euo pipefail

MODELZOO_PACKAGES=(
  cmake g++ make pkg-config
  libzmq3-dev cppzmq-dev          # the bus
  libmsgpack-cxx-dev              # msgpack-c (pins Boost 1.74)
  libboost-dev libboost-filesystem-dev  # Boost.Process v1 (uses Boost.Filesystem)
  libspdlog-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev
  libssl-dev                      # SHA-256 with SHA-NI
  libsodium-dev                   # encrypted models (secretstream), the decrypt extension
  libcurl4-openssl-dev            # the remote registry plugin and the SDK's HTTP base
  libzstd-dev                     # .zst models, the decompress extension
  libexpat1-dev                   # the object stores' XML answers (plugins/objstore/xml.h)
  libcpp-httplib-dev              # the example HTTP registry server
  libgtest-dev libgmock-dev       # tests
  clang libclang-rt-14-dev        # the fuzz targets (scripts/fuzz.sh: libFuzzer, ASan, UBSan)
  python3 python3-zmq python3-msgpack  # Python plugins (the spec's example runs in the tests)
  curl bc                         # bench/hf_bench.sh: curl is the baseline, bc the arithmetic
  docker-registry skopeo umoci apache2-utils  # the oci plugin's tests: a real registry, a second client, htpasswd -B
  python3-botocore                # the S3 signer is checked against botocore's (tests/unit/sigv4_test.cc)
  awscli                          # fills the s3rver bucket of the s3 plugin's tests, and bench/s3_bench.sh's baseline
  python3-azure                   # Microsoft's blob client fills Azurite for the azure-blob plugin's tests
  python3-google-auth             # Google's library verifies the gcs plugin's service-account JWTs (tests/gcs/fake_gcs.py)
  openssl                         # the gcs plugin's tests make service-account RSA keys with it
)

missing=()
for p in "${MODELZOO_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# tests/hfhub/js_client_test.sh runs the hub's official JS client against the fake hub. A machine
# that already has Node.js and npm (NodeSource's nodejs bundles npm, and Debian's npm package
# conflicts with it) keeps them; only a machine without npm gets Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  echo "modelzoo: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
