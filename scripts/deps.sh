#!/bin/sh
# deps.sh installs the Debian packages that podsb's tests drive, when they
# are missing. It is the one list of them: `make test` runs it first, and
# so does CI (.ci/run runs `make test`). Without root it only says what is
# missing (the root-only tests that need them skip without root anyway).
#
#	util-linux, bsdutils  nsenter, unshare, setpriv, script
#	iproute2              ip (the tests check links, addresses, netns)
#	iputils-ping          ping between pods and the host
#	python3               servers and raw-socket probes inside pods
#	nginx-light           the proxy of the two-container example; critest's web server image (its nginx)
#	gcc                   building the exec fast path and reproducing pause
#	runc, crun            peers of the benchmarks and escape tests
#	catatonit, tini       peers of pause (footprint, reaping)
#	busybox-static        the files of the images and image roots the tests build
#	podman, skopeo, umoci peers of the image pull benchmark
#	containerd            the CRI peer of podsb cri (run privately by the tests, never as the service)
#	containernetworking-plugins  its loopback CNI plugin (/usr/lib/cni/loopback); podsb cri's
#	                      CNI tests' bridge, host-local and portmap plugins
#	iptables, nftables    portmap's rules; iptables-save and nft list ruleset check that none is left
#	uidmap                newuidmap, newgidmap: a rootless pod's subordinate IDs (/etc/subuid)
set -eu

pkgs="util-linux bsdutils iproute2 iputils-ping python3 nginx-light gcc runc crun catatonit tini busybox-static podman skopeo umoci containerd containernetworking-plugins iptables nftables uidmap"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: not root, not installing:$missing" >&2
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "deps: no apt-get to install:$missing (install them by hand)" >&2
	exit 0
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# The packages' services (containerd, nginx) are not to start: the tests run
# their own instances, privately. A policy-rc.d that refuses every start
# (invoke-rc.d(8)) is in place while apt-get runs, unless one is already.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
