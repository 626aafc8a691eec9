package reaper_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/reaper"
)

// TestImageIsStaticELF checks the shape build.sh promises: a static,
// non-PIE amd64 executable whose only mapping is one read-only, executable
// page, and nothing else in the file.
func TestImageIsStaticELF(t *testing.T) {
	f, err := elf.NewFile(bytes.NewReader(reaper.Image()))
	if err != nil {
		t.Fatalf("Image() is not an ELF file: %v", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("Image() is %v %v %v, want ELFCLASS64 EM_X86_64 ET_EXEC", f.Class, f.Machine, f.Type)
	}
	var loads int
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			loads++
			// Nothing but the loaded bytes: the memfd each pod's pause
			// runs from holds the whole image, a page of memory per
			// 4 KiB of it.
			if p.Off != 0 || p.Filesz != uint64(len(reaper.Image())) {
				t.Errorf("PT_LOAD holds bytes %d to %d of a %d-byte image, want all of it", p.Off, p.Off+p.Filesz, len(reaper.Image()))
			}
			// Two pages: pause's loop, and the set-up, exec, spawn and
			// run modes, which a running pause no longer touches.
			if p.Flags&elf.PF_W != 0 || p.Memsz > 2*4096 {
				t.Errorf("PT_LOAD is %v and %d bytes, want read-only and at most two pages", p.Flags, p.Memsz)
			}
		case elf.PT_INTERP, elf.PT_DYNAMIC, elf.PT_TLS:
			t.Errorf("Image() has a %v segment; want a static program without TLS", p.Type)
		}
	}
	if loads != 1 {
		t.Errorf("Image() has %d PT_LOAD segments, want 1", loads)
	}
	if len(f.Sections) > 0 {
		t.Errorf("Image() has %d section headers, want none", len(f.Sections))
	}
	if syms, _ := f.Symbols(); len(syms) > 0 {
		t.Errorf("Image() has %d symbols, want it stripped", len(syms))
	}
}

func TestMemfd(t *testing.T) {
	f, err := reaper.Memfd()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())

	got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, reaper.Image()) {
		t.Errorf("memfd holds %d bytes that differ from Image() (%d bytes)", len(got), len(reaper.Image()))
	}

	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if seals&want != want {
		t.Errorf("seals = %#x, want %#x set", seals, want)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("memfd is not close-on-exec")
	}

	tests := []struct {
		name string
		op   func() error
	}{
		{"pwrite", func() error { _, err := unix.Pwrite(fd, []byte("x"), 0); return err }},
		{"append", func() error { _, err := unix.Pwrite(fd, []byte("x"), int64(len(got))); return err }},
		{"shrink", func() error { return unix.Ftruncate(fd, 1) }},
		{"grow", func() error { return unix.Ftruncate(fd, 1<<20) }},
		{"add seal", func() error {
			_, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_FUTURE_WRITE)
			return err
		}},
		{"writable mmap", func() error {
			b, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err == nil {
				unix.Munmap(b)
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, unix.EPERM) {
				t.Errorf("got %v, want EPERM", err)
			}
		})
	}
}
