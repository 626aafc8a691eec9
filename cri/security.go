package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsb/podsb/sandbox"
)

// securityOf turns a container's security context into run's fields:
// capabilities, privileged, no_new_privs, supplementary groups, masked
// and read-only paths, and the seccomp profile (a Localhost one is read
// now, so that the container does not depend on the file later). What
// the kernel lacks (AppArmor, SELinux) is refused, naming the field.
func securityOf(name string, sc *runtimeapi.LinuxContainerSecurityContext, run *runConfig) error {
	field := func(f string) string { return "container " + name + ": linux.security_context." + f }
	caps := sc.GetCapabilities()
	for _, l := range []struct {
		field string
		names []string
	}{{"capabilities.add_capabilities", caps.GetAddCapabilities()}, {"capabilities.drop_capabilities", caps.GetDropCapabilities()}} {
		for _, c := range l.names {
			if !sandbox.IsCap(c) {
				return invalidf("%s: %q: no such capability", field(l.field), c)
			}
		}
	}
	if n := len(caps.GetAddAmbientCapabilities()); n > 0 {
		return unimplementedf("%s: %d ambient capabilities: not supported by podsb", field("capabilities.add_ambient_capabilities"), n)
	}
	run.CapAdd, run.CapDrop = caps.GetAddCapabilities(), caps.GetDropCapabilities()
	run.Privileged = sc.GetPrivileged()
	run.ReadOnly = sc.GetReadonlyRootfs()
	run.NewPrivs = !sc.GetNoNewPrivs()
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > 1<<32-2 {
			return invalidf("%s: group %d is out of range", field("supplemental_groups"), g)
		}
		run.Groups = append(run.Groups, uint32(g))
	}
	switch sc.GetSupplementalGroupsPolicy() {
	case runtimeapi.SupplementalGroupsPolicy_Merge:
	case runtimeapi.SupplementalGroupsPolicy_Strict:
		run.StrictGroups = true
	default:
		return invalidf("%s: unknown policy %d", field("supplemental_groups_policy"), sc.GetSupplementalGroupsPolicy())
	}
	for _, l := range []struct {
		field string
		paths []string
	}{{"masked_paths", sc.GetMaskedPaths()}, {"readonly_paths", sc.GetReadonlyPaths()}} {
		for _, p := range l.paths {
			if !filepath.IsAbs(p) || filepath.Clean(p) == "/" {
				return invalidf("%s: %q: not an absolute path below /", field(l.field), p)
			}
		}
	}
	run.MaskedPaths, run.ReadOnlyPaths = sc.GetMaskedPaths(), sc.GetReadonlyPaths()
	var err error
	//lint:ignore SA1019 deprecated, but older kubelets send it
	run.Unconfined, run.Seccomp, err = seccompOf(field, sc.GetSeccomp(), sc.GetSeccompProfilePath())
	if err != nil {
		return err
	}
	//lint:ignore SA1019 deprecated, but older kubelets send it
	return noLSM(field, sc.GetApparmor(), sc.GetApparmorProfile(), sc.GetSelinuxOptions())
}

// seccompOf reads a seccomp profile: unconfined (no filter: nil, as the
// CRI says), podsb's default filter, or a Localhost profile file's
// contents. The deprecated seccomp_profile_path counts only without
// seccomp.
func seccompOf(field func(string) string, p *runtimeapi.SecurityProfile, path string) (unconfined bool, profile string, err error) {
	f := "seccomp"
	if p == nil {
		f = "seccomp_profile_path"
		switch {
		case path == "", path == "unconfined":
			return true, "", nil
		case path == "runtime/default", path == "docker/default":
			p = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		case strings.HasPrefix(path, "localhost/"):
			p = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(path, "localhost")}
		default:
			return false, "", invalidf("%s: %q: want unconfined, runtime/default or localhost/PATH", field(f), path)
		}
	}
	switch p.GetProfileType() {
	case runtimeapi.SecurityProfile_Unconfined:
		return true, "", nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return false, "", nil
	case runtimeapi.SecurityProfile_Localhost:
		ref := p.GetLocalhostRef()
		if !filepath.IsAbs(ref) {
			return false, "", invalidf("%s: localhost profile %q: not an absolute path", field(f), ref)
		}
		b, err := readProfile(ref)
		if err != nil {
			return false, "", invalidf("%s: localhost profile: %v", field(f), err)
		}
		if err := sandbox.CheckSeccomp(string(b)); err != nil {
			return false, "", invalidf("%s: localhost profile %s: %v", field(f), ref, err)
		}
		return false, string(b), nil
	}
	return false, "", invalidf("%s: unknown profile type %d", field(f), p.GetProfileType())
}

// maxProfile bounds a seccomp profile file: Docker's default is 20 KiB.
const maxProfile = 1 << 20

func readProfile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxProfile {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", path, maxProfile)
	}
	return os.ReadFile(path)
}

// noLSM refuses AppArmor profiles and SELinux labels: podsb runs where
// the kernel has neither (docs/cri.md), so only none or unconfined can be
// honoured.
func noLSM(field func(string) string, apparmor *runtimeapi.SecurityProfile, apparmorProfile string, selinux *runtimeapi.SELinuxOption) error {
	if apparmor != nil && apparmor.GetProfileType() != runtimeapi.SecurityProfile_Unconfined {
		return invalidf("%s: profile %s %q: podsb does not support AppArmor (its kernel has no AppArmor)", field("apparmor"), apparmor.GetProfileType(), apparmor.GetLocalhostRef())
	}
	if apparmorProfile != "" && apparmorProfile != "unconfined" {
		return invalidf("%s: %q: podsb does not support AppArmor (its kernel has no AppArmor)", field("apparmor_profile"), apparmorProfile)
	}
	if s := selinux; s.GetUser()+s.GetRole()+s.GetType()+s.GetLevel() != "" {
		return invalidf("%s: %s:%s:%s:%s: podsb does not support SELinux (its kernel has no SELinux)", field("selinux_options"), s.GetUser(), s.GetRole(), s.GetType(), s.GetLevel())
	}
	return nil
}

// podSecurityOf checks a pod's security context: Privileged gives its
// pause every privilege (and unmasks its /proc), an unconfined seccomp
// profile takes the filter off the pause. The pause is podsb's own
// process, always root: the pod's user, groups and read-only root, and a
// Localhost seccomp profile (read and checked here), are for its
// containers, whose configs kubelet gives them.
func podSecurityOf(sc *runtimeapi.LinuxSandboxSecurityContext, c *sandbox.Config) error {
	field := func(f string) string { return "pod sandbox config: linux.security_context." + f }
	c.Security.Privileged = sc.GetPrivileged()
	//lint:ignore SA1019 deprecated, but older kubelets send it
	unconfined, _, err := seccompOf(field, sc.GetSeccomp(), sc.GetSeccompProfilePath())
	if err != nil {
		return err
	}
	// Only an explicit Unconfined: no profile keeps the pause's filter.
	c.Security.Unconfined = unconfined && sc.GetSeccomp() != nil
	return noLSM(field, sc.GetApparmor(), "", sc.GetSelinuxOptions())
}

// secConfig is the part of a container's security context that runConfig
// keeps besides privileged, the capabilities and the read-only root.
type secConfig struct {
	NewPrivs      bool     `json:"newPrivs,omitempty"`
	Unconfined    bool     `json:"unconfined,omitempty"`
	Seccomp       string   `json:"seccomp,omitempty"` // a Localhost profile's contents
	Groups        []uint32 `json:"groups,omitempty"`
	StrictGroups  bool     `json:"strictGroups,omitempty"`
	MaskedPaths   []string `json:"maskedPaths,omitempty"`
	ReadOnlyPaths []string `json:"readOnlyPaths,omitempty"`
	// Identity is who the process runs as, once started.
	Identity *sandbox.Identity `json:"identity,omitempty"`
}

// security is the sandbox's Security of a container's process and its
// execs.
func (r *runConfig) security() sandbox.Security {
	return sandbox.Security{
		Privileged: r.Privileged, CapAdd: r.CapAdd, CapDrop: r.CapDrop,
		Unconfined: r.Unconfined, Seccomp: r.Seccomp, NewPrivs: r.NewPrivs,
	}
}
