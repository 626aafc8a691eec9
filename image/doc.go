// Package image is podsb's image store: it keeps images under a root
// directory (DefaultRoot, /var/lib/podsb: persistent, apart from the /run
// state root), ready for containers to run from, and lists, tags and
// removes them. Package image/fetch pulls images from registries and
// imports archives into it. This package links no registry client, HTTP
// or decompression code, so that programs that only run images (the podsb
// CLI) start fast.
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
// How layers are unpacked, and how pulls reach registries: package
// image/fetch.
//
// For running a container, in a few lines:
//
//	s, _ := image.Open("")
//	fetch.Pull(ctx, s, "docker.io/library/busybox:latest", fetch.PullOptions{})
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
