# Shared by scripts/up and scripts/test: install what is missing, never more.
# shellcheck shell=bash

need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    return 1
  fi
  echo "installing system packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_bin() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Python 3.11 or newer is required" >&2
  return 1
}

# ensure_venv EXTRA: a virtual environment in .venv with the package (and EXTRA) installed at
# the versions pinned in constraints.txt; reinstalls only when either file changed since.
ensure_venv() {
  local extra="$1" stamp=".venv/.installed-$1"
  if [ ! -x .venv/bin/python ]; then
    "$(python_bin)" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    echo "installing Python packages into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".${extra:+[$extra]}"
    touch "$stamp"
  fi
}

# build_dashboard: the Svelte dashboard built into the package (served at /), its typed API
# client generated from this tree's OpenAPI document; npm installs from the lock file.
build_dashboard() {
  command -v npm >/dev/null || need_apt nodejs npm
  if [ ! -f dashboard/node_modules/.package-lock.json ] ||
    [ dashboard/package-lock.json -nt dashboard/node_modules/.package-lock.json ]; then
    echo "installing the dashboard's npm packages"
    (cd dashboard && npm ci --no-audit --no-fund --loglevel=error)
  fi
  echo "building the dashboard"
  .venv/bin/dockyard openapi > dashboard/openapi.json
  (cd dashboard && npm run --silent types >/dev/null && npm run --silent check && npm run --silent build >/dev/null)
}
