#!/usr/bin/env bash
# The sandbox conformance suite, the sandbox CLI tests and the env contract tests as an ordinary user
# account (as most users run agentkit: the bwrap backend then runs rootless, in a user namespace).
# Needs root: it creates the account (AGENTKIT_CI_USER, default akci) and, where the account cannot reach
# this checkout's .venv, grants execute-only (traverse) permission on the directories in the way, printing
# each one. A mode that does not work fails (AGENTKIT_REQUIRE_SANDBOXES=1), never skips. The docker backend
# is left out on purpose: the Podman socket is root's.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
U=${AGENTKIT_CI_USER:-akci}
if [ "$(id -u)" != 0 ]; then
  echo "sandbox-as-user: needs root (it creates the account $U)" >&2
  exit 2
fi
id "$U" >/dev/null 2>&1 || useradd -m "$U"
H=$(getent passwd "$U" | cut -d: -f6)
py=$top/.venv/bin/python
as_user() { runuser -u "$U" -- env -i PATH=/usr/bin:/bin HOME="$H" LANG=C.UTF-8 "$@"; }

# Traverse permission on every directory between / and what the account must read (the checkout, the
# venv and the interpreter it links to), only where it is missing.
real=$(readlink -f "$py")
base=$("$py" -c 'import sys; print(sys.base_prefix)')
for target in "$top" "$real" "$base"; do
  d=$(dirname "$target")
  [ -d "$target" ] && d=$target
  while [ "$d" != / ]; do
    if ! as_user test -x "$d"; then
      chmod o+x "$d"
      echo "sandbox-as-user: granted traverse (o+x) on $d"
    fi
    d=$(dirname "$d")
  done
done
if ! as_user "$py" -c "import agentkit.envs.sandbox" 2>/tmp/sandbox-as-user.err; then
  echo "sandbox-as-user: $U cannot import agentkit from $top/.venv: $(tail -1 /tmp/sandbox-as-user.err)" >&2
  exit 1
fi

started=$(date +%s)
cd "$top"
as_user AGENTKIT_REQUIRE_SANDBOXES=1 PYTHONDONTWRITEBYTECODE=1 AGENTKIT_CACHE="$H/.cache/agentkit" \
  "$py" -m pytest -q -p no:cacheprovider -m "not docker" \
  tests/sandbox/test_sandbox_conformance.py tests/sandbox/test_sandbox_cli.py tests/envs/test_contract.py
echo "sandbox-as-user: passed as $U (uid $(id -u "$U")) in $(( $(date +%s) - started )) s"
