// Command podsb-image pulls and imports images into podsb's image store
// (package image/fetch). It is a binary of its own, which podsb image pull
// and podsb image import execute with their flags resolved, so that
// go-containerregistry, net/http and the decompressors are not linked into
// podsb, whose every command would pay their initialization
// (docs/performance.md). It is not meant to be run by hand.
//
//	podsb-image pull --image-root DIR [--registries-conf FILE] [--platform P] [-q] REF
//	podsb-image import --image-root DIR PATH
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/podsb/podsb/image"
	"github.com/podsb/podsb/image/fetch"
)

// exitFailure is podsb's own failure (docs/cli.md).
const exitFailure = 125

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run executes args and returns the exit code; errors are printed as podsb
// prints them, one "podsb: " line each.
func run(args []string, stdout, stderr io.Writer) int {
	err := runCmd(context.Background(), args, stdout, stderr)
	if err == nil {
		return 0
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(stderr, "podsb: %s\n", line)
	}
	return exitFailure
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "pull" && args[0] != "import" {
		return errors.New("podsb-image: want pull or import (podsb image pull and podsb image import run it)")
	}
	fs := flag.NewFlagSet("podsb-image "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	imageRoot := fs.String("image-root", "", "image store `DIR`")
	conf := fs.String("registries-conf", "", "registries config `FILE`")
	platform := fs.String("platform", "", "pull for `OS/ARCH[/VARIANT]`")
	quiet := fs.Bool("q", false, "no progress bar")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("podsb-image %s: %w", args[0], err)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("podsb-image %s: want one argument, got %d", args[0], fs.NArg())
	}
	s, err := image.Open(*imageRoot)
	if err != nil {
		return err
	}
	s.HolderAlive = image.PodHolderAlive
	ref := fs.Arg(0)
	if args[0] == "import" {
		ims, err := fetch.Import(ctx, s, ref)
		for _, im := range ims {
			fmt.Fprintln(stdout, im.ID)
		}
		return err
	}
	opts := fetch.PullOptions{Platform: *platform}
	if *conf == "" {
		if _, err := os.Stat(fetch.DefaultRegistriesConf); err == nil {
			*conf = fetch.DefaultRegistriesConf
		}
	}
	if *conf != "" {
		if opts.Registries, err = fetch.LoadRegistries(*conf); err != nil {
			return err
		}
	}
	var bar *progressBar
	if f, ok := stderr.(*os.File); ok && !*quiet && term.IsTerminal(int(f.Fd())) {
		bar = &progressBar{w: stderr, label: ref}
		opts.Progress = bar.update
	}
	im, err := fetch.Pull(ctx, s, ref, opts)
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, im.ID)
	return nil
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

// size is podsb's way of printing a size (cmd/podsb has the same).
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
