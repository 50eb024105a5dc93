# What bench/run.sh and bench/instructions.sh share, sourced by both: the tools they
# install, the wait for a server's port, and the config every measured npsd runs with (so
# that an instruction count and a timing describe the same daemon). Needs die() and say().

# install_missing PKG...: installs the Debian packages not installed yet.
install_missing() {
	local need="" pkg
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need="$need $pkg"
	done
	[ -n "$need" ] || return 0
	say "installing:$need"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need || die "cannot install$need"
}

# wait_for_port FILE PID [TENTHS]: prints the port number once FILE holds one; fails when PID
# ends first or after TENTHS tenths of a second (default 150: 15 s).
wait_for_port() {
	local file=$1 pid=$2 tenths=${3:-150} i
	for i in $(seq 1 "$tenths"); do
		if [ -s "$file" ] && grep -qE '^[0-9]+$' "$file"; then
			head -n1 "$file"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# bench_config DIR WRITER [EXTRA]: writes DIR/npsd.conf for a fresh npsd on DIR/npsd.db:
# any free port, one HTTP thread per core, every low score queued for a call at once; then
# the EXTRA lines. WRITER names who wrote it, in its first line.
bench_config() {
	cat >"$1/npsd.conf" <<CONF
; written by $2
[server]
listen = 127.0.0.1:0
threads = 0
[database]
path = $1/npsd.db
[callbacks]
hours = always
${3:-}
CONF
}
