package progress

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestBarAggregatesAndKeepsLinesClear: one bar for every transfer, first
// drawn barRefresh after the first byte, whose total shrinks when a
// transfer proves unnecessary; caller lines print on lines of their own,
// the bar cleared before and redrawn after.
func TestBarAggregatesAndKeepsLinesClear(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	tk, err := newTracker(&out, 30, Options{Mode: Bar, Verbs: Upload}, c.read)
	if err != nil {
		t.Fatal(err)
	}
	tk.Logf("uploading  a.bin (10B)")
	a := tk.Reader("a.bin", strings.NewReader("0123456789"), 10)
	readExactly(t, a, 4)
	tk.Logf("uploading  b.bin (20B)")
	if out.String() != "uploading  a.bin (10B)\nuploading  b.bin (20B)\n" {
		t.Fatalf("before the bar is first drawn, lines print as they are; got %q", out.String())
	}
	c.advance(barRefresh)
	readExactly(t, a, 1)
	if got := out.String(); !strings.Contains(got, "\ra.bin ") || !strings.Contains(got, "5/30 B") {
		t.Fatalf("no bar for 5 of 30 bytes of a.bin: %q", got)
	}
	tk.Logf("exists     b.bin (20B, already in the registry)")
	if !strings.Contains(out.String(), "\rexists     b.bin (20B, already in the registry)\n") {
		t.Errorf("line not written on a cleared line: %q", out.String())
	}
	tk.AddTotal(-20)
	if _, err := io.Copy(io.Discard, a); err != nil {
		t.Fatal(err)
	}
	tk.Done()
	got := out.String()
	if !strings.Contains(got, "100%") || !strings.Contains(got, "10/10 B") || !strings.HasSuffix(got, "\n") {
		t.Errorf("bar does not end at 100%% of 10 bytes on a line of its own: %q", got)
	}
	if n := strings.Count(got, "\n"); n != 4 {
		t.Errorf("%d lines, want the three lines and the bar's: %q", n, got)
	}
	out.Reset()
	tk.Logf("pushed")
	if out.String() != "pushed\n" {
		t.Errorf("after Done, lines print as they are; got %q", out.String())
	}
}

func TestBarDescription(t *testing.T) {
	d := &barDisplay{verbs: Upload, descWidth: 16}
	if got := d.description(); got != "uploading       " {
		t.Errorf("no transfer: %q", got)
	}
	d.active = []*transfer{{name: "model-00001-of-00002.safetensors"}}
	if got := d.description(); got != "…02.safetensors " {
		t.Errorf("one long name: %q", got)
	}
	d.active = append(d.active, &transfer{name: "config.json"}, &transfer{name: "README.md"})
	if got := d.description(); got != "README.md +2    " {
		t.Errorf("three transfers: %q", got)
	}
}
