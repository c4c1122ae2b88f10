package unpack

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRootAssumptions pins the os.Root behaviour Extract relies on (and works
// around), so that a change in the standard library shows here first.
func TestRootAssumptions(t *testing.T) {
	s := newSandbox(t)
	root, err := os.OpenRoot(s.dst)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(s.sentinel, filepath.Join(s.dst, "out")))
	must(os.Symlink(".", filepath.Join(s.dst, "in")))
	must(root.WriteFile("t", []byte("target"), 0o644))
	must(root.Symlink("t", "l"))

	// Confinement: no operation goes through a link out of the root.
	if f, err := root.OpenFile("out/f", os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		f.Close()
		t.Error("OpenFile through a link out of the root succeeded")
	}
	if err := root.Mkdir("out/d", 0o755); err == nil {
		t.Error("Mkdir through a link out of the root succeeded")
	}
	// But links inside the root are followed: hence the component walk
	// that refuses any symbolic link as a parent.
	if _, err := root.Lstat("in/t"); err != nil {
		t.Errorf("Lstat through an inside link: %v (expected it to be followed)", err)
	}
	// Symlink does not check its target: hence symlinkTarget.
	if err := root.Symlink("/etc", "abs"); err != nil {
		t.Errorf("Symlink to an absolute target: %v (expected it to be allowed)", err)
	}
	// Rename over a link replaces the link, not its target: hence
	// temporary file and rename for every file written.
	must(root.WriteFile("tmp", []byte("new"), 0o644))
	must(root.Rename("tmp", "l"))
	if got := readFile(t, filepath.Join(s.dst, "t")); got != "target" {
		t.Errorf("target written through the link: %q", got)
	}
	if fi, err := root.Lstat("l"); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("l after rename: %v, %v", fi, err)
	}
	// RemoveAll of a link removes the link only.
	must(root.RemoveAll("out"))
	if _, err := os.Stat(s.sentinel); err != nil {
		t.Errorf("sentinel after RemoveAll of a link to it: %v", err)
	}
}
