package cri

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/sandbox"
)

// podRecord is what the server keeps of a CRI pod sandbox, in
// STATEDIR/pods/ID.json. Its runtime state (the pause, the address) is
// the podsb pod's; this is the CRI's side.
type podRecord struct {
	// ID is the CRI pod ID, 64 hex digits, and the podsb pod's name.
	ID string `json:"id"`
	// Name, UID, Namespace and Attempt are the pod's CRI metadata; the
	// four together are unique among the server's pods.
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Attempt   uint32 `json:"attempt"`
	// Labels and Annotations are the pod config's, as given.
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Created is when RunPodSandbox began, in nanoseconds since the epoch.
	Created int64 `json:"created"`
	// LogDirectory is where the pod's containers' logs go.
	LogDirectory string `json:"logDirectory,omitempty"`
	// Hostname is the pod's hostname.
	Hostname string `json:"hostname,omitempty"`
	// RuntimeHandler is the handler the pod was run with ("" is podsb's).
	RuntimeHandler string `json:"runtimeHandler,omitempty"`
	// HostNetwork and HostIPC say the pod uses the host's network (and
	// UTS) and IPC namespaces.
	HostNetwork bool `json:"hostNetwork,omitempty"`
	HostIPC     bool `json:"hostIPC,omitempty"`
	// HostPID says its containers may use the host's PID namespace.
	HostPID bool `json:"hostPID,omitempty"`
	// Ready is false from the record's first write until RunPodSandbox
	// has made the pod, and again after StopPodSandbox: a pod is READY
	// only while Ready and its pause lives.
	Ready bool `json:"ready"`
	// CNI is the pod's CNI network; nil for a pod on podsb's bridge.
	CNI *cniRecord `json:"cni,omitempty"`
	// UIDMap and GIDMap are the maps of the pod's user namespace
	// (userns_options of mode POD); none for the host's (NODE).
	UIDMap []sandbox.IDMap `json:"uidMap,omitempty"`
	GIDMap []sandbox.IDMap `json:"gidMap,omitempty"`
}

// key is the CRI's uniqueness key of a pod: no two pods of a server share
// name, UID, namespace and attempt.
func (r *podRecord) key() string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%d", r.Name, r.UID, r.Namespace, r.Attempt)
}

// store keeps the records of a server's pods under dir/pods.
type store struct{ dir string }

func openStore(dir string) (*store, error) {
	for _, sub := range []string{"pods", "containers"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("cri state directory: %w", err)
		}
	}
	return &store{dir: dir}, nil
}

func (s *store) path(id string) string { return filepath.Join(s.dir, "pods", id+".json") }

func (s *store) containerPath(id string) string {
	return filepath.Join(s.dir, "containers", id+".json")
}

// write stores r: to a temporary file, then renamed over the old record,
// so a reader (or a restarted server) sees the old or the new record.
func (s *store) write(r *podRecord) error {
	if err := writeRecord(s.path(r.ID), r); err != nil {
		return fmt.Errorf("write record of pod %s: %w", r.ID, err)
	}
	return nil
}

// writeContainer stores the record of a container, as write a pod's.
func (s *store) writeContainer(r *containerRecord) error {
	if err := writeRecord(s.containerPath(r.ID), r); err != nil {
		return fmt.Errorf("write record of container %s: %w", r.ID, err)
	}
	return nil
}

func (s *store) removeContainer(id string) error {
	if err := os.Remove(s.containerPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func writeRecord(p string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func (s *store) remove(id string) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// load reads every pod record. A record that cannot be read is skipped and
// reported in bad: the server logs it and goes on.
func (s *store) load() (recs []*podRecord, bad []error) {
	bad = loadRecords(filepath.Join(s.dir, "pods"), func(id string, b []byte) error {
		var r podRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		if r.ID != id {
			return fmt.Errorf("holds pod %q", r.ID)
		}
		recs = append(recs, &r)
		return nil
	})
	return recs, bad
}

// loadContainers reads every container record, as load the pods'.
func (s *store) loadContainers() (recs []*containerRecord, bad []error) {
	bad = loadRecords(filepath.Join(s.dir, "containers"), func(id string, b []byte) error {
		var r containerRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		if r.ID != id {
			return fmt.Errorf("holds container %q", r.ID)
		}
		recs = append(recs, &r)
		return nil
	})
	return recs, bad
}

// loadRecords calls add with the ID and contents of each record in dir,
// removing what writes cut short left.
func loadRecords(dir string, add func(id string, b []byte) error) (bad []error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return []error{err}
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".tmp") {
			os.Remove(filepath.Join(dir, n)) // a write cut short
			continue
		}
		id, ok := strings.CutSuffix(n, ".json")
		if !ok || !validID(id) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil {
			err = add(id, b)
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("record %s: %w", n, err))
		}
	}
	return bad
}

// validID tells whether id is a CRI pod ID as the server makes them: 64
// lowercase hex digits.
func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
