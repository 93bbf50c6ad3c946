#!/bin/sh
# Install promtool and prometheus (the Debian package "prometheus") for the
# metrics tests (tests/observability), when they are missing and this machine
# can: root, with apt-get. Run by `make test` before the tests.
#
# Never fails the build by itself: without the tools those tests skip with the
# reason, and with LRUKV_TEST_REQUIRE_PROMETHEUS=1 (set by .ci/run) they fail.
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_prometheus: promtool/prometheus are missing and cannot be installed here" \
         "(needs root and apt-get); the metrics tests that use them will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "ensure_prometheus: installing the Debian package prometheus for the metrics tests" >&2
if ! apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; then
    # A fresh machine may have no package lists yet.
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
        echo "ensure_prometheus: 'apt-get install -y prometheus' failed;" \
             "the metrics tests that need it will skip" >&2
fi
exit 0
