#!/usr/bin/env bash
# Install the Debian packages strata needs, only those that are missing.
# Called by `make test`, `make demo` and `make bench`, so each works first on
# a fresh Debian 12 machine.
set -euo pipefail
# python3-sentencepiece: the reference tokenizer tests/test_spm_ref.py checks against.
pkgs=(build-essential libopenblas-dev liblapacke-dev libhdf5-dev libcjson-dev
      pkg-config python3-matplotlib python3-numpy python3-h5py python3-xarray
      python3-h5netcdf python3-netcdf4 hdf5-tools curl
      openmpi-bin libopenmpi-dev python3-sentencepiece)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
