# Sourced by the other scripts: make ./.venv with every local distribution installed.
# One pip call installs all of ours together, so pip never fetches one from an index.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# This machine's pip configuration names mirror folders that may not exist; pip says so
# once per package, which only hides what matters.
quiet_pip() {
    "$venv/bin/python" -m pip "$@" 2> >(grep -v "is neither a file nor a directory" >&2)
}
quiet_pip install --quiet --upgrade pip >/dev/null
quiet_pip install --quiet \
    -e "$root/zocalo-core[testing]" \
    -e "$root/zocalo-transport-pika" \
    -e "$root/zocalo-transport-stomp" \
    -e "$root/zocalo-plugin-logging" \
    -e "$root/zocalo-services-contrib" \
    "$@"
export PATH="$venv/bin:$PATH"
