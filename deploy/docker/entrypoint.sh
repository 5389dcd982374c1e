#!/bin/sh
# The image's entry point: the first argument says what to run.
#   placement|lock|node [OPTION...]   ringstore-placement|-lock|-node OPTION...
#   ringctl [ARGUMENT...]             ringctl ARGUMENT...
#   anything else                     run as given (sh, ringstore-make-keys ...)
# Settings come from RINGSTORE_* variables (or --config FILE), see deploy/README.md.
set -eu
case "${1:-}" in
    placement | lock | node)
        service=$1
        shift
        exec "/usr/local/bin/ringstore-$service" "$@"
        ;;
    "")
        echo "usage: placement|lock|node [OPTION...], or ringctl [ARGUMENT...], or a command" >&2
        exit 64
        ;;
    *)
        exec "$@"
        ;;
esac
