package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTemplateMountNamespace: pods with the default root, but the first,
// are cloned from the state root's template mount namespace (sandbox/template_linux.go),
// pinned at ROOT/.template/mnt; a host mount made after it is seen by a
// later pod that binds it; gc drops the template and the next create makes
// it again; the last rm removes it (the env's leak check: no mount and no
// entry left in the root).
func TestTemplateMountNamespace(t *testing.T) {
	e := newEnv(t)
	pin := filepath.Join(e.root, ".template", "mnt")
	isPinned := func() bool {
		var fs unix.Statfs_t
		return unix.Statfs(pin, &fs) == nil && fs.Type == unix.NSFS_MAGIC
	}
	// The first pod alone clones from the host; the second makes the
	// template.
	a, _ := e.create()
	if isPinned() {
		t.Errorf("a template pinned at %s for a pod alone in its root", pin)
	}
	a2, _ := e.create()
	if !isPinned() {
		t.Fatalf("no template pinned at %s after a second create", pin)
	}
	// A host mount made after the template, bound into a new pod.
	src := t.TempDir()
	if err := unix.Mount("tmpfs", src, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(src, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("late mount\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := e.create("-v", src+":/data:ro")
	if r := e.inPod(b, "cat", "/data/f"); r.code != 0 || r.stdout != "late mount\n" {
		t.Errorf("pod with a volume of a later host mount reads %q (%s), want the mount's file", r.stdout, r.stderr)
	}
	// The pods' handles work from the host, and the pods see no handle.
	for _, name := range []string{a, a2, b} {
		if r := e.runCmd(cmdOf("nsenter", "--uts="+filepath.Join(e.root, name, "ns", "uts"), "hostname")); strings.TrimSpace(r.stdout) != name {
			t.Errorf("nsenter --uts of %s: %q %s", name, r.stdout, r.stderr)
		}
		if r := e.inPod(name, "cat", "/proc/self/mountinfo"); r.code != 0 || strings.Contains(r.stdout, "nsfs") {
			t.Errorf("pod %s's mounts hold a namespace handle (or cannot be read): %s %s", name, r.stdout, r.stderr)
		}
	}
	e.must("gc")
	if isPinned() {
		t.Errorf("gc left the template at %s", pin)
	}
	c, _ := e.create()
	if !isPinned() {
		t.Errorf("no template again after a create that followed gc")
	}
	if r := e.inPod(c, "true"); r.code != 0 {
		t.Errorf("exec in a pod of the new template: exit %d: %s", r.code, r.stderr)
	}
	e.must("rm", "-f", "--all")
	if _, err := os.Lstat(filepath.Join(e.root, ".template")); err == nil {
		t.Errorf("rm --all left %s", filepath.Join(e.root, ".template"))
	}
}
