#!/usr/bin/env bash
# Installs the real peers the integration tests start (component/servertest
# and friends): Prosody + prosody-modules (mod_privilege), ejabberd, Redis,
# Kannel with fakesmsc (the SMS adapter's HTTP gateway peer), Dovecot (the
# email adapter's IMAP peer), and promtool (package prometheus) for the
# alerting rules in deploy/prometheus.
#
# Idempotent and quiet when everything is present. As root, missing Debian
# packages are installed with apt-get; otherwise the exact command is
# printed and the script exits 1.
#
# Package postinst scripts try to start the system daemons (invoke-rc.d)
# on their default ports. The tests start their own private instances, so
# when the machine has no /usr/sbin/policy-rc.d, a temporary one that
# denies every start (exit 101) is put in place for the installation and
# removed afterwards.
#
# With --demo, only what `make demo` needs: Prosody.
set -euo pipefail

demo_only=0
if [[ ${1-} == --demo ]]; then
	demo_only=1
fi

MOD_PRIVILEGE=/usr/lib/prosody/modules/mod_privilege/mod_privilege.lua
POLICY=/usr/sbin/policy-rc.d

have_cmd() { command -v "$1" >/dev/null 2>&1; }

missing=()
add() {
	local p
	for p in "${missing[@]+"${missing[@]}"}"; do
		[[ $p == "$1" ]] && return 0
	done
	missing+=("$1")
}

check() {
	missing=()
	have_cmd prosody || add prosody
	have_cmd prosodyctl || add prosody
	if ((demo_only)); then
		return 0
	fi
	[[ -f $MOD_PRIVILEGE ]] || add prosody-modules
	have_cmd ejabberdctl || [[ -x /usr/sbin/ejabberdctl ]] || add ejabberd
	have_cmd redis-server || [[ -x /usr/bin/redis-server ]] || add redis-server
	have_cmd bearerbox || [[ -x /usr/sbin/bearerbox ]] || add kannel
	[[ -x /usr/lib/kannel/test/fakesmsc ]] || add kannel-extras
	have_cmd doveadm || [[ -x /usr/bin/doveadm ]] || add dovecot-imapd
	# promtool validates deploy/prometheus/alerts.yaml (deploy tests).
	have_cmd promtool || add prometheus
}

check
if ((${#missing[@]} == 0)); then
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: install them as root with:" >&2
	echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

if ! have_cmd apt-get; then
	echo "install-deps: missing ${missing[*]} and apt-get is not available; install them with your package manager" >&2
	exit 1
fi

created_policy=0
cleanup() {
	if ((created_policy)); then
		rm -f "$POLICY"
	fi
}
trap cleanup EXIT

if [[ ! -e $POLICY ]]; then
	# Keep postinst scripts from starting prosody, ejabberd (+epmd) and
	# redis as system daemons on the default ports.
	printf '#!/bin/sh\n# temporary, from .ci/install-deps.sh: start no daemons\nexit 101\n' >"$POLICY"
	chmod 755 "$POLICY"
	created_policy=1
fi

echo "install-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

check
if ((${#missing[@]} != 0)); then
	echo "install-deps: still missing after installation: ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: done" >&2
