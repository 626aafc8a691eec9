// Package image is podsb's image store: it pulls images from registries,
// imports archives, and keeps them under a root directory (DefaultRoot,
// /var/lib/podsb: persistent, apart from the /run state root), ready for
// containers to run from.
//
// On disk (ROOT):
//
//	oci-layout, blobs/sha256/HEX  the blobs, content-addressed (an OCI layout's)
//	layers/HEX                    each layer unpacked once, named by its chain ID
//	images.json                   the index: images, names, layers, holders
//	lock, gc.lock, locks/         flock(2) files
//	tmp/                          downloads and unpacks in progress
//	upper/                        containers' upper and work directories
//
// Every blob is written to tmp/, its digest and size verified, then
// renamed into place; a layer is unpacked into tmp/, its diff ID verified,
// then renamed. The index is written (temp file, rename) under an
// exclusive lock on ROOT/lock, after syncfs(2), so it only ever names what
// is whole on disk. Several podsb processes may use one root at once: two
// pulls of one image download each layer once (the second waits on the
// layer's lock in locks/ and finds it there).
//
// Layers are unpacked for overlayfs: ".wh.NAME" becomes a 0/0 character
// device NAME, ".wh..wh..opq" the xattr trusted.overlay.opaque=y. Nothing
// is written outside a layer's directory: entries are made below it with
// openat2(RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS) and *at calls, and names
// with "..", absolute names, paths through symbolic links and hard links
// to outside are refused (ErrUnsafe). gzip, zstd and plain tar layers are
// read.
//
// Pulls speak HTTPS, and plain HTTP only to loopback addresses and to
// registries the registries config (Registries, a subset of
// containers-registries.conf(5)) marks insecure; credentials come from
// ~/.docker/config.json or $REGISTRY_AUTH_FILE. A failed request is
// retried with backoff. After a failed pull, the layers it unpacked go;
// the blobs it verified stay (if the failure was the network's) for the
// next pull to resume from, until Prune.
//
// For running a container, in a few lines:
//
//	s, _ := image.Open("")
//	s.Pull(ctx, "docker.io/library/busybox:latest", image.PullOptions{})
//	root, _ := s.RootOf("busybox", holder) // layers, config, upper parent
//	pod.Run(ctx, sandbox.ContainerConfig{Image: root})
//
// ROOT/upper holds the containers' upper directories (package sandbox
// makes and removes them). Acquire is the same without the conversion.
// Acquire records a holder: Remove refuses an image with holders unless
// forced, and a forced removal keeps the layers until the last Release.
//
// Privileges: root (chown, mknod, trusted.* xattrs while unpacking).
// Thread rules: none; nothing here changes a thread's namespaces.
package image
