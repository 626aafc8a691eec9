package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/sandbox"
)

// openStore opens the image store of --image-root.
func openStore(g *globals) (*image.Store, error) {
	s, err := image.Open(g.imageRoot)
	if err != nil {
		return nil, err
	}
	s.HolderAlive = image.PodHolderAlive
	return s, nil
}

// runImage runs cc from image ref. The container's directory holds the
// image (a holder, see image.PodHolderAlive) until its pod is removed; a run that
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

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Pull, import, list and remove images (store: --image-root)",
	}
	cmd.AddCommand(newImagePullCmd(g), newImageImportCmd(g), newImageLsCmd(g), newImageInspectCmd(g),
		newImageTagCmd(g), newImageRmCmd(g), newImagePruneCmd(g))
	return cmd
}

// The pull and import side of the image store (package image/fetch) is
// the podsb-image binary, which image pull and image import execute with
// their flags resolved: linked into podsb, go-containerregistry, net/http
// and the decompressors would slow every podsb command's start
// (docs/performance.md).
const imageBinary = "podsb-image"

// execImage replaces podsb with podsb-image running verb (pull or import)
// on arg, with the image root and registries config of g and extra flags.
func execImage(g *globals, verb, arg string, extra ...string) error {
	path, err := findHelper(imageBinary, "podsb image "+verb)
	if err != nil {
		return err
	}
	argv := append([]string{path, verb, "--image-root", g.imageRoot, "--registries-conf", g.registriesConf}, extra...)
	argv = append(argv, "--", arg)
	return unix.Exec(path, argv, os.Environ())
}

func newImagePullCmd(g *globals) *cobra.Command {
	var platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [flags] REF",
		Short: "Pull an image from a registry (or its mirrors) and print its ID (runs podsb-image)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			extra := []string{"--platform", platform}
			if quiet {
				extra = append(extra, "-q")
			}
			return execImage(g, "pull", args[0], extra...)
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "pull the image for `OS/ARCH[/VARIANT]` (default linux and this machine's architecture)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
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
		Short: "Import a docker-archive, an oci-archive or an OCI layout directory; print the IDs (runs podsb-image)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return execImage(g, "import", args[0])
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
