package oci

import (
	"io"
	"log/slog"
	"testing"
)

func TestRepositoriesTriesMirrorsThenUpstream(t *testing.T) {
	c := NewClient(ClientOptions{
		PlainHTTP: map[string]bool{"127.0.0.1:5001": true},
		Mirrors:   map[string][]string{"registry.example.com": {"127.0.0.1:5001", "mirror.example.com"}},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	repos, ref, err := c.Repositories("registry.example.com/models/tiny:v1")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Registry != "registry.example.com" || ref.Reference != "v1" {
		t.Errorf("reference = %+v, want the upstream one", ref)
	}
	want := []struct {
		host  string
		plain bool
	}{{"127.0.0.1:5001", true}, {"mirror.example.com", false}, {"registry.example.com", false}}
	if len(repos) != len(want) {
		t.Fatalf("%d repositories, want %d", len(repos), len(want))
	}
	for i, w := range want {
		r := repos[i].Reference
		if r.Registry != w.host || r.Repository != "models/tiny" || repos[i].PlainHTTP != w.plain {
			t.Errorf("repositories[%d] = %s/%s plain_http %v, want %s/models/tiny plain_http %v", i, r.Registry, r.Repository, repos[i].PlainHTTP, w.host, w.plain)
		}
	}

	repos, _, err = c.Repositories("other.example.com/models/tiny:v1")
	if err != nil || len(repos) != 1 || repos[0].Reference.Registry != "other.example.com" {
		t.Errorf("registry without mirrors: %v, %v", repos, err)
	}
}
