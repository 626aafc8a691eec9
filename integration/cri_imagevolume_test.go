package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// podsb cri: image volumes (a CRI mount whose image is set). The whole
// image, of two layers (the upper one's file wins), a sub path of it (a
// directory), a file of it, and an image of one layer are mounted read-only: the
// container reads them, runs a program from one, and cannot write them;
// ContainerStatus names each volume's image by its ID. The images are held
// while the container is, and released by its removal (rmi works after).
// Bad input: readonly false, an image not in the store, a sub path that
// the image does not have or that leaves it: InvalidArgument or NotFound
// naming the field, and no container left, no image held.
func TestCRIImageVolume(t *testing.T) {
	c := newCRIEnv(t)
	dir := t.TempDir()
	write := fileWriter(t, dir)
	apps := layer(t, tarFile{name: "bin/cat", link: "busybox"}, tarFile{name: "bin/touch", link: "busybox"}, tarFile{name: "bin/sleep", link: "busybox"})
	data := ociImage(t, nil, layer(t, tarFile{name: "data/hello", mode: 0o644, body: []byte("lower\n")},
		tarFile{name: "data/lower-only", mode: 0o644, body: []byte("only\n")}),
		layer(t, tarFile{name: "data/hello", mode: 0o644, body: []byte("upper\n")},
			tarFile{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0::/:/bin/sh\n")}))
	one := ociImage(t, nil, busyboxLayer(t))
	host := serveImages(t, map[string]v1.Image{"busybox:1": ociImage(t, []string{"sleep", "1000"}, busyboxLayer(t), apps),
		"data:1": data, "one:1": one})
	ref, dataRef, oneRef := host+"/busybox:1", host+"/data:1", host+"/one:1"
	c.crictlMust("pull", ref)
	c.crictlMust("pull", dataRef)
	c.crictlMust("pull", oneRef)
	imageID := func(r string) string {
		t.Helper()
		var st struct {
			Status struct {
				ID string `json:"id"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(c.crictlMust("inspecti", r)), &st); err != nil || st.Status.ID == "" {
			t.Fatalf("inspecti %s: %v", r, err)
		}
		return st.Status.ID
	}
	dataID, oneID := imageID(dataRef), imageID(oneRef)

	podJSON := write("pod.json", `{"metadata": {"name": "imagevol", "namespace": "default", "uid": "iv1"}}`)
	pod := strings.TrimSpace(c.crictlMust("runp", podJSON))
	c.use(pod)
	ctrJSON := func(name, mounts string) string {
		return write(name+".json", fmt.Sprintf(`{"metadata": {"name": %q}, "image": {"image": %q}, "mounts": [%s]}`, name, ref, mounts))
	}
	ctr := strings.TrimSpace(c.crictlMust("create", pod, ctrJSON("vols", fmt.Sprintf(`
		{"container_path": "/mnt/all", "readonly": true, "image": {"image": %q}},
		{"container_path": "/mnt/etc", "readonly": true, "image": {"image": %q}, "image_sub_path": "etc"},
		{"container_path": "/mnt/one", "readonly": true, "image": {"image": %q}},
		{"container_path": "/mnt/file", "readonly": true, "image": {"image": %q}, "image_sub_path": "data/hello"}`, dataRef, dataRef, oneRef, dataRef)), podJSON))
	c.crictlMust("start", ctr)
	c.waitState(ctr, "CONTAINER_RUNNING")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cat", "/mnt/all/data/hello", "/mnt/all/data/lower-only"}, "upper\nonly"},
		{[]string{"cat", "/mnt/etc/passwd"}, "root:x:0:0::/:/bin/sh"},
		{[]string{"cat", "/mnt/file"}, "upper"},
		{[]string{"/mnt/one/bin/sh", "-c", "echo ran"}, "ran"},
	} {
		if out, ok := c.execOut(ctr, tc.args...); !ok || out != tc.want {
			t.Errorf("exec %v: %q, want %q", tc.args, out, tc.want)
		}
	}
	for _, p := range []string{"/mnt/all/new", "/mnt/all/data/hello", "/mnt/etc/new", "/mnt/one/new", "/mnt/file"} {
		if out, ok := c.execOut(ctr, "touch", p); ok {
			t.Errorf("touch %s in an image volume worked: %q", p, out)
		}
	}
	var st struct {
		Status struct {
			Mounts []struct {
				ContainerPath string `json:"containerPath"`
				Image         *struct {
					ImageRef string `json:"imageRef"`
				} `json:"image"`
			} `json:"mounts"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(c.crictlMust("inspect", ctr)), &st); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range st.Status.Mounts {
		if m.Image != nil {
			got[m.ContainerPath] = m.Image.ImageRef
		}
	}
	if want := map[string]string{"/mnt/all": dataID, "/mnt/etc": dataID, "/mnt/file": dataID, "/mnt/one": oneID}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ContainerStatus mounts' images: %v, want %v", got, want)
	}
	if r := c.crictlRun("rmi", oneRef); r.code == 0 {
		t.Errorf("rmi of an image a container's volume holds: exit 0")
	}

	// Bad input: nothing is made, nothing held.
	for _, tc := range []struct{ mount, want string }{
		{fmt.Sprintf(`{"container_path": "/mnt/x", "image": {"image": %q}}`, dataRef), "InvalidArgument desc = container bad: mount /mnt/x: an image volume needs readonly"},
		{`{"container_path": "/mnt/x", "readonly": true, "image": {"image": "` + host + `/nosuch:1"}}`, "NotFound desc = container bad: mount /mnt/x: image " + host + "/nosuch:1"},
		{fmt.Sprintf(`{"container_path": "/mnt/x", "readonly": true, "image": {"image": %q}, "image_sub_path": "nosuch"}`, oneRef), "InvalidArgument desc = container bad: mount /mnt/x: image_sub_path"},
		{fmt.Sprintf(`{"container_path": "/mnt/x", "readonly": true, "image": {"image": %q}, "image_sub_path": "../etc"}`, oneRef), "InvalidArgument desc = container bad: mount /mnt/x"},
	} {
		before := stateEntries(c.root)
		r := c.crictlRun("create", pod, ctrJSON("bad", tc.mount), podJSON)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("create with mount %s: exit %d: %s, want %q", tc.mount, r.code, r.stderr, tc.want)
		}
		if after := stateEntries(c.root); len(after) != len(before) {
			t.Errorf("a refused create left state: %v, before %v", after, before)
		}
		if out := strings.Fields(c.crictlMust("ps", "-a", "-q")); len(out) != 1 {
			t.Errorf("containers after a refused create: %v", out)
		}
	}

	c.crictlMust("stop", "--timeout", "0", ctr)
	c.crictlMust("rm", ctr)
	// Released by the removal, and by the refused creates.
	c.crictlMust("rmi", oneRef, dataRef)
	c.crictlMust("stopp", pod)
	c.crictlMust("rmp", pod)
}
