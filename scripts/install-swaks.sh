#!/usr/bin/env bash
# Install swaks with its TLS support (Debian packages), the real SMTP client that
# tests/email/test_smtp.py drives. Idempotent: does nothing when both are there already;
# otherwise one `apt-get update`, then one install.
set -euo pipefail

has_swaks_with_tls() {
  command -v swaks >/dev/null 2>&1 && perl -MNet::SSLeay -e 1 >/dev/null 2>&1
}

if has_swaks_with_tls; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing swaks (Debian packages swaks, libnet-ssleay-perl)..." >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  swaks libnet-ssleay-perl >&2
has_swaks_with_tls
