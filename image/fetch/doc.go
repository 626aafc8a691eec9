// Package fetch is the pull and import side of podsb's image store
// (package image): Pull reads an image from a registry, Import from a
// docker-archive, an oci-archive or an OCI layout, and both write it into
// an image.Store. It is a package of its own so that programs that only
// run images do not link go-containerregistry, net/http and the
// decompressors.
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
// Privileges: root (chown, mknod, trusted.* xattrs while unpacking).
// Thread rules: none; nothing here changes a thread's namespaces.
package fetch
