package cri

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestSecurityOf checks what a container's security context becomes, and
// that each refusal is InvalidArgument (or Unimplemented) naming its
// field.
func TestSecurityOf(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}`), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"defaultAction": 7}`), 0o644)
	local := func(p string) *runtimeapi.SecurityProfile {
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: p}
	}

	t.Run("honoured", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			sc    *runtimeapi.LinuxContainerSecurityContext
			check func(r runConfig) bool
		}{
			{"none: unconfined, new privileges, default masks", nil, func(r runConfig) bool {
				return r.Unconfined && r.NewPrivs && r.MaskedPaths == nil && r.ReadOnlyPaths == nil
			}},
			{"runtime default", &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{}, NoNewPrivs: true}, func(r runConfig) bool {
				return !r.Unconfined && r.Seccomp == "" && !r.NewPrivs
			}},
			{"localhost", &runtimeapi.LinuxContainerSecurityContext{Seccomp: local(good)}, func(r runConfig) bool {
				return !r.Unconfined && strings.Contains(r.Seccomp, "sethostname")
			}},
			//lint:ignore SA1019 the deprecated fields are still honoured
			{"deprecated path", &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/" + good}, func(r runConfig) bool {
				return strings.Contains(r.Seccomp, "sethostname")
			}},
			//lint:ignore SA1019 the deprecated fields are still honoured
			{"deprecated runtime/default", &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "runtime/default"}, func(r runConfig) bool {
				return !r.Unconfined && r.Seccomp == ""
			}},
			{"groups, strict", &runtimeapi.LinuxContainerSecurityContext{SupplementalGroups: []int64{5, 6},
				SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict}, func(r runConfig) bool {
				return r.StrictGroups && len(r.Groups) == 2 && r.Groups[1] == 6
			}},
			{"paths and caps", &runtimeapi.LinuxContainerSecurityContext{MaskedPaths: []string{"/bin/ls"}, ReadonlyPaths: []string{"/tmp"},
				Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"}}}, func(r runConfig) bool {
				return r.MaskedPaths[0] == "/bin/ls" && r.ReadOnlyPaths[0] == "/tmp" && r.CapAdd[0] == "NET_ADMIN" && r.CapDrop[0] == "ALL"
			}},
			{"apparmor unconfined", &runtimeapi.LinuxContainerSecurityContext{Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
				//lint:ignore SA1019 the deprecated fields are still honoured
				ApparmorProfile: "unconfined"}, func(runConfig) bool { return true }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var r runConfig
				if err := securityOf("c", tc.sc, &r); err != nil {
					t.Fatal(err)
				}
				if !tc.check(r) {
					t.Errorf("%+v", r.secConfig)
				}
			})
		}
	})

	for _, tc := range []struct {
		name  string
		sc    *runtimeapi.LinuxContainerSecurityContext
		code  codes.Code
		field string
	}{
		{"unknown capability", &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"CAP_FLY"}}},
			codes.InvalidArgument, "capabilities.add_capabilities"},
		{"ambient", &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{AddAmbientCapabilities: []string{"NET_ADMIN"}}},
			codes.Unimplemented, "add_ambient_capabilities"},
		{"negative group", &runtimeapi.LinuxContainerSecurityContext{SupplementalGroups: []int64{-1}}, codes.InvalidArgument, "supplemental_groups"},
		{"unknown policy", &runtimeapi.LinuxContainerSecurityContext{SupplementalGroupsPolicy: 9}, codes.InvalidArgument, "supplemental_groups_policy"},
		{"relative masked path", &runtimeapi.LinuxContainerSecurityContext{MaskedPaths: []string{"proc/kcore"}}, codes.InvalidArgument, "masked_paths"},
		{"root read-only path", &runtimeapi.LinuxContainerSecurityContext{ReadonlyPaths: []string{"/"}}, codes.InvalidArgument, "readonly_paths"},
		{"malformed profile", &runtimeapi.LinuxContainerSecurityContext{Seccomp: local(bad)}, codes.InvalidArgument, "seccomp: localhost profile"},
		{"missing profile", &runtimeapi.LinuxContainerSecurityContext{Seccomp: local(filepath.Join(dir, "none.json"))}, codes.InvalidArgument, "seccomp: localhost profile"},
		{"profile is a directory", &runtimeapi.LinuxContainerSecurityContext{Seccomp: local(dir)}, codes.InvalidArgument, "not a regular file"},
		{"relative profile", &runtimeapi.LinuxContainerSecurityContext{Seccomp: local("p.json")}, codes.InvalidArgument, "not an absolute path"},
		//lint:ignore SA1019 the deprecated fields are still honoured
		{"bad deprecated path", &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "docker/strict"}, codes.InvalidArgument, "seccomp_profile_path"},
		{"apparmor localhost", &runtimeapi.LinuxContainerSecurityContext{Apparmor: local("p")}, codes.InvalidArgument, "apparmor: profile Localhost"},
		//lint:ignore SA1019 the deprecated fields are still honoured
		{"apparmor deprecated", &runtimeapi.LinuxContainerSecurityContext{ApparmorProfile: "runtime/default"}, codes.InvalidArgument, "apparmor_profile"},
		{"selinux", &runtimeapi.LinuxContainerSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{Level: "s0:c1"}}, codes.InvalidArgument, "selinux_options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r runConfig
			err := securityOf("c", tc.sc, &r)
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), "container c: linux.security_context.") || !strings.Contains(st.Message(), tc.field) {
				t.Errorf("got %v, want %v naming %q", err, tc.code, tc.field)
			}
		})
	}
}

// TestPodSecurityOf checks a pod's security context: privileged and an
// unconfined seccomp profile reach the pause; a bad profile or an LSM
// label is refused, naming the field.
func TestPodSecurityOf(t *testing.T) {
	c := goodConfig()
	c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
		Privileged: true, Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}}
	sc, err := podConfig(c, "")
	if err != nil || !sc.Security.Privileged || !sc.Security.Unconfined {
		t.Errorf("privileged unconfined pod: %+v, %v", sc.Security, err)
	}
	c.Linux.SecurityContext = nil
	if sc, err = podConfig(c, ""); err != nil || sc.Security.Unconfined || sc.Security.Privileged {
		t.Errorf("pod without a security context: %+v, %v", sc.Security, err)
	}
	for _, tc := range []struct {
		name  string
		sc    *runtimeapi.LinuxSandboxSecurityContext
		field string
	}{
		{"missing profile", &runtimeapi.LinuxSandboxSecurityContext{Seccomp: &runtimeapi.SecurityProfile{
			ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/nonexistent/p.json"}}, "linux.security_context.seccomp"},
		{"apparmor", &runtimeapi.LinuxSandboxSecurityContext{Apparmor: &runtimeapi.SecurityProfile{}}, "linux.security_context.apparmor"},
		{"selinux", &runtimeapi.LinuxSandboxSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{Type: "spc_t"}}, "linux.security_context.selinux_options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodConfig()
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: tc.sc}
			_, err := podConfig(c, "")
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "pod sandbox config: "+tc.field) {
				t.Errorf("got %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
}
