package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"text/tabwriter"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/modelgate/modelgate/config"
	"github.com/modelgate/modelgate/fetcher"
)

// Caps on what inspect reads: it never reads a layer blob.
const (
	inspectMaxManifestBytes = 4 << 20 // as fetcher.Options.MaxManifestBytes
	inspectMaxConfigBytes   = 1 << 20
)

const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// inspectReport is what inspect prints; --json prints it as is.
type inspectReport struct {
	Reference    string            `json:"reference"`
	Digest       string            `json:"digest"`
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Index        *inspectIndex     `json:"index,omitempty"`
	Config       inspectBlob       `json:"config"`
	Format       string            `json:"format"`
	MainFile     string            `json:"mainFile"`
	Entries      []inspectEntry    `json:"entries"`
	Skipped      []string          `json:"skipped,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type inspectIndex struct {
	Digest    string            `json:"digest"`
	MediaType string            `json:"mediaType"`
	Platforms []inspectPlatform `json:"platforms"`
	Selected  string            `json:"selected"`
}

type inspectPlatform struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

type inspectBlob struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Read      bool   `json:"read"` // whether inspect fetched it
}

type inspectEntry struct {
	Path      string `json:"path"`
	Kind      string `json:"kind"`
	Size      int64  `json:"size"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Subdir    string `json:"subdir,omitempty"`
}

// inspectCommand prints what pulling REF would lay out, reading only the
// manifest (and the config blob when the format needs it and it is at
// most 1 MiB): no layer blob is downloaded.
func inspectCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: modelgate inspect [flags] REGISTRY/REPOSITORY[:TAG|@DIGEST]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	plainHTTP := fs.Bool("plain-http", false, "speak plain HTTP to the registry of REF")
	cfgPath := fs.String("config", "", "optional modelgate.yaml whose registries' plain_http settings apply")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	platformFlag := fs.String("platform", "linux/amd64", "platform picked from an image index, os/arch[/variant]")
	imageDir := fs.String("image-model-dir", fetcher.DefaultImageModelDir, "directory of an OCI/Docker image that holds the model")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want one argument: REF")
	}
	ref := fs.Arg(0)
	platform, err := fetcher.ParsePlatform(*platformFlag)
	if err != nil {
		return fmt.Errorf("--platform: %w", err)
	}
	parsed, err := registry.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("parse reference %q: %w", ref, err)
	}
	var cfg *config.Config
	if *cfgPath != "" {
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	var plainHosts []string
	if *plainHTTP {
		plainHosts = append(plainHosts, parsed.Registry)
	}
	client := newOCIClient(cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), plainHosts...)
	repo, parsed, err := client.Repository(ref)
	if err != nil {
		return err
	}
	if parsed.Reference == "" {
		return fmt.Errorf("reference %q: want a tag or digest", ref)
	}
	rep, err := inspect(ctx, repo, parsed.Reference, platform, *imageDir)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", ref, err)
	}
	rep.Reference = ref
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(stdout, rep)
	return nil
}

// inspect resolves reference in repo and classifies its manifest.
func inspect(ctx context.Context, repo *remote.Repository, reference string, platform ocispec.Platform, imageDir string) (*inspectReport, error) {
	desc, data, err := fetchManifest(ctx, repo, reference)
	if err != nil {
		return nil, err
	}
	rep := &inspectReport{}
	if desc.MediaType == ocispec.MediaTypeImageIndex || desc.MediaType == mediaTypeDockerManifestList {
		var index ocispec.Index
		if err := json.Unmarshal(data, &index); err != nil {
			return nil, fmt.Errorf("decode index %s: %w", desc.Digest, err)
		}
		ix := &inspectIndex{Digest: desc.Digest.String(), MediaType: desc.MediaType}
		for _, d := range index.Manifests {
			p := "unknown"
			if d.Platform != nil {
				p = fetcher.PlatformString(*d.Platform)
			}
			ix.Platforms = append(ix.Platforms, inspectPlatform{Platform: p, Digest: d.Digest.String()})
		}
		rep.Index = ix
		child, err := fetcher.SelectManifest(&index, platform)
		if err != nil {
			return nil, err
		}
		ix.Selected = child.Digest.String()
		if desc, data, err = fetchManifest(ctx, repo, child.Digest.String()); err != nil {
			return nil, err
		}
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest && desc.MediaType != mediaTypeDockerManifest {
		return nil, fmt.Errorf("manifest %s: media type %q: %w", desc.Digest, desc.MediaType, fetcher.ErrUnsupported)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", desc.Digest, err)
	}
	rep.Digest, rep.MediaType, rep.ArtifactType, rep.Annotations = desc.Digest.String(), desc.MediaType, m.ArtifactType, m.Annotations
	rep.Config = inspectBlob{MediaType: m.Config.MediaType, Digest: m.Config.Digest.String(), Size: m.Config.Size}
	var cfg []byte
	if fetcher.NeedsConfig(&m) && m.Config.Size <= inspectMaxConfigBytes {
		rc, err := repo.Blobs().Fetch(ctx, m.Config)
		if err != nil {
			return nil, fmt.Errorf("fetch config %s: %w", m.Config.Digest, err)
		}
		cfg, err = content.ReadAll(rc, m.Config) // checks size and digest
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", m.Config.Digest, err)
		}
		rep.Config.Read = true
	}
	plan, err := fetcher.Classify(&m, cfg, fetcher.ClassifyOptions{ImageModelDir: imageDir})
	if err != nil {
		return nil, err
	}
	rep.Format, rep.MainFile, rep.Skipped = plan.Format, plan.MainFile, plan.Skipped
	rep.Entries = []inspectEntry{}
	for _, e := range plan.Entries {
		ie := inspectEntry{Path: e.Path, Kind: e.Kind(), Size: e.Layer.Size, Digest: e.Layer.Digest.String(), MediaType: e.Layer.MediaType}
		if e.Archive != nil {
			ie.Subdir = e.Archive.Subdir
		}
		rep.Entries = append(rep.Entries, ie)
	}
	return rep, nil
}

// fetchManifest GETs the manifest reference points to (one request), with
// a hard size cap; content.ReadAll checks the size and digest.
func fetchManifest(ctx context.Context, repo *remote.Repository, reference string) (ocispec.Descriptor, []byte, error) {
	desc, rc, err := repo.FetchReference(ctx, reference)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch manifest %s: %w", reference, err)
	}
	defer rc.Close()
	if desc.Size > inspectMaxManifestBytes {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch manifest %s: %d bytes exceeds the %d-byte cap: %w", reference, desc.Size, inspectMaxManifestBytes, fetcher.ErrManifestTooLarge)
	}
	data, err := content.ReadAll(rc, desc)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("read manifest %s: %w", reference, err)
	}
	return desc, data, nil
}

func printReport(w io.Writer, rep *inspectReport) {
	fmt.Fprintf(w, "reference:     %s\n", rep.Reference)
	if rep.Index != nil {
		fmt.Fprintf(w, "index:         %s (%s)\n", rep.Index.Digest, rep.Index.MediaType)
		for _, p := range rep.Index.Platforms {
			mark := ""
			if p.Digest == rep.Index.Selected {
				mark = "  (selected)"
			}
			fmt.Fprintf(w, "  %-20s %s%s\n", p.Platform, p.Digest, mark)
		}
	}
	fmt.Fprintf(w, "digest:        %s\n", rep.Digest)
	fmt.Fprintf(w, "media type:    %s\n", rep.MediaType)
	fmt.Fprintf(w, "artifact type: %s\n", orNone(rep.ArtifactType))
	fmt.Fprintf(w, "config:        %s (%s)\n", rep.Config.MediaType, humanBytes(rep.Config.Size))
	fmt.Fprintf(w, "format:        %s\n", rep.Format)
	fmt.Fprintf(w, "main file:     %s\n", orNone(rep.MainFile))
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tKIND\tSIZE\tBYTES\tDIGEST")
	for _, e := range rep.Entries {
		p := e.Path
		if p == "" {
			p = "."
		}
		if e.Subdir != "" {
			p += " (from " + e.Subdir + "/)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", p, e.Kind, humanBytes(e.Size), e.Size, e.Digest)
	}
	tw.Flush()
	if len(rep.Skipped) > 0 {
		fmt.Fprintln(w, "\nskipped:")
		for _, s := range rep.Skipped {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// humanBytes renders n in binary units with one decimal: "512 B", "1.5 GiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, i := float64(n), -1
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[i])
}
