package fetch

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Unpacking a layer for overlayfs. Each layer is unpacked into a directory
// of its own, confined to it: every entry's parent is opened with
// openat2(RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS) below the layer's directory,
// and the entry is made with *at calls on its last component, never
// following it. Names that climb out ("..", absolute) or pass through a
// symbolic link, and hard links to outside, are refused (ErrUnsafe).
// Whiteouts become what overlayfs reads: ".wh.NAME" a 0/0 character device
// NAME, ".wh..wh..opq" the xattr trusted.overlay.opaque=y on its directory.

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// decompress returns the tar stream in r: gzip, zstd or plain, by the
// stream's magic number (a media type may say otherwise).
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, newErr(ErrCorrupt, "gzip: %w", err)
		}
		return z, func() { z.Close() }, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, newErr(ErrCorrupt, "zstd: %w", err)
		}
		return z, z.Close, nil
	}
	return br, func() {}, nil
}

// cleanName returns the entry name n relative to the layer's root ("." for
// the root), or ErrUnsafe if it is absolute or climbs out.
func cleanName(n string) (string, error) {
	if n == "" {
		return "", newErr(ErrCorrupt, "tar entry with an empty name")
	}
	if strings.HasPrefix(n, "/") {
		return "", newErr(ErrUnsafe, "entry %q: absolute path", n)
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", newErr(ErrUnsafe, "entry %q: climbs out of the layer", n)
	}
	return c, nil
}

// unpacker makes the entries of one layer below its root directory.
type unpacker struct {
	root     int    // O_PATH fd of the layer's directory
	rootPath string // and its path (a temporary directory of the store)
	dirPath  string // the cached parent: its name and fd
	dirFD    int
	dirs     []dirTime
	buf      []byte
}

type dirTime struct {
	name string
	hdr  *tar.Header
}

// unpackTar unpacks the tar stream r into the empty directory dir.
func unpackTar(r io.Reader, dir string) error {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	// The layer's own root is the container's "/" where this layer is
	// the top one: 0755 root:root unless the tar says otherwise ("./").
	if err := os.Chmod(dir, 0o755); err != nil {
		unix.Close(root)
		return err
	}
	u := &unpacker{root: root, rootPath: dir, dirFD: -1, buf: make([]byte, 1<<20)}
	defer u.close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return newErr(ErrCorrupt, "read tar: %w", truncated(err))
		}
		if err := u.entry(hdr, tr); err != nil {
			return err
		}
	}
	// Directories last, deepest first: making their entries changed
	// their times.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		fd, err := u.open(d.name)
		if err != nil {
			return err
		}
		err = setTimes(fd, "", d.hdr)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}

func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated: %w", err)
	}
	return err
}

func (u *unpacker) close() {
	if u.dirFD >= 0 {
		unix.Close(u.dirFD)
	}
	unix.Close(u.root)
}

const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// open opens the directory name (clean, relative) below the root, O_PATH.
func (u *unpacker) open(name string) (int, error) {
	for {
		fd, err := unix.Openat2(u.root, name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveFlags})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// parent returns an fd of directory dir below the root, making it and its
// missing parents (mode 0755) as tar does for entries whose directories it
// has not seen.
func (u *unpacker) parent(dir string) (int, error) {
	if dir == u.dirPath && u.dirFD >= 0 {
		return u.dirFD, nil
	}
	fd, err := u.open(dir)
	if err == unix.ENOENT {
		cur := "."
		for _, c := range strings.Split(dir, "/") {
			cur = path.Join(cur, c)
			pfd, err := u.open(path.Dir(cur))
			if err != nil {
				return -1, err
			}
			err = unix.Mkdirat(pfd, c, 0o755)
			unix.Close(pfd)
			if err != nil && err != unix.EEXIST {
				return -1, &os.PathError{Op: "mkdir", Path: cur, Err: err}
			}
		}
		fd, err = u.open(dir)
	}
	if err != nil {
		return -1, err
	}
	if u.dirFD >= 0 {
		unix.Close(u.dirFD)
	}
	u.dirPath, u.dirFD = dir, fd
	return fd, nil
}

func (u *unpacker) resolveErr(name string, err error) error {
	switch err {
	case unix.ELOOP:
		return newErr(ErrUnsafe, "entry %q: path goes through a symbolic link", name)
	case unix.EXDEV:
		return newErr(ErrUnsafe, "entry %q: path leaves the layer", name)
	case unix.ENOTDIR:
		return newErr(ErrCorrupt, "entry %q: a parent is not a directory", name)
	}
	return &os.PathError{Op: "open", Path: name, Err: err}
}

// forget drops the cached parent: a removal may have unlinked it.
func (u *unpacker) forget() {
	if u.dirFD >= 0 {
		unix.Close(u.dirFD)
	}
	u.dirPath, u.dirFD = "", -1
}

// clear removes what is at base in dir, unless keepDir and it is a directory.
func (u *unpacker) clear(dir int, base string, keepDir bool) error {
	var st unix.Stat_t
	err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(dir, base, 0)
	}
	if keepDir {
		return nil
	}
	u.forget()
	return os.RemoveAll(fmt.Sprintf("/proc/self/fd/%d/%s", dir, base))
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return newErr(ErrCorrupt, "entry %q: the layer's root is not a directory", hdr.Name)
		}
		if err := os.Lchown(u.rootPath, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		return os.Chmod(u.rootPath, os.FileMode(hdr.Mode&0o777)|modeBits(hdr.Mode))
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	pfd, err := u.parent(dir)
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return u.resolveErr(hdr.Name, errno)
		}
		return err
	}
	fail := func(op string, err error) error {
		return fmt.Errorf("entry %q: %s: %w", hdr.Name, op, err)
	}
	switch {
	case base == whiteoutOpaque:
		// On the directory itself, through its O_PATH fd.
		if err := unix.Setxattr(fmt.Sprintf("/proc/self/fd/%d", pfd), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fail("set opaque", err)
		}
		return nil
	case strings.HasPrefix(base, whiteoutMeta):
		return nil // aufs's own files
	case strings.HasPrefix(base, whiteoutPrefix):
		target := strings.TrimPrefix(base, whiteoutPrefix)
		if target == "" || target == "." || target == ".." {
			return newErr(ErrCorrupt, "entry %q: bad whiteout", hdr.Name)
		}
		if err := u.clear(pfd, target, false); err != nil {
			return fail("clear", err)
		}
		if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
			return fail("whiteout", err)
		}
		return nil
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.clear(pfd, base, true); err != nil {
			return fail("clear", err)
		}
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && err != unix.EEXIST {
			return fail("mkdir", err)
		}
		u.dirs = append(u.dirs, dirTime{name: name, hdr: hdr})
	case tar.TypeReg: // the reader turns TypeRegA into TypeReg
		if err := u.clear(pfd, base, false); err != nil {
			return fail("clear", err)
		}
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fail("create", err)
		}
		f := os.NewFile(uintptr(fd), name)
		_, err = io.CopyBuffer(struct{ io.Writer }{f}, r, u.buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return newErr(ErrCorrupt, "entry %q: %w", hdr.Name, truncated(err))
			}
			return fail("write", err)
		}
	case tar.TypeSymlink:
		if err := u.clear(pfd, base, false); err != nil {
			return fail("clear", err)
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fail("symlink", err)
		}
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return newErr(ErrUnsafe, "entry %q: hard link to %q: outside the layer", hdr.Name, hdr.Linkname)
		}
		tfd, err := unix.Openat2(u.root, target, &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: resolveFlags})
		if err != nil {
			if err == unix.ENOENT {
				return newErr(ErrCorrupt, "entry %q: hard link to %q: no such entry", hdr.Name, hdr.Linkname)
			}
			return u.resolveErr(hdr.Linkname, err)
		}
		defer unix.Close(tfd)
		if err := u.clear(pfd, base, false); err != nil {
			return fail("clear", err)
		}
		if err := unix.Linkat(tfd, "", pfd, base, unix.AT_EMPTY_PATH); err != nil {
			return fail("link", err)
		}
		return nil // a hard link shares its target's owner, mode and times
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		if err := u.clear(pfd, base, false); err != nil {
			return fail("clear", err)
		}
		if err := unix.Mknodat(pfd, base, typ|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return fail("mknod", err)
		}
	default:
		return nil // global headers and the like carry no file
	}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fail("chown", err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears set-user-ID and set-group-ID.
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return fail("chmod", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := unix.Lsetxattr(fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base), x, []byte(v), 0); err != nil && err != unix.ENOTSUP {
				return fail("set xattr "+x, err)
			}
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := setTimes(pfd, base, hdr); err != nil {
			return fail("set times", err)
		}
	}
	return nil
}

// setTimes sets the access and modification times of base in dir (dir
// itself if base is "") from hdr, not following a symbolic link.
func setTimes(dir int, base string, hdr *tar.Header) error {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if base == "" {
		return unix.UtimesNanoAt(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", dir), ts, 0)
	}
	return unix.UtimesNanoAt(dir, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// modeBits returns the set-user-ID, set-group-ID and sticky bits of a tar
// mode as an os.FileMode.
func modeBits(m int64) os.FileMode {
	var f os.FileMode
	if m&0o4000 != 0 {
		f |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		f |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		f |= os.ModeSticky
	}
	return f
}
