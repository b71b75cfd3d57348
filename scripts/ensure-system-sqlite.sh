#!/usr/bin/env bash
# ensure-system-sqlite.sh makes sure internal/syssqlite can build: its tests link the system's SQLite
# library through cgo (mattn/go-sqlite3 -tags libsqlite3), which needs a C compiler and the SQLite headers.
# As root with apt-get it installs Debian's gcc and libsqlite3-dev when they are missing; else it says what
# to install and fails. It prints nothing when both are in place.
set -euo pipefail

log() { echo "ensure-system-sqlite: $*" >&2; }
header=${SQLITE3_H:-/usr/include/sqlite3.h}

missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[[ -f "$header" ]] || missing+=(libsqlite3-dev)
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
	log "installing ${missing[*]} from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	if apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
		exit 0
	fi
	log "installing ${missing[*]} failed (see the output above)"
fi
cat >&2 <<MSG
ensure-system-sqlite: missing: ${missing[*]}.
internal/syssqlite tests the library on the system's SQLite library, through cgo. Install a C compiler and
the SQLite headers, for example:
  Debian/Ubuntu: sudo apt-get install gcc libsqlite3-dev
  Fedora:        sudo dnf install gcc sqlite-devel
  macOS:         xcode-select --install   (the SDK has sqlite3.h; set SQLITE3_H to its path)
then run make test again.
MSG
exit 1
