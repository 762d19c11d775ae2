#!/usr/bin/env bash
# Makes `import sluice` work in Debian's /usr/bin/python3 (the interpreter
# with python3-torch) after `make`: a .pth file in its site directory that
# points at <build>/python. Does nothing when it is already there or when
# the site directory is not writable (then set PYTHONPATH=<build>/python).
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
site=$(/usr/bin/python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null) || exit 0
pth="$site/sluice.pth"
if [ -f "$pth" ] && [ "$(cat "$pth")" = "$build/python" ]; then exit 0; fi
if mkdir -p "$site" 2>/dev/null && echo "$build/python" > "$pth" 2>/dev/null; then
  echo "install-python-path: /usr/bin/python3 imports sluice from $build/python ($pth)"
fi
