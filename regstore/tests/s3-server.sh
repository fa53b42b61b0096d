#!/bin/sh
# The S3-compatible server the regstore S3 tests run against: moto's server mode.
#
#   s3-server.sh install [VENV]   install moto[server] into a virtual environment
#                                 (default: $HOME/.cache/cargohold-moto) and print the
#                                 variable that points the tests at it
#   s3-server.sh start PORT       run it on 127.0.0.1:PORT in the foreground
#
# The tests start their own server (one per test binary, on a free port) from
# $CARGOHOLD_MOTO_SERVER, else `moto_server` on the PATH; they only need it installed.
set -eu

venv_default="${HOME}/.cache/cargohold-moto"

case "${1:-}" in
install)
    venv="${2:-$venv_default}"
    if ! "$venv/bin/moto_server" --help >/dev/null 2>&1; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet 'moto[server]>=5.1,<6'
    fi
    "$venv/bin/moto_server" --help >/dev/null
    echo "export CARGOHOLD_MOTO_SERVER=$venv/bin/moto_server"
    ;;
start)
    port="${2:?usage: s3-server.sh start PORT}"
    exec "${CARGOHOLD_MOTO_SERVER:-moto_server}" -H 127.0.0.1 -p "$port"
    ;;
*)
    echo "usage: s3-server.sh install [VENV] | start PORT" >&2
    exit 2
    ;;
esac
