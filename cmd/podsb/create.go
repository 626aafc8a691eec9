package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/sandbox"
)

func newCreateCmd(g *globals) *cobra.Command {
	var (
		cfg                            sandbox.Config
		volumes, publish, sysctls      []string
		netMode, subnet, bridge, ipArg string
		ipcMode                        string
		pids, memory, cpus             string
		userns                         string
		uidmaps, gidmaps               []string
	)
	cmd := &cobra.Command{
		Use:   "create [flags] [NAME]",
		Short: "Create a pod and print its name",
		Long: `Create a pod: a pause process as PID 1 of new PID, UTS, IPC, mount and
network namespaces, inside a root filesystem. Without NAME, podsb makes a
short unique ID. Returns once the pod is ready.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Root = g.root
			if len(args) == 1 {
				cfg.Name = args[0]
				if err := sandbox.ValidateName(cfg.Name); err != nil {
					return err
				}
			}
			// A limit given is checked, even an empty one or 0: leaving
			// the flag out is how to ask for no limit.
			var err error
			f := cmd.Flags()
			if f.Changed("pids-limit") {
				if cfg.Limits.Pids, err = sandbox.ParsePids(pids); err != nil {
					return err
				}
			}
			if f.Changed("memory") {
				if cfg.Limits.Memory, err = sandbox.ParseMemory(memory); err != nil {
					return err
				}
			}
			if f.Changed("cpus") {
				if cfg.Limits.CPUs, err = sandbox.ParseCPUs(cpus); err != nil {
					return err
				}
			}
			switch netMode {
			case "none", "host":
				cfg.HostNetwork = netMode == "host"
				if subnet != "" || bridge != "" || ipArg != "" || len(publish) > 0 {
					return errors.New("create: --subnet, --bridge, --ip and --publish need --network bridge")
				}
				if cfg.HostNetwork && f.Changed("hostname") {
					return errors.New("create: --hostname: a pod on the host's network has the host's")
				}
			case "bridge":
				nc := &sandbox.NetworkConfig{Bridge: bridge}
				if subnet != "" {
					s, err := sandbox.ParseSubnet(subnet)
					if err != nil {
						return err
					}
					nc.Subnet = s
				}
				if ipArg != "" {
					a, err := netip.ParseAddr(ipArg)
					if err != nil || !a.Is4() {
						return fmt.Errorf("--ip %q: not an IPv4 address", ipArg)
					}
					nc.IP = a
				}
				for _, s := range publish {
					p, err := sandbox.ParsePort(s)
					if err != nil {
						return err
					}
					nc.Publish = append(nc.Publish, p)
				}
				cfg.Network = nc
			default:
				return fmt.Errorf("--network %q: want bridge, none or host", netMode)
			}
			switch ipcMode {
			case "private":
			case "host":
				cfg.HostIPC = true
			default:
				return fmt.Errorf("--ipc %q: want private or host", ipcMode)
			}
			for _, kv := range sysctls {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--sysctl %q: want KEY=VALUE", kv)
				}
				cfg.Sysctls = append(cfg.Sysctls, sandbox.Sysctl{Key: k, Value: v})
			}
			for _, v := range volumes {
				vol, err := sandbox.ParseVolume(v)
				if err != nil {
					return err
				}
				cfg.Volumes = append(cfg.Volumes, vol)
			}
			if f.Changed("userns") {
				if cfg.UserNS, err = sandbox.ParseUserNS(userns); err != nil {
					return err
				}
			}
			for _, m := range [...]struct {
				flag string
				in   []string
				out  *[]sandbox.IDMap
			}{{"--uidmap", uidmaps, &cfg.UIDMap}, {"--gidmap", gidmaps, &cfg.GIDMap}} {
				for _, s := range m.in {
					e, err := sandbox.ParseIDMap(s)
					if err != nil {
						return fmt.Errorf("%s: %w", m.flag, err)
					}
					*m.out = append(*m.out, e)
				}
			}
			// The subordinate ID files automatic user namespaces use:
			// other files for tests and for a host that keeps them
			// elsewhere.
			for i, env := range [...]string{"PODSB_SUBUID", "PODSB_SUBGID"} {
				if p := os.Getenv(env); p != "" {
					sandbox.SubIDFiles[i] = p
				}
			}
			// Likewise the programs that write a rootless pod's
			// subordinate IDs (a rootless podsb runs them as the user:
			// the variables give no privilege).
			for i, env := range [...]string{"PODSB_NEWUIDMAP", "PODSB_NEWGIDMAP"} {
				if p := os.Getenv(env); p != "" {
					sandbox.NewIDMapPrograms[i] = p
				}
			}
			if step := os.Getenv(stopAfterEnv); step != "" {
				cfg.Trace = stopAfter(step)
			}
			// Before any thread of podsb's own starts.
			if err := sandbox.CheckTasks("create", cfg.Name); err != nil {
				return err
			}
			// A create takes milliseconds and undoes itself on failure:
			// let no signal cut it short and leave a half-made pod.
			signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
			// A rootless user with subordinate IDs: the create runs again,
			// in a user namespace with those maps, which newuidmap and
			// newgidmap write (security.md#rootless).
			if waitAttempted {
				return errors.New("rootless: this podsb has no fast path to start in a user namespace with subordinate IDs: build it with make build and a C compiler")
			}
			if sandbox.Rootless() && !sandbox.InUserNS() {
				u, err := sandbox.RootlessSubIDs()
				if err != nil {
					return err
				}
				if u != nil {
					code, err := sandbox.RunInUserNS(u, "/proc/self/exe", os.Args, os.Environ())
					if err != nil {
						return err
					}
					return &exitError{code}
				}
			}
			pod, err := sandbox.Create(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), pod.Name())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Rootfs, "rootfs", "", "use directory `DIR` as the pod's root (default: a tmpfs with the host's /usr read-only)")
	f.BoolVar(&cfg.ReadOnly, "read-only", false, "make the pod's root read-only")
	f.StringArrayVarP(&volumes, "volume", "v", nil, "bind-mount a host path: `SRC:DST[:OPTS]`, OPTS ro or rw, kernelfs, and idmap (repeatable)")
	f.StringVar(&cfg.Hostname, "hostname", "", "the pod's hostname (default: its name)")
	f.StringVar(&netMode, "network", "bridge", "bridge: an address on the state root's bridge; none: loopback only; host: the host's network and UTS namespaces")
	f.StringVar(&ipcMode, "ipc", "private", "private: an IPC namespace of the pod's own; host: the host's")
	f.StringArrayVar(&sysctls, "sysctl", nil, "set a sysctl of the pod's own namespaces: `KEY=VALUE` (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, kernel.domainname; repeatable)")
	f.StringVar(&subnet, "subnet", "", "the bridge network's IPv4 subnet, on its first use (default 10.89.0.0/16)")
	f.StringVar(&bridge, "bridge", "", "the bridge's name, on its first use (default podsb0)")
	f.StringVar(&ipArg, "ip", "", "ask for this free address of the subnet")
	f.StringArrayVarP(&publish, "publish", "p", nil, "publish a port: `[HOSTIP:]HOSTPORT:PODPORT[/tcp|/udp]` (repeatable)")
	securityFlags(f, &cfg.Security)
	f.StringVar(&userns, "userns", "host", "host: the host's user namespace; auto: one of the pod's own, 65536 IDs no other pod has (from /etc/subuid and /etc/subgid for containers)")
	f.StringArrayVar(&uidmaps, "uidmap", nil, "a user namespace of the pod's own with this uid map line: `CONTAINER:HOST:SIZE` (repeatable)")
	f.StringArrayVar(&gidmaps, "gidmap", nil, "likewise its gid map (default: the uid map)")
	f.StringVar(&pids, "pids-limit", "", "the most processes the pod may have: `N`, at least 1 (default no limit)")
	f.StringVar(&memory, "memory", "", "the most memory the pod may use: `SIZE` in bytes, or with k, m, g; at least 4m (default no limit)")
	f.StringVar(&cpus, "cpus", "", "the CPU time the pod may use: `N` CPUs, 0.01 to the number of CPUs (0.5: half of one; default no limit)")
	return cmd
}

// stopAfterEnv names a step of create after which podsb stops, for the
// fault-injection tests: they kill it there and check that rm or gc leaves
// nothing. Only tests set it.
const stopAfterEnv = "PODSB_TEST_STOP_AFTER"

func stopAfter(step string) func(string, time.Duration) {
	return func(s string, _ time.Duration) {
		if s == step {
			fmt.Fprintf(os.Stderr, "podsb: stopped after %s\n", s)
			time.Sleep(time.Hour)
		}
	}
}
