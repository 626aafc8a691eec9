package sandbox

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"podsb/internal/setup"
	"podsb/rootfs"
)

// planOf is the init's program of a default pod named name under root, as
// Create plans it.
func planOf(t *testing.T, root, name string) []setup.Op {
	t.Helper()
	spec := rootfs.Spec{Target: filepath.Join(root, name, "rootfs"), Etc: etcFiles(name, netip.Addr{}), Mask: true, NoDev: true}
	ops, err := initProgram(&spec, name, Security{}, true)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// TestTemplateIsThePlan checks what create's C part relies on: the plan of
// a default pod made for templateName, with the pod's name put in every
// string where templateName is, is the plan of that pod.
func TestTemplateIsThePlan(t *testing.T) {
	root := "/run/podsb"
	tpl := planOf(t, root, templateName)
	for _, name := range []string{"a", "web", "x-1.y_2", strings.Repeat("n", MaxNameLen)} {
		var got []setup.Op
		for _, op := range tpl {
			op.Str = append([]string{}, op.Str...)
			for i, s := range op.Str {
				op.Str[i] = strings.ReplaceAll(s, templateName, name)
			}
			got = append(got, op)
		}
		if want := planOf(t, root, name); !bytes.Equal(setup.Encode(got), setup.Encode(want)) {
			t.Errorf("%s: the template's plan with the name put in is not the pod's plan", name)
		}
	}
	if !templateFor(Config{Root: root, Name: "a", Hostname: "a"}) || templateFor(Config{Root: root, Name: "a", Hostname: "b"}) ||
		templateFor(Config{Root: root, Name: "a", Hostname: "a", ReadOnly: true}) {
		t.Error("templateFor")
	}
}
