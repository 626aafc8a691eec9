package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// nginxConf is the web server image's nginx.conf: in the foreground, the
// error log on stderr (where a container's log is), serving html on port.
const nginxConf = `# Written by criregistry: critest's web server.
daemon off;
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
	include /etc/nginx/mime.types;
	access_log /dev/stdout;
	server {
		listen %d;
		root /usr/share/nginx/html;
		index index.html;
	}
}
`

// nginxLayer is Debian's nginx (the binary at bin, from the nginx package
// of make deps) with the shared libraries ldd finds for it, each at the
// path ldd names and with the content of the file that path leads to,
// Debian's mime.types, and the directories nginx writes to (its logs and
// temporary files, its PID file, /run and /var/run).
func nginxLayer(bin string) (v1.Layer, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s (Debian's nginx, make deps): %w", bin, err)
	}
	paths := map[string]string{"usr/sbin/nginx": bin, "etc/nginx/mime.types": "/etc/nginx/mime.types"}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			paths[strings.TrimPrefix(f[2], "/")] = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			paths[strings.TrimPrefix(f[0], "/")] = f[0] // the dynamic loader
		}
	}
	dirs := map[string]bool{"run": true, "var/log/nginx": true, "var/lib/nginx": true, "var/lock": true, "usr/share/nginx/html": true}
	names := make([]string, 0, len(paths))
	for n := range paths {
		names = append(names, n)
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		for p := filepath.Dir(d); p != "."; p = filepath.Dir(p) {
			dirs[p] = true
		}
	}
	sort.Strings(names)
	dl := make([]string, 0, len(dirs))
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl) // a parent before its children
	var files []file
	for _, d := range dl {
		files = append(files, file{name: d, mode: 0o755, dir: true})
	}
	// /var/run leads to /run, as in Debian's (and the nginx:1.14-2 image
	// critest names): its HostPID spec reads /var/run/nginx.pid.
	files = append(files, file{name: "var/run", link: "../run"})
	for _, n := range names {
		body, err := os.ReadFile(paths[n]) // through symbolic links
		if err != nil {
			return nil, fmt.Errorf("nginx image: %w", err)
		}
		mode := int64(0o644)
		if n == "usr/sbin/nginx" || strings.Contains(n, ".so") {
			mode = 0o755
		}
		files = append(files, file{name: n, mode: mode, body: body})
	}
	return layerOf(files...)
}

// nginxSite is the configuration of an nginx serving a page on port.
func nginxSite(port int) []file {
	return []file{{name: "etc", mode: 0o755, dir: true}, {name: "etc/nginx", mode: 0o755, dir: true},
		{name: "etc/nginx/nginx.conf", mode: 0o644, body: []byte(fmt.Sprintf(nginxConf, port))},
		{name: "usr", mode: 0o755, dir: true}, {name: "usr/share", mode: 0o755, dir: true}, {name: "usr/share/nginx", mode: 0o755, dir: true},
		{name: "usr/share/nginx/html", mode: 0o755, dir: true},
		{name: "usr/share/nginx/html/index.html", mode: 0o644, body: []byte("<html><body>podsb critest web server: nginx</body></html>\n")}}
}
