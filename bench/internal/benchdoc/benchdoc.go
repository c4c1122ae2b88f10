// Package benchdoc writes benchmark results into docs/benchmarks.md: each
// benchmark owns one "## " section and rewrites only that one.
package benchdoc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// docPreamble starts a benchmarks file that does not exist yet.
const docPreamble = "# Benchmarks\n\nResults of modelgate's benchmarks, each section with the command that regenerates it and the machine it ran on.\n\n"

// WriteSection writes section into the markdown file at path in place of the
// section that starts with the line heading and runs to the next "## "
// heading, or appends it if there is none; the rest of the file is kept. The
// file is replaced atomically.
func WriteSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write section: %w", err)
	}
	doc := string(old)
	if doc == "" {
		doc = docPreamble
	}
	if err := writeAtomic(path, replaceSection(doc, heading, section)); err != nil {
		return fmt.Errorf("write section: %w", err)
	}
	return nil
}

// replaceSection returns doc with the section under heading replaced by
// section (which includes the heading), or with section appended.
func replaceSection(doc, heading, section string) string {
	section = strings.TrimRight(section, "\n") + "\n"
	lines := strings.SplitAfter(doc, "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimRight(l, "\n") == heading {
			start = i
			break
		}
	}
	if start < 0 {
		return strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "## ") {
			end = i
			break
		}
	}
	rest := strings.Join(lines[end:], "")
	if rest != "" {
		section += "\n"
	}
	return strings.Join(lines[:start], "") + section + rest
}

// writeAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func writeAtomic(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
