package benchdoc

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReplaceSection(t *testing.T) {
	const h = "## B"
	tests := []struct {
		name, doc, want string
	}{
		{"append", "# T\n\n## A\n\na\n", "# T\n\n## A\n\na\n\n## B\n\nnew\n"},
		{"replace last", "# T\n\n## B\n\nold\n", "# T\n\n## B\n\nnew\n"},
		{"replace middle", "# T\n\n## B\n\nold\n\n## C\n\nc\n", "# T\n\n## B\n\nnew\n\n## C\n\nc\n"},
		{"heading inside code is a prefix only", "## Bx\n\nx\n", "## Bx\n\nx\n\n## B\n\nnew\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replaceSection(tt.doc, h, "## B\n\nnew\n"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteSectionCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.md")
	if err := WriteSection(path, "## B", "## B\n\nnew\n"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := docPreamble + "## B\n\nnew\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
