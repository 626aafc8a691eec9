package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/crilog"
	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/rootfs"
	"github.com/podsb/podsb/sandbox"
)

// The states of a container's record. A record is written created by
// CreateContainer, running by StartContainer once its process runs, and
// exited once the server has seen the process gone (its exit is then in
// the record, so it outlives the pod's own state).
const (
	stateCreated = "created"
	stateRunning = "running"
	stateExited  = "exited"
)

// logDrainWait bounds how long the server waits, when it sees a
// container's process gone, for its log writer to write the last of its
// output (a child of the container may hold the output open).
const logDrainWait = 2 * time.Second

// unknownExitCode is the exit code of a container whose exit nobody saw:
// it died with its pod, or its start failed (as containerd reports them).
const unknownExitCode = 255

// containerRecord is what the server keeps of a CRI container, in
// STATEDIR/containers/ID.json. The container is the podsb container named
// by its ID in the podsb pod of its pod sandbox.
type containerRecord struct {
	// ID is the CRI container ID, 64 hex digits, and the podsb
	// container's name.
	ID    string `json:"id"`
	PodID string `json:"podId"`
	// Name and Attempt are the container's CRI metadata; with the pod
	// they are unique among the server's containers.
	Name        string            `json:"name"`
	Attempt     uint32            `json:"attempt"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Image is the image as the config named it, ImageRef its ID.
	Image    string `json:"image"`
	ImageRef string `json:"imageRef"`
	// Created, Started and Finished are in nanoseconds since the epoch.
	Created  int64 `json:"created"`
	Started  int64 `json:"started,omitempty"`
	Finished int64 `json:"finished,omitempty"`
	// State is stateCreated, stateRunning or stateExited; ExitCode,
	// Reason and Message tell how an exited container ended.
	State    string `json:"state"`
	ExitCode int32  `json:"exitCode,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
	// LogPath is the log file (the pod's log directory joined with the
	// config's log path); empty for none.
	LogPath string `json:"logPath,omitempty"`
	// Logger is the socket of the container's log writer, while it runs.
	Logger string `json:"logger,omitempty"`
	// Run is how the container's process is started.
	Run runConfig `json:"run"`
}

// runConfig is the part of a CRI container config that StartContainer
// turns into a podsb container.
type runConfig struct {
	Args       []string         `json:"args"`
	Env        []string         `json:"env,omitempty"`
	Dir        string           `json:"dir,omitempty"`
	User       string           `json:"user,omitempty"`
	Volumes    []sandbox.Volume `json:"volumes,omitempty"`
	TTY        bool             `json:"tty,omitempty"`
	Stdin      bool             `json:"stdin,omitempty"`
	StdinOnce  bool             `json:"stdinOnce,omitempty"`
	ReadOnly   bool             `json:"readOnly,omitempty"`
	Privileged bool             `json:"privileged,omitempty"`
	CapAdd     []string         `json:"capAdd,omitempty"`
	CapDrop    []string         `json:"capDrop,omitempty"`
	// PID is the container's PID namespace (namespaces.go: pidModeOf).
	PID        sandbox.PIDMode   `json:"pid,omitzero"`
	StopSignal string            `json:"stopSignal,omitempty"`
	Image      *rootfs.ImageRoot `json:"image"`
	// Resources are the container's limits (its cgroup's).
	Resources sandbox.Resources `json:"resources,omitzero"`

	// secConfig is the rest of the security context (security.go).
	secConfig

	// argsSplit is where the config's command ends and its args begin
	// in Args, until imageRootFor has made the command; -1 after.
	argsSplit int
}

// key is the CRI's uniqueness key of a container: no two containers of a
// pod share name and attempt.
func (r *containerRecord) key() string {
	return fmt.Sprintf("%s\x00%s\x00%d", r.PodID, r.Name, r.Attempt)
}

// holder is the container as a holder of its image in the store: the
// podsb container's directory, as the CLI's containers hold theirs.
func (s *Server) holder(r *containerRecord) string {
	return filepath.Join(s.root, r.PodID, "containers", r.ID)
}

// holderAlive tells the image store whether a holder still uses its
// image: a container of a pod of this server's holds it while its record
// exists; other holders are the CLI's (image.PodHolderAlive).
func (s *Server) holderAlive(h string) bool {
	if !image.PodHolderAlive(h) {
		return false
	}
	if filepath.Dir(filepath.Dir(filepath.Dir(h))) != s.root {
		return true
	}
	pod, id := filepath.Base(filepath.Dir(filepath.Dir(h))), filepath.Base(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pods[pod]; !ok {
		return true // a pod of the CLI's in the same root
	}
	_, ok := s.containers[id]
	return ok
}

// newContainerID returns a random CRI container ID: 64 hex digits, never
// all decimal (podsb reads a container name of digits as a PID).
func newContainerID() (string, error) {
	for {
		id, err := newID()
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(id, "abcdef") {
			return id, nil
		}
	}
}

// CreateContainer records a container of a ready pod, from an image of the
// store. Its process is made by StartContainer.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	pod, err := s.find(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	cfg := req.GetConfig()
	if cfg == nil {
		return nil, invalidf("container config is missing")
	}
	md := cfg.GetMetadata()
	if md == nil || md.GetName() == "" {
		return nil, invalidf("container config: metadata.name is missing")
	}
	ref := cfg.GetImage().GetImage()
	if ref == "" {
		return nil, invalidf("container config %s: image is empty", md.GetName())
	}
	run, err := runConfigOf(cfg)
	if err != nil {
		return nil, err
	}
	if run.PID.Target, err = s.pidTarget(md.GetName(), pod.ID, run.PID.Target); err != nil {
		return nil, err
	}
	if err := hostPIDOf(md.GetName(), run.PID, &pod); err != nil {
		return nil, err
	}
	if err := containerUserNS(md.GetName(), cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions(), &pod); err != nil {
		return nil, err
	}
	id, err := newContainerID()
	if err != nil {
		return nil, internalf("container ID: %v", err)
	}
	rec := &containerRecord{
		ID: id, PodID: pod.ID, Name: md.GetName(), Attempt: md.GetAttempt(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), Image: ref,
		Created: time.Now().UnixNano(), State: stateCreated, Run: run,
	}
	if lp := cfg.GetLogPath(); lp != "" && pod.LogDirectory != "" {
		rec.LogPath = filepath.Join(pod.LogDirectory, lp)
		if !filepath.IsAbs(rec.LogPath) {
			return nil, invalidf("container %s: log path %q: the pod's log directory is not absolute", rec.Name, rec.LogPath)
		}
	}
	unlock := s.lockPod(pod.ID)
	defer unlock()
	if pod, err = s.find(pod.ID); err != nil {
		return nil, err // removed while we waited
	}
	if !s.liveOf(&pod).ready {
		return nil, failedPreconditionf("pod sandbox %s is not ready: create its containers before stopping it", pod.ID)
	}
	// The record first: while it exists, the image store keeps the
	// container's hold on its image (holderAlive).
	if err := s.reserveContainer(rec); err != nil {
		return nil, err
	}
	fail := func(err error) (*runtimeapi.CreateContainerResponse, error) {
		if derr := s.dropContainer(rec); derr != nil {
			s.log.Warn("drop record of a failed create", "container", rec.ID, "err", derr)
		}
		return nil, err
	}
	root, err := s.images.RootOf(ref, s.holder(rec))
	if err != nil {
		return fail(grpcError("container "+rec.Name+": image "+ref, err))
	}
	rec.ImageRef = root.ID
	rec.Run.Image = imageRootFor(root, &rec.Run)
	if err := s.resolveImageVolumes(rec); err != nil {
		return fail(err)
	}
	if len(rec.Run.Args) == 0 {
		return fail(invalidf("container %s: no command: the config has none and image %s has no Entrypoint or Cmd", rec.Name, ref))
	}
	if err := s.updateContainer(rec); err != nil {
		return fail(err)
	}
	s.log.Info("container created", "id", id, "name", rec.Name, "pod", pod.ID, "image", ref)
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// imageRootFor makes the command of a container of img as the CRI asks:
// the config's command replaces the image's Entrypoint, its args the
// image's Cmd (Cmd is used only with neither), and returns the root with
// the command resolved, so that podsb adds nothing to it.
func imageRootFor(img *rootfs.ImageRoot, run *runConfig) *rootfs.ImageRoot {
	c := img.Config
	cmd, args := run.Args, []string(nil)
	// runConfigOf keeps the config's command and args apart in Args and
	// argsOnly until here.
	if run.argsSplit >= 0 {
		cmd, args = run.Args[:run.argsSplit], run.Args[run.argsSplit:]
	}
	if len(cmd) == 0 {
		if len(args) == 0 {
			args = c.Cmd
		}
		if !(len(c.Entrypoint) == 1 && c.Entrypoint[0] == "") {
			cmd = c.Entrypoint
		}
	}
	run.Args = append(append([]string{}, cmd...), args...)
	run.argsSplit = -1
	if run.StopSignal == "" {
		run.StopSignal = c.StopSignal
	}
	out := *img
	out.Config.Entrypoint, out.Config.Cmd = nil, nil
	return &out
}

// runConfigOf checks a container config and takes what StartContainer
// needs. What podsb cannot do is refused, never ignored.
func runConfigOf(cfg *runtimeapi.ContainerConfig) (runConfig, error) {
	name := cfg.GetMetadata().GetName()
	run := runConfig{
		Args:      append(append([]string{}, cfg.GetCommand()...), cfg.GetArgs()...),
		argsSplit: len(cfg.GetCommand()),
		Dir:       cfg.GetWorkingDir(),
		TTY:       cfg.GetTty(),
		Stdin:     cfg.GetStdin(),
		StdinOnce: cfg.GetStdinOnce(),
	}
	if run.Dir != "" && !filepath.IsAbs(run.Dir) {
		return run, invalidf("container %s: working directory %q is not absolute", name, run.Dir)
	}
	for _, kv := range cfg.GetEnvs() {
		if kv.GetKey() == "" || strings.ContainsAny(kv.GetKey(), "=\x00") || strings.Contains(string(kv.GetValue()), "\x00") {
			return run, invalidf("container %s: environment variable %q: bad name or value", name, kv.GetKey())
		}
		run.Env = append(run.Env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	for _, m := range cfg.GetMounts() {
		v, err := volumeOf(m)
		if err != nil {
			return run, invalidf("container %s: %v", name, err)
		}
		run.Volumes = append(run.Volumes, v)
	}
	if len(cfg.GetDevices()) > 0 {
		return run, unimplementedf("container %s: devices are not supported by podsb yet", name)
	}
	if cfg.GetWindows() != nil {
		return run, invalidf("container %s: windows options on a Linux runtime", name)
	}
	res, err := resourcesOf(name, cfg.GetLinux().GetResources())
	if err != nil {
		return run, err
	}
	run.Resources = res
	sc := cfg.GetLinux().GetSecurityContext()
	if err := securityOf(name, sc, &run); err != nil {
		return run, err
	}
	if sc != nil {
		var user, group string
		switch {
		case sc.GetRunAsUsername() != "":
			user = sc.GetRunAsUsername()
		case sc.GetRunAsUser() != nil:
			user = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
		}
		if sc.GetRunAsGroup() != nil {
			if user == "" {
				return run, invalidf("container %s: run_as_group without run_as_user or run_as_username", name)
			}
			group = strconv.FormatInt(sc.GetRunAsGroup().GetValue(), 10)
		}
		if user != "" && group != "" {
			user += ":" + group
		}
		run.User = user
		pid, err := pidModeOf(name, sc.GetNamespaceOptions())
		if err != nil {
			return run, err
		}
		run.PID = pid
	}
	if err := checkBidirectional(&run); err != nil {
		return run, invalidf("container %s: %v", name, err)
	}
	return run, nil
}

// volumeOf turns a CRI mount into a podsb volume.
func volumeOf(m *runtimeapi.Mount) (sandbox.Volume, error) {
	v := sandbox.Volume{Source: m.GetHostPath(), Destination: m.GetContainerPath(), ReadOnly: m.GetReadonly()}
	if m.GetImage() != nil && m.GetImage().GetImage() != "" {
		return imageVolumeOf(m, v)
	}
	switch {
	case v.Source == "" || !filepath.IsAbs(v.Source):
		return v, fmt.Errorf("mount %s: host path %q is not absolute", v.Destination, v.Source)
	case v.Destination == "" || !filepath.IsAbs(v.Destination):
		return v, fmt.Errorf("mount of %s: container path %q is not absolute", v.Source, v.Destination)
	case len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0:
		return v, fmt.Errorf("mount %s: ID-mapped mounts are not supported by podsb yet", v.Destination)
	}
	if err := mountModes(m, &v); err != nil {
		return v, err
	}
	// A host path that is a symlink mounts what it points to, as
	// containerd and CRI-O do (critest checks it). A missing host path is
	// refused: podsb makes nothing on the host that the host did not ask
	// for (kubelet makes a hostPath volume's directory itself).
	src, err := filepath.EvalSymlinks(v.Source)
	if err != nil {
		return v, fmt.Errorf("mount %s: host path: %w", v.Destination, err)
	}
	v.Source = src
	// The source's mount must be able to propagate as asked, now rather
	// than at start.
	if err := (&rootfs.Spec{Volumes: []rootfs.Volume{v}}).Check(); err != nil {
		return v, fmt.Errorf("mount %s: %w", v.Destination, err)
	}
	return v, nil
}

// reserveContainer records rec, created, unless a container of the same
// pod, name and attempt exists.
func (s *Server) reserveContainer(rec *containerRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if other, ok := s.cnames[rec.key()]; ok {
		return alreadyExistsf("container %s (attempt %d) of pod sandbox %s exists: %s", rec.Name, rec.Attempt, rec.PodID, other)
	}
	if _, ok := s.pods[rec.PodID]; !ok {
		return notFoundf("pod sandbox %s: removed meanwhile", rec.PodID)
	}
	if err := s.store.writeContainer(rec); err != nil {
		return internalf("%v", err)
	}
	s.containers[rec.ID] = rec
	s.cnames[rec.key()] = rec.ID
	return nil
}

// updateContainer writes next as the record of its container, unless the
// container has been removed meanwhile.
func (s *Server) updateContainer(next *containerRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.containers[next.ID]; !ok {
		return notFoundf("container %s: removed meanwhile", next.ID)
	}
	if err := s.store.writeContainer(next); err != nil {
		return internalf("%v", err)
	}
	c := *next
	s.containers[next.ID] = &c
	return nil
}

// dropContainer forgets rec: its record, its name, its hold on its image.
func (s *Server) dropContainer(rec *containerRecord) error {
	s.mu.Lock()
	err := s.store.removeContainer(rec.ID)
	if err == nil {
		delete(s.containers, rec.ID)
		delete(s.ops, rec.ID)
		if s.cnames[rec.key()] == rec.ID {
			delete(s.cnames, rec.key())
		}
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// Not under mu: the store's index update asks holderAlive, which
	// takes it.
	if rec.ImageRef != "" {
		if err := s.images.Release(rec.ImageRef, s.holder(rec)); err != nil {
			s.log.Warn("release image", "container", rec.ID, "image", rec.ImageRef, "err", err)
		}
	}
	s.releaseImageVolumes(rec)
	return nil
}

// findContainer returns a copy of the record of the container id, which
// may be a unique prefix of an ID.
func (s *Server) findContainer(id string) (containerRecord, error) {
	if id == "" {
		return containerRecord{}, invalidf("container ID is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.containers[id]; ok {
		return *r, nil
	}
	var found *containerRecord
	for k, r := range s.containers {
		if strings.HasPrefix(k, id) {
			if found != nil {
				return containerRecord{}, invalidf("container ID %q: a prefix of more than one container's", id)
			}
			found = r
		}
	}
	if found == nil {
		return containerRecord{}, notFoundf("container %q: not found", id)
	}
	return *found, nil
}

// podContainers returns copies of the records of the pod's containers.
func (s *Server) podContainers(podID string) []containerRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []containerRecord
	for _, r := range s.containers {
		if r.PodID == podID {
			out = append(out, *r)
		}
	}
	return out
}

// StartContainer starts a created container: its log writer, then its
// process, detached, adopted by the pod's pause. A start that fails leaves
// the container exited, with reason StartError, as containerd does.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	rec, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	unlock := s.lockPod(rec.ID)
	defer unlock()
	if rec, err = s.findContainer(rec.ID); err != nil {
		return nil, err
	}
	if rec.State != stateCreated {
		return nil, failedPreconditionf("container %s is %s: only a created container starts", rec.ID, rec.State)
	}
	pod, err := s.find(rec.PodID)
	if err != nil {
		return nil, err
	}
	p, err := sandbox.Load(s.root, rec.PodID)
	if err != nil || !s.liveOf(&pod).ready {
		return nil, failedPreconditionf("container %s: pod sandbox %s is not ready", rec.ID, rec.PodID)
	}
	if err := s.startProcess(ctx, p, &rec); err != nil {
		rec.State, rec.ExitCode, rec.Reason, rec.Message = stateExited, unknownExitCode, "StartError", err.Error()
		rec.Started = 0
		rec.Finished = time.Now().UnixNano()
		if uerr := s.updateContainer(&rec); uerr != nil {
			s.log.Warn("record failed start", "container", rec.ID, "err", uerr)
		}
		return nil, grpcError("start container "+rec.ID, err)
	}
	rec.State = stateRunning
	if st, err := p.Container(rec.ID); err == nil {
		rec.Run.Identity = st.User
	}
	if err := s.updateContainer(&rec); err != nil {
		return nil, err
	}
	s.log.Info("container started", "id", rec.ID, "name", rec.Name, "pod", rec.PodID)
	return &runtimeapi.StartContainerResponse{}, nil
}

// containerConfig is the podsb container of rec.
func containerConfig(rec *containerRecord) sandbox.ContainerConfig {
	r := rec.Run
	return sandbox.ContainerConfig{
		ExecConfig: sandbox.ExecConfig{
			Args: r.Args, Env: r.Env, Dir: r.Dir, User: r.User, TTY: r.TTY, Detach: true,
			Groups: r.Groups, StrictGroups: r.StrictGroups, Security: r.security(),
		},
		Name: rec.ID, ReadOnly: r.ReadOnly, Volumes: r.Volumes, Image: r.Image, Resources: r.Resources, PID: r.PID,
		MaskedPaths: r.MaskedPaths, ReadOnlyPaths: r.ReadOnlyPaths,
	}
}

// refresh brings an exited container's record up to date: a record that
// says running whose process is gone gets its exit, from the podsb
// container (pause recorded it), or unknown if the pod is gone.
func (s *Server) refresh(rec *containerRecord) {
	if rec.State != stateRunning {
		return
	}
	code, reason, finished, running := s.exitOf(rec)
	if running {
		return
	}
	// The log is complete before the container is reported exited, so a
	// client that reads it then sees the last line (crictl logs, critest).
	if rec.Logger != "" {
		ctx, cancel := context.WithTimeout(context.Background(), logDrainWait)
		crilog.Attach(ctx, rec.Logger, nil, nil, nil, nil)
		cancel()
	}
	next := *rec
	next.State, next.ExitCode, next.Reason, next.Finished, next.Logger = stateExited, code, reason, finished, ""
	if err := s.updateContainer(&next); err != nil {
		return // removed meanwhile: report what we had
	}
	*rec = next
}

// exitOf asks the podsb container of rec whether it runs and, if not, how
// it ended.
func (s *Server) exitOf(rec *containerRecord) (code int32, reason string, finished int64, running bool) {
	p, err := sandbox.Load(s.root, rec.PodID)
	if err == nil {
		cs, err := p.Container(rec.ID)
		if err == nil && cs.Status == "running" {
			return 0, "", 0, true
		}
		if err == nil {
			if ex := exitRecord(cs); ex != nil {
				reason := "Completed"
				switch {
				case p.OOMKilled(rec.ID):
					reason = "OOMKilled"
				case ex.code != 0:
					reason = "Error"
				}
				return int32(ex.code), reason, ex.finished.UnixNano(), false
			}
		}
	}
	return unknownExitCode, "Unknown", time.Now().UnixNano(), false
}

func criState(st string) runtimeapi.ContainerState {
	switch st {
	case stateCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case stateRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case stateExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func (r *containerRecord) metadata() *runtimeapi.ContainerMetadata {
	return &runtimeapi.ContainerMetadata{Name: r.Name, Attempt: r.Attempt}
}

// ContainerStatus reports a container: state, times, exit, image, mounts.
func (s *Server) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	rec, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	s.refresh(&rec)
	st := &runtimeapi.ContainerStatus{
		Id: rec.ID, Metadata: rec.metadata(), State: criState(rec.State),
		CreatedAt: rec.Created, StartedAt: rec.Started, FinishedAt: rec.Finished,
		ExitCode: rec.ExitCode, Reason: rec.Reason, Message: rec.Message,
		Image: &runtimeapi.ImageSpec{Image: rec.Image}, ImageRef: rec.ImageRef, ImageId: rec.ImageRef,
		Labels: rec.Labels, Annotations: rec.Annotations, LogPath: rec.LogPath,
		Resources: criResources(rec.Run.Resources),
	}
	if id := rec.Run.Identity; id != nil {
		u := &runtimeapi.LinuxContainerUser{Uid: int64(id.UID), Gid: int64(id.GID)}
		for _, g := range id.Groups {
			u.SupplementalGroups = append(u.SupplementalGroups, int64(g))
		}
		st.User = &runtimeapi.ContainerUser{Linux: u}
	}
	for _, v := range rec.Run.Volumes {
		st.Mounts = append(st.Mounts, mountOf(v))
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": mustJSON(map[string]any{"record": rec, "root": s.root})}
	}
	return resp, nil
}

// ListContainers lists the containers that pass the filter: an ID or
// prefix, a state, a pod sandbox ID or prefix, and labels.
func (s *Server) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	s.mu.Lock()
	recs := make([]containerRecord, 0, len(s.containers))
	for _, r := range s.containers {
		recs = append(recs, *r)
	}
	s.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created > recs[j].Created })
	resp := &runtimeapi.ListContainersResponse{}
	for i := range recs {
		r := &recs[i]
		if !strings.HasPrefix(r.ID, f.GetId()) || !strings.HasPrefix(r.PodID, f.GetPodSandboxId()) || !labelsMatch(r.Labels, f.GetLabelSelector()) {
			continue
		}
		s.refresh(r)
		if f.GetState() != nil && f.GetState().GetState() != criState(r.State) {
			continue
		}
		resp.Containers = append(resp.Containers, &runtimeapi.Container{
			Id: r.ID, PodSandboxId: r.PodID, Metadata: r.metadata(), Image: &runtimeapi.ImageSpec{Image: r.Image},
			ImageRef: r.ImageRef, ImageId: r.ImageRef, State: criState(r.State), CreatedAt: r.Created,
			Labels: r.Labels, Annotations: r.Annotations,
		})
	}
	return resp, nil
}

// StopContainer stops a running container: its stop signal (the image's,
// else SIGTERM), then SIGKILL after the timeout. Stopping a container that
// is not running succeeds.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	rec, err := s.findContainer(req.GetContainerId())
	if isNotFound(err) {
		return &runtimeapi.StopContainerResponse{}, nil // idempotent, whatever the ID's form
	}
	if err != nil {
		return nil, err
	}
	if req.GetTimeout() < 0 {
		return nil, invalidf("stop container %s: negative timeout %d", rec.ID, req.GetTimeout())
	}
	unlock := s.lockPod(rec.ID)
	defer unlock()
	if err := s.stopContainer(ctx, &rec, time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// stopContainer stops rec's process, if it runs, and records its exit.
// The caller holds the container's op lock.
func (s *Server) stopContainer(ctx context.Context, rec *containerRecord, timeout time.Duration) error {
	cur, err := s.findContainer(rec.ID)
	if err != nil {
		return err
	}
	*rec = cur
	s.refresh(rec)
	if rec.State != stateRunning {
		return nil
	}
	// A timeout of 0 is SIGKILL at once, as containerd and CRI-O read it.
	sig := unix.SIGTERM
	if timeout == 0 {
		sig = unix.SIGKILL
	} else if rec.Run.StopSignal != "" {
		if sig, err = sandbox.ParseSignal(rec.Run.StopSignal); err != nil {
			return invalidf("container %s: stop signal: %v", rec.ID, err)
		}
	}
	p, err := sandbox.Load(s.root, rec.PodID)
	if err == nil {
		err = stopPodContainer(ctx, p, rec.ID, sig, timeout)
	}
	if err != nil && !errors.Is(err, sandbox.ErrNotFound) && !errors.Is(err, sandbox.ErrNotRunning) {
		return grpcError("stop container "+rec.ID, err)
	}
	s.refresh(rec)
	return nil
}

// RemoveContainer removes a container, stopping it first if it runs (with
// SIGKILL: the CRI asks for a forced removal). Removing a container that is
// not there succeeds.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	rec, err := s.findContainer(req.GetContainerId())
	if isNotFound(err) {
		return &runtimeapi.RemoveContainerResponse{}, nil // idempotent, whatever the ID's form
	}
	if err != nil {
		return nil, err
	}
	unlock := s.lockPod(rec.ID)
	defer unlock()
	if err := s.removeContainer(ctx, &rec); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

// removeContainer removes rec's podsb container and its record. The
// caller holds the container's op lock.
func (s *Server) removeContainer(ctx context.Context, rec *containerRecord) error {
	if _, err := s.findContainer(rec.ID); err != nil {
		return nil // removed while we waited
	}
	if err := s.stopContainer(ctx, rec, 0); err != nil {
		return err
	}
	p, err := sandbox.Load(s.root, rec.PodID)
	if err == nil {
		err = removePodContainer(ctx, p, rec.ID)
	}
	if err != nil && !errors.Is(err, sandbox.ErrNotFound) {
		return grpcError("remove container "+rec.ID, err)
	}
	if err := s.dropContainer(rec); err != nil {
		return internalf("remove record of container %s: %v", rec.ID, err)
	}
	s.logs.Forget(rec.ID)
	// A log of the server's own (not kubelet's, which kubelet removes).
	if rec.LogPath == s.defaultLogPath(rec.ID) {
		os.Remove(rec.LogPath)
	}
	return nil
}

// ReopenContainerLog has a running container's log writer reopen its log
// file (after kubelet rotated it).
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	rec, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	s.refresh(&rec)
	if rec.State != stateRunning {
		return nil, failedPreconditionf("container %s is not running: no log to reopen", rec.ID)
	}
	if err := reopenLog(ctx, &rec); err != nil {
		return nil, grpcError("reopen log of container "+rec.ID, err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
