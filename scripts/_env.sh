# Sourced by scripts/main and scripts/test: create or reuse the project's virtual environment
# (.venv by default, NGCDYN_VENV to override) and install ngcdyn with what it needs.
# torch is pinned to 2.13.0 so that pip takes the CPU build that lies on this kind of machine's
# disk instead of a multi-GB CUDA download (see README, "Set-up").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NGCDYN_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "[ngcdyn] creating virtual environment in $venv" >&2
  "$py" -m venv "$venv"
fi
# Re-install only when the dependency declaration changed (a stamp holds its hash).
stamp="$venv/.ngcdyn-installed"
want="$(cat "$root/pyproject.toml" "$root/scripts/_env.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[ngcdyn] installing dependencies (torch==2.13.0 CPU build, ngcdyn and its extras)" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[bench]"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
