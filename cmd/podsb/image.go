package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/image/fetch"
	"github.com/podsb/podsb/sandbox"
)

// openStore opens the image store of --image-root.
func openStore(g *globals) (*image.Store, error) {
	s, err := image.Open(g.imageRoot)
	if err != nil {
		return nil, err
	}
	s.HolderAlive = holderAlive
	return s, nil
}

// loadRegistries reads the registries config of --registries-conf (or
// DefaultRegistriesConf if it exists; nil if not).
func loadRegistries(g *globals) (*fetch.Registries, error) {
	conf := g.registriesConf
	if conf == "" {
		if _, err := os.Stat(fetch.DefaultRegistriesConf); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		conf = fetch.DefaultRegistriesConf
	}
	return fetch.LoadRegistries(conf)
}

// runImage runs cc from image ref. The container's directory holds the
// image (a holder, see holderAlive) until its pod is removed; a run that
// fails releases it at once.
func runImage(cmd *cobra.Command, g *globals, pod *sandbox.Pod, cc sandbox.ContainerConfig, ref string) (*sandbox.Process, error) {
	s, err := openStore(g)
	if err != nil {
		return nil, err
	}
	holder := filepath.Join(pod.Dir(), "containers", cc.Name)
	if cc.Image, err = s.RootOf(ref, holder); err != nil {
		return nil, err
	}
	p, err := pod.Run(cmd.Context(), cc)
	if err != nil {
		s.Release(cc.Image.ID, holder)
		return nil, err
	}
	return p, nil
}

// holderAlive tells whether a holder the CLI recorded, a container's
// directory ROOT/POD/containers/NAME, still uses its image: while its pod
// exists (a container's directory and upper directory live as long as
// its pod). Holders that are not such paths are kept.
func holderAlive(h string) bool {
	if !filepath.IsAbs(h) || filepath.Base(filepath.Dir(h)) != "containers" {
		return true
	}
	_, err := os.Lstat(filepath.Dir(filepath.Dir(h)))
	return !errors.Is(err, fs.ErrNotExist)
}

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Pull, import, list and remove images (store: --image-root)",
	}
	cmd.AddCommand(newImagePullCmd(g), newImageImportCmd(g), newImageLsCmd(g), newImageInspectCmd(g),
		newImageTagCmd(g), newImageRmCmd(g), newImagePruneCmd(g))
	return cmd
}

func newImagePullCmd(g *globals) *cobra.Command {
	var platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [flags] REF",
		Short: "Pull an image from a registry (or its mirrors) and print its ID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(g)
			if err != nil {
				return err
			}
			regs, err := loadRegistries(g)
			if err != nil {
				return err
			}
			opts := fetch.PullOptions{Platform: platform, Registries: regs}
			var bar *progressBar
			if !quiet && term.IsTerminal(int(os.Stderr.Fd())) {
				bar = &progressBar{w: cmd.ErrOrStderr(), label: args[0]}
				opts.Progress = bar.update
			}
			im, err := fetch.Pull(cmd.Context(), s, args[0], opts)
			bar.finish()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), im.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "pull the image for `OS/ARCH[/VARIANT]` (default linux and this machine's architecture)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// progressBar draws one line on a terminal, at most ten times a second.
type progressBar struct {
	w     io.Writer
	label string
	mu    sync.Mutex
	last  time.Time
	drawn bool
}

func (b *progressBar) update(done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.last) < 100*time.Millisecond && done < total {
		return
	}
	b.last = time.Now()
	const width = 30
	n := width
	if total > 0 {
		n = int(done * width / total)
	}
	fmt.Fprintf(b.w, "\r%s [%s%s] %s / %s ", b.label, strings.Repeat("=", n), strings.Repeat(" ", width-n), size(done), size(total))
	b.drawn = true
}

func (b *progressBar) finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func newImageImportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE|DIR",
		Short: "Import a docker-archive, an oci-archive or an OCI layout directory; print the IDs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(g)
			if err != nil {
				return err
			}
			ims, err := fetch.Import(cmd.Context(), s, args[0])
			for _, im := range ims {
				fmt.Fprintln(cmd.OutOrStdout(), im.ID)
			}
			return err
		},
	}
}

func newImageLsCmd(g *globals) *cobra.Command {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "" && format != "json" && format != "table" {
				return fmt.Errorf("--format %q: want json or table", format)
			}
			s, err := openStore(g)
			if err != nil {
				return err
			}
			ims, err := s.List()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, im := range ims {
					fmt.Fprintln(out, shortImageID(im.ID))
				}
			case format == "json":
				if ims == nil {
					ims = []image.Image{}
				}
				return writeJSON(out, ims)
			default:
				tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tID\tCREATED\tSIZE")
				for _, im := range ims {
					names := im.Names
					if len(names) == 0 {
						names = []string{"<none>"}
					}
					for _, n := range names {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, shortImageID(im.ID), im.Created.Format(time.DateTime), size(im.Size))
					}
				}
				return tw.Flush()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output `FORMAT`: table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the image IDs only")
	return cmd
}

func shortImageID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// imageInspect is what image inspect prints for each image.
type imageInspect struct {
	image.Image
	Config any `json:"config"`
}

func newImageInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect REF...",
		Short: "Print images and their configs as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(g)
			if err != nil {
				return err
			}
			var out []imageInspect
			for _, ref := range args {
				im, err := s.Inspect(ref)
				if err != nil {
					return err
				}
				cf, err := s.RawConfig(im.ID)
				if err != nil {
					return err
				}
				out = append(out, imageInspect{Image: im, Config: cf})
			}
			return writeJSON(cmd.OutOrStdout(), out)
		},
	}
}

func newImageTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag REF NAME",
		Short: "Give the image REF another name",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(g)
			if err != nil {
				return err
			}
			return s.Tag(args[0], args[1])
		},
	}
}

func newImageRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [-f] REF...",
		Short: "Remove images (or one of an image's names), with their unused layers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(g)
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				if _, err := s.Remove(ref, force); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove images in use too (their layers stay until released)")
	return cmd
}

func newImagePruneCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove blobs and layers that no image uses, and leftovers of interrupted pulls",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(g)
			if err != nil {
				return err
			}
			r, err := s.Prune()
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d blobs (%s) and %d layers\n", r.Blobs, size(r.Bytes), r.Layers)
			return err
		},
	}
}
