// Package push publishes a model directory to an OCI registry as one OCI 1.1
// artifact (an image manifest with artifactType) that other tools read:
// a CNCF ModelPack artifact by default, or a Docker model artifact.
//
// Every regular file of the directory becomes one raw layer whose blob is the
// file's bytes, streamed from disk, annotated with its slash-separated path
// relative to the directory under both org.opencontainers.image.title (so
// `oras pull` and modelgate's fetcher recreate the tree) and
// org.cncf.model.filepath (ModelPack and Docker readers). Blobs the registry
// already holds are not uploaded again, and an unchanged directory pushed
// twice gives the same manifest digest: the creation time recorded in the
// config and the manifest is the newest file modification time, not the
// time of the push.
package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/modelgate/modelgate/oci"
	"github.com/modelgate/modelgate/progress"
)

// DefaultConcurrency is how many files are hashed, and how many layers
// uploaded, at once when Options.Concurrency is 0: the fetcher's default
// for downloads, and oras-go's and go-containerregistry's.
const DefaultConcurrency = 4

// Options configure a push. Zero values take the documented defaults.
type Options struct {
	// Format is FormatModelPack (default) or FormatDocker.
	Format string
	// Concurrency is how many files are hashed and uploaded at once
	// (default DefaultConcurrency).
	Concurrency int
	// Progress receives one line per file (skipped, uploading, or already in
	// the registry, with its size) and a summary line. Lines are written
	// whole, one at a time, from the uploading goroutines. Nil discards them.
	// While blobs upload it also shows their byte progress, as
	// ProgressOptions say.
	Progress io.Writer
	// ProgressOptions choose how byte progress is shown on Progress
	// (default: a bar for the whole push when Progress is a terminal, else
	// a line per file at most every progress.DefaultInterval; Verbs are
	// progress.Upload). The bar's total is the bytes of the blobs the
	// registry lacks: those it holds are taken out as they are found.
	ProgressOptions progress.Options
}

// Result describes a completed push.
type Result struct {
	// Manifest is the pushed manifest; the reference's tag points to it.
	Manifest ocispec.Descriptor
	// Ref is the reference with the manifest digest: registry/repo:tag@sha256:....
	Ref string
	// Files is the number of files (layers) pushed, Bytes their total size.
	Files int
	Bytes int64
	// Uploaded and UploadedBytes count the layer blobs sent to the registry;
	// Existing counts those it already held (the config blob is not counted).
	Uploaded      int
	UploadedBytes int64
	Existing      int
	// Duration is the time spent hashing, uploading and tagging.
	Duration time.Duration
}

// Directory pushes the files under dir to ref (registry/repository:tag) as
// one artifact, and tags it. ref must carry a tag. Everything that can be
// checked locally (the format, the tag, the directory's files and their
// readability) is checked before the first request to the registry; each
// error names the file or reference concerned and wraps one of the errors of
// errors.go or the underlying cause.
//
// What is pushed: every regular file, and every symbolic link that resolves
// to a regular file inside dir (under the link's path). Hidden files and
// directories (names starting with ".", such as .git/) are skipped and
// reported on Options.Progress. Empty directories are not recorded.
func Directory(ctx context.Context, client *oci.Client, dir, ref string, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Format == "" {
		opts.Format = FormatModelPack
	}
	format, ok := formats[opts.Format]
	if !ok {
		return nil, fmt.Errorf("push %s: format %q (want %s or %s): %w", ref, opts.Format, FormatModelPack, FormatDocker, ErrUnknownFormat)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.ProgressOptions.Verbs == (progress.Verbs{}) {
		opts.ProgressOptions.Verbs = progress.Upload
	}
	prog, err := progress.New(opts.Progress, 0, opts.ProgressOptions)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	repo, parsed, err := client.Repository(ref)
	if err != nil {
		return nil, err
	}
	if err := checkTag(parsed); err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	files, skipped, err := scan(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		prog.Logf("skipped    %s (hidden)", s)
	}
	if err := hashFiles(ctx, files, opts.Concurrency); err != nil {
		return nil, err
	}

	meta := configMeta{name: path.Base(parsed.Repository), version: parsed.Reference}
	layers, diffIDs := describe(format, files, &meta)
	res := &Result{Files: len(files)}
	for _, l := range layers {
		res.Bytes += l.Size
	}
	if format.needsWeights && meta.weight == "" {
		return nil, fmt.Errorf("push %s as %s: %w", dir, format.name, ErrNoWeights)
	}
	configData, err := marshalConfig(format, diffIDs, meta)
	if err != nil {
		return nil, err
	}
	configDesc := content.NewDescriptorFromBytes(format.configMediaType, configData)

	err = uploadLayers(ctx, repo, files, layers, opts.Concurrency, prog, res)
	prog.Done() // ends the bar's line before the summary or the error
	if err != nil {
		return nil, err
	}
	if err := uploadBytes(ctx, repo, configDesc, configData); err != nil {
		return nil, fmt.Errorf("upload config of %s: %w", ref, err)
	}
	manifest, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, format.artifactType, oras.PackManifestOptions{
		Layers:           layers,
		ConfigDescriptor: &configDesc,
		// A fixed creation time keeps the manifest digest of an unchanged
		// directory stable; PackManifest would stamp the current time.
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: meta.created.Format(time.RFC3339)},
	})
	if err != nil {
		return nil, fmt.Errorf("push manifest %s: %w", ref, err)
	}
	if err := repo.Tag(ctx, manifest, parsed.Reference); err != nil {
		return nil, fmt.Errorf("tag %s: %w", ref, err)
	}
	res.Manifest = manifest
	res.Ref = parsed.String() + "@" + manifest.Digest.String()
	res.Duration = time.Since(start)
	prog.Logf("pushed %d files (%s): uploaded %d blobs (%s), %d already in the registry, in %.2fs",
		res.Files, humanSize(res.Bytes), res.Uploaded, humanSize(res.UploadedBytes), res.Existing, res.Duration.Seconds())
	return res, nil
}

// describe returns the layer of each file, in order, and their DiffIDs, and
// fills meta with the creation time and the weight format the files imply.
func describe(format *artifactFormat, files []file, meta *configMeta) ([]ocispec.Descriptor, []digest.Digest) {
	layers := make([]ocispec.Descriptor, len(files))
	diffIDs := make([]digest.Digest, len(files))
	for i, f := range files {
		mediaType, weight := format.classify(f.rel)
		layers[i] = ocispec.Descriptor{
			MediaType: mediaType,
			Digest:    f.digest,
			Size:      f.size,
			Annotations: map[string]string{
				ocispec.AnnotationTitle: f.rel,
				AnnotationFilepath:      f.rel,
			},
		}
		// For a raw layer, the digest of the uncompressed content is the
		// layer digest.
		diffIDs[i] = f.digest
		if weight != "" && meta.weight == "" {
			meta.weight = weight
		}
		if weight != "" && weight == meta.weight {
			meta.weightBytes += f.size
		}
		if f.modTime.After(meta.created) {
			meta.created = f.modTime
		}
	}
	meta.created = meta.created.UTC().Truncate(time.Second)
	return layers, diffIDs
}

// checkTag refuses a reference without a tag: a bare repository, or a
// digest (which names a manifest push cannot know before writing it).
func checkTag(ref registry.Reference) error {
	if _, err := ref.Digest(); err == nil {
		return fmt.Errorf("%w: a digest reference cannot be pushed to; use registry/repository:TAG", ErrNoTag)
	}
	if ref.Reference == "" {
		return fmt.Errorf("%w: use registry/repository:TAG", ErrNoTag)
	}
	if err := ref.ValidateReferenceAsTag(); err != nil {
		return fmt.Errorf("%w: %w", ErrNoTag, err)
	}
	return nil
}

// uploadLayers uploads the blob of every layer the registry lacks, at most
// limit at once, each once however many files share its content. It prints
// one line per file, shows the byte progress of the uploads on prog (whose
// total it sets to the bytes of the distinct blobs, less those the registry
// holds), and counts into res.
func uploadLayers(ctx context.Context, repo *remote.Repository, files []file, layers []ocispec.Descriptor, limit int, prog *progress.Tracker, res *Result) error {
	var uploaded, existing atomic.Int64
	var uploadedBytes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	// The whole total first: the loop below blocks once limit uploads run.
	var total int64
	distinct := map[digest.Digest]bool{}
	for _, l := range layers {
		if !distinct[l.Digest] {
			distinct[l.Digest] = true
			total += l.Size
		}
	}
	prog.AddTotal(total)
	first := map[digest.Digest]string{} // digest → first file with that content
	for i, f := range files {
		desc := layers[i]
		if other, dup := first[desc.Digest]; dup {
			prog.Logf("same       %s (%s, same content as %s)", f.rel, humanSize(f.size), other)
			continue
		}
		first[desc.Digest] = f.rel
		g.Go(func() error {
			ok, err := repo.Blobs().Exists(gctx, desc)
			if err != nil {
				return fmt.Errorf("check blob of %s (%s): %w", f.path, desc.Digest, err)
			}
			if ok {
				existing.Add(1)
				prog.AddTotal(-f.size)
				prog.Logf("exists     %s (%s, already in the registry)", f.rel, humanSize(f.size))
				return nil
			}
			prog.Logf("uploading  %s (%s)", f.rel, humanSize(f.size))
			if err := uploadFile(gctx, repo, f, desc, prog); err != nil {
				return err
			}
			uploaded.Add(1)
			uploadedBytes.Add(f.size)
			return nil
		})
	}
	err := g.Wait()
	res.Uploaded, res.Existing, res.UploadedBytes = int(uploaded.Load()), int(existing.Load()), uploadedBytes.Load()
	return err
}

// uploadFile streams the file's bytes as the blob desc, counted on prog as
// they are sent. The registry checks the digest, so a file changed since it
// was hashed is refused, not stored.
func uploadFile(ctx context.Context, repo *remote.Repository, f file, desc ocispec.Descriptor, prog *progress.Tracker) error {
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("upload %s: %w", f.path, err)
	}
	defer fh.Close()
	if err := repo.Blobs().Push(ctx, desc, prog.Reader(f.rel, fh, desc.Size)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return fmt.Errorf("upload %s (%s): %w", f.path, desc.Digest, err)
	}
	return nil
}

// uploadBytes pushes a small blob held in memory unless the registry has it.
func uploadBytes(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, data []byte) error {
	ok, err := repo.Blobs().Exists(ctx, desc)
	if err != nil || ok {
		return err
	}
	if err := repo.Blobs().Push(ctx, desc, bytes.NewReader(data)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return err
	}
	return nil
}
