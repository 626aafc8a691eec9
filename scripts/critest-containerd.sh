#!/bin/sh
# critest-containerd.sh runs the same critest groups as TestCritest against
# Debian's containerd (the peer issue 14 compares podsb cri with), with the
# same images (integration/internal/criregistry), to compare what passes:
#
#	sudo scripts/critest-containerd.sh [DIR]
#
# containerd, its pods, the registry and critest run in a network and mount
# namespace of their own: the pods' CNI bridge, iptables rules and
# /run (over which it mounts an empty tmpfs) are made there, not on the host, and nothing can reach the
# network. DIR (default a new directory in /tmp) keeps critest.log,
# critest.json and containerd.log. Needs root, containerd, runc and
# containernetworking-plugins; crictl and critest come from make tools.
set -eu

if [ "${1:-}" != --inside ]; then
	cd "$(dirname "$0")/.."
	dir=${1:-$(mktemp -d /tmp/critest-containerd.XXXXXX)}
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	for b in containerd runc; do
		command -v $b >/dev/null || { echo "critest-containerd: no $b" >&2; exit 1; }
	done
	[ -x /usr/lib/cni/bridge ] || { echo "critest-containerd: no /usr/lib/cni/bridge (containernetworking-plugins)" >&2; exit 1; }
	make -s tools >/dev/null
	${GO:-go} build -o "$dir/criregistry" ./integration/internal/criregistry
	focus=$(sed -n 's/^	`\(.*\)`,$/\1/p' integration/critest_test.go)
	skips=$(sed -n 's/^\([^#].*\) # .*/\1/p' integration/testdata/critest-skips.txt)
	exec unshare --net --mount sh "$0" --inside "$dir" "${TOOLS_DIR:-/var/cache/podsb-tools}" "$focus" "$skips"
fi

dir=$2 tools=$3 focus=$4 skips=$5
ip link set lo up
# containerd 1.6 makes fixed paths under /run (/run/containerd/s for its
# shims' sockets, /run/netns for its pods' pins): an empty tmpfs over /run,
# in this mount namespace only, keeps them off the host's /run.
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
mkdir -p "$dir/reg" "$dir/certs.d" "$dir/cni" "$dir/tmp"

pids=""
cleanup() {
	crictl="$tools/crictl-v1.37.0 -r unix://$dir/containerd.sock"
	for id in $($crictl pods -q 2>/dev/null); do
		$crictl stopp "$id" >/dev/null 2>&1 || true
		$crictl rmp -f "$id" >/dev/null 2>&1 || true
	done
	for p in $pids; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

"$dir/criregistry" "$dir/reg" >"$dir/reg/out" 2>&1 &
pids="$!"
for _ in $(seq 100); do grep -q serving "$dir/reg/out" && break; sleep 0.1; done
host=$(sed -n 's/^serving //p' "$dir/reg/out")
[ -n "$host" ] || { cat "$dir/reg/out" >&2; exit 1; }
for r in registry.k8s.io k8s.gcr.io gcr.io docker.io; do
	mkdir -p "$dir/certs.d/$r"
	printf 'server = "http://%s"\n[host."http://%s/v2/%s"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n' \
		"$host" "$host" "$r" >"$dir/certs.d/$r/hosts.toml"
done
cat >"$dir/cni/10-critest.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "critest", "plugins": [
 {"type": "bridge", "bridge": "cni-critest", "isGateway": true, "ipMasq": false,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
 {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  Root = "$dir/runc"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$dir/cni"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$dir/certs.d"
EOF
containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
pids="$! $pids"
for _ in $(seq 100); do [ -S "$dir/containerd.sock" ] && break; sleep 0.1; done

set -- --runtime-endpoint "unix://$dir/containerd.sock" --image-endpoint "unix://$dir/containerd.sock" \
	--test-images-file "$dir/reg/test-images.yaml" --ginkgo.no-color --ginkgo.json-report "$dir/critest.json"
while IFS= read -r f; do [ -n "$f" ] && set -- "$@" --ginkgo.focus "$f"; done <<EOF
$focus
EOF
while IFS= read -r s; do [ -n "$s" ] && set -- "$@" --ginkgo.skip "$s"; done <<EOF
$skips
EOF
start=$(date +%s)
status=0
(cd "$dir/tmp" && TMPDIR="$dir/tmp" "$tools/critest-v1.37.0" "$@") >"$dir/critest.log" 2>&1 || status=$?
echo "critest-containerd: critest ran $(($(date +%s) - start)) s, exit $status: $(grep -E '^(SUCCESS|FAIL)!' "$dir/critest.log")"
echo "critest-containerd: $dir/critest.log"
