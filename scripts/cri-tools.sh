#!/bin/sh
# cri-tools.sh builds the CRI test tools once into a cache directory, each
# named with its version, and keeps them: `make tools` runs it, and so does
# CI (.ci/run), with the cache in /var/cache/podsb-tools.
#
#	crictl-VERSION   go install sigs.k8s.io/cri-tools/cmd/crictl@VERSION
#	critest-VERSION  cri-tools' cmd/critest, a test package: go test -c
#	                 in a copy of the module (the module cache is read-only)
#
# Usage: scripts/cri-tools.sh [DIR]  (default $TOOLS_DIR, else
# /var/cache/podsb-tools; CRI_TOOLS_VERSION, default v1.37.0).
#
# The images critest pulls are not built here: TestCritest builds them
# from busybox-static in a moment and serves them on 127.0.0.1
# (integration/internal/criregistry, docs/cri.md#conformance-critest).
set -eu

dir=${1:-${TOOLS_DIR:-/var/cache/podsb-tools}}
version=${CRI_TOOLS_VERSION:-v1.37.0}
go=${GO:-go}

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# install moves a built tool into the cache under its final name in one
# rename, so that a concurrent run never sees half a binary.
install() {
	mv "$1" "$dir/.$2.$$"
	mv -f "$dir/.$2.$$" "$dir/$2"
	echo "cri-tools: built $dir/$2" >&2
}

if [ ! -x "$dir/crictl-$version" ]; then
	GOBIN=$tmp GOFLAGS=-mod=mod "$go" install "sigs.k8s.io/cri-tools/cmd/crictl@$version"
	install "$tmp/crictl" "crictl-$version"
fi

if [ ! -x "$dir/critest-$version" ]; then
	# Outside any module, so that the download does not touch podsb's.
	src=$(cd "$tmp" && GOFLAGS= "$go" mod download -json "sigs.k8s.io/cri-tools@$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	if [ -z "$src" ] || [ ! -d "$src/cmd/critest" ]; then
		echo "cri-tools: no cmd/critest in the download of sigs.k8s.io/cri-tools@$version" >&2
		exit 1
	fi
	cp -r "$src" "$tmp/src"
	chmod -R u+w "$tmp/src"
	(cd "$tmp/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod "$go" test -c -o "$tmp/critest" \
		-ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=${version#v}" ./cmd/critest)
	install "$tmp/critest" "critest-$version"
fi
