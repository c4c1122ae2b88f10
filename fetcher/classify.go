package fetcher

import (
	"cmp"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/unpack"
)

// Errors of Classify and SelectManifest; each wraps ErrUnsupported.
var (
	// ErrConflictingFormat means the manifest's artifactType, config media
	// type or layer media types name two different formats.
	ErrConflictingFormat = fmt.Errorf("conflicting artifact formats: %w", ErrUnsupported)
	// ErrDuplicatePath means two layers would write the same path, or one
	// layer's file is another's directory.
	ErrDuplicatePath = fmt.Errorf("two layers for one path: %w", ErrUnsupported)
	// ErrNoPlatform means an image index has no manifest for the platform.
	ErrNoPlatform = fmt.Errorf("no manifest for the platform: %w", ErrUnsupported)
)

// Plan says how a manifest becomes a model directory.
type Plan struct {
	Format   string      // "oras", "modelpack", "kitops", "docker-model", "ollama", "image"
	Entries  []PlanEntry // in the order they must be applied
	MainFile string      // slash path of the main weights file relative to the model dir ("" if none can be known without unpacking)
	// Skipped says, one line per layer, which layers are not part of the
	// model directory and why (unknown media type, no name, ...).
	Skipped []string
}

// PlanEntry is one layer's part of the model directory.
type PlanEntry struct {
	Layer   ocispec.Descriptor
	Path    string          // raw: the file's slash path; archive: the directory it is unpacked into ("" = root)
	Archive *unpack.Options // nil: the blob is the file itself (raw)
}

// Kind names how the entry's blob is applied: "raw", "tar", "tar+gzip" or
// "tar+zstd".
func (e PlanEntry) Kind() string {
	if e.Archive == nil {
		return "raw"
	}
	if e.Archive.Compression == unpack.None {
		return "tar"
	}
	return "tar+" + string(e.Archive.Compression)
}

// ClassifyOptions configure Classify.
type ClassifyOptions struct {
	// ImageModelDir is the directory of an OCI or Docker image whose files
	// become the model directory (default "models", as KServe modelcars
	// keep them under /models). Leading and trailing slashes are ignored.
	ImageModelDir string
}

// DefaultImageModelDir is ClassifyOptions.ImageModelDir's default.
const DefaultImageModelDir = "models"

// NeedsConfig reports whether Classify reads the config blob of m: only
// KitOps ModelKits (whose config is the Kitfile) need it. Callers fetch it
// with a size cap and may pass nil otherwise.
func NeedsConfig(m *ocispec.Manifest) bool {
	return m.Config.MediaType == mediaTypeKitOpsConfig
}

// Classify turns a manifest (and its config blob bytes, which the caller
// fetched with a size cap; may be nil if the format doesn't need it) into a
// Plan. Detection order and the rules for ambiguous manifests are in
// docs/formats.md. Every path of the plan passes cache.CheckPath. Errors
// wrap ErrUnsupported (a manifest with nothing usable, conflicting format
// signals, two layers for one path) or cache.ErrUnsafePath.
func Classify(manifest *ocispec.Manifest, config []byte, opts ClassifyOptions) (*Plan, error) {
	if manifest == nil {
		return nil, fmt.Errorf("classify: no manifest: %w", ErrUnsupported)
	}
	format, err := detectFormat(manifest)
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	p := &planner{plan: &Plan{Format: format}, raw: map[string]bool{}, dirs: map[string]bool{}}
	switch format {
	case FormatModelPack:
		err = p.modelPack(manifest)
	case FormatKitOps:
		err = p.kitOps(manifest, config)
	case FormatDockerModel:
		err = p.dockerModel(manifest)
	case FormatOllama:
		err = p.ollama(manifest)
	case FormatORAS:
		err = p.oras(manifest)
	case FormatImage:
		err = p.image(manifest, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("classify %s artifact: %w", format, err)
	}
	if len(p.plan.Entries) == 0 {
		why := ""
		if len(p.plan.Skipped) > 0 {
			why = " (" + strings.Join(p.plan.Skipped, "; ") + ")"
		}
		return nil, fmt.Errorf("classify %s artifact: no layer is part of a model directory%s: %w", format, why, ErrUnsupported)
	}
	return p.plan, nil
}

// detectFormat names the format of m, in the order docs/formats.md gives:
// artifactType and config media type, then the layers' media types, then
// ORAS title annotations, then an image config or image layers.
func detectFormat(m *ocispec.Manifest) (string, error) {
	byArtifact := artifactTypes[m.ArtifactType]
	byConfig := configTypes[m.Config.MediaType]
	if byConfig == FormatImage {
		byConfig = "" // weak: decided below
	}
	if byArtifact != "" && byConfig != "" && byArtifact != byConfig {
		return "", fmt.Errorf("artifactType %q says %s but config %q says %s: %w",
			m.ArtifactType, byArtifact, m.Config.MediaType, byConfig, ErrConflictingFormat)
	}
	if f := cmp.Or(byArtifact, byConfig); f != "" {
		return f, nil
	}
	// No manifest-level signal: the model formats' layer media types.
	var byLayers []string
	titled := false
	for _, l := range m.Layers {
		if t, ok := layerTypes[l.MediaType]; ok && t.format != FormatImage && !slices.Contains(byLayers, t.format) {
			byLayers = append(byLayers, t.format)
		}
		if strings.HasPrefix(l.MediaType, "application/vnd.ollama.image.") && !slices.Contains(byLayers, FormatOllama) {
			byLayers = append(byLayers, FormatOllama)
		}
		if l.Annotations[ocispec.AnnotationTitle] != "" {
			titled = true
		}
	}
	switch len(byLayers) {
	case 0:
	case 1:
		return byLayers[0], nil
	default:
		slices.Sort(byLayers)
		return "", fmt.Errorf("layers of formats %s: %w", strings.Join(byLayers, ", "), ErrConflictingFormat)
	}
	if titled {
		return FormatORAS, nil
	}
	if configTypes[m.Config.MediaType] == FormatImage {
		return FormatImage, nil
	}
	for _, l := range m.Layers {
		if t, ok := layerTypes[l.MediaType]; ok && t.format == FormatImage {
			return FormatImage, nil
		}
	}
	return "", fmt.Errorf("artifactType %q, config %q: no format of docs/formats.md: %w", m.ArtifactType, m.Config.MediaType, ErrUnsupported)
}

// planner accumulates a Plan and checks its paths as entries are added.
type planner struct {
	plan *Plan
	raw  map[string]bool // paths of raw files
	dirs map[string]bool // directories implied by raw files and archive roots
}

func (p *planner) skip(l ocispec.Descriptor, format string, args ...any) {
	p.plan.Skipped = append(p.plan.Skipped, fmt.Sprintf("layer %s (%s): ", shortDigest(l), l.MediaType)+fmt.Sprintf(format, args...))
}

// addRaw adds the file at name. It refuses unsafe paths and a path taken by
// another file, or that is another file's directory or the reverse.
func (p *planner) addRaw(l ocispec.Descriptor, name string) error {
	if err := cache.CheckPath(name); err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if p.raw[name] || p.dirs[name] {
		return fmt.Errorf("layer %s: %q: %w", l.Digest, name, ErrDuplicatePath)
	}
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if p.raw[d] {
			return fmt.Errorf("layer %s: %q is inside file %q: %w", l.Digest, name, d, ErrDuplicatePath)
		}
		p.dirs[d] = true
	}
	p.raw[name] = true
	p.plan.Entries = append(p.plan.Entries, PlanEntry{Layer: l, Path: name})
	return nil
}

// addArchive adds an archive unpacked into dir ("" = the model root).
func (p *planner) addArchive(l ocispec.Descriptor, dir string, opts unpack.Options) error {
	if dir != "" {
		if err := cache.CheckPath(dir); err != nil {
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		for d := dir; d != "."; d = path.Dir(d) {
			if p.raw[d] {
				return fmt.Errorf("layer %s: directory %q is file %q: %w", l.Digest, dir, d, ErrDuplicatePath)
			}
			p.dirs[d] = true
		}
	}
	if opts.Subdir != "" {
		if err := cache.CheckPath(opts.Subdir); err != nil {
			return fmt.Errorf("layer %s: subdirectory: %w", l.Digest, err)
		}
	}
	p.plan.Entries = append(p.plan.Entries, PlanEntry{Layer: l, Path: dir, Archive: &opts})
	return nil
}

// modelPack: raw layers are files at org.cncf.model.filepath (or the
// pre-v0.0.7 org.cnai.model.filepath, or the title); archives unpack at the
// root. The main file is the largest weight file whose path is known.
func (p *planner) modelPack(m *ocispec.Manifest) error {
	var main mainPicker
	for _, l := range m.Layers {
		t, ok := layerTypes[l.MediaType]
		if !ok || t.format != FormatModelPack {
			p.skip(l, "not a ModelPack layer media type")
			continue
		}
		name := cmp.Or(l.Annotations[annotationFilepath], l.Annotations[annotationLegacyFilepath], l.Annotations[ocispec.AnnotationTitle])
		if t.archive {
			if err := p.addArchive(l, "", unpack.Options{Compression: t.compression}); err != nil {
				return err
			}
			if t.role == RoleWeight && weightExtensions[path.Ext(name)] && cache.CheckPath(name) == nil {
				main.offer(name, l.Size)
			}
			continue
		}
		if name == "" {
			p.skip(l, "raw layer without %s", annotationFilepath)
			continue
		}
		if err := p.addRaw(l, name); err != nil {
			return err
		}
		if t.role == RoleWeight {
			main.offer(name, l.Size)
		}
	}
	p.plan.MainFile = main.name
	return nil
}

// kitfile is the part of a KitOps Kitfile (the ModelKit config, as JSON)
// the classifier reads: kitops pkg/artifact/kitfile.go.
type kitfile struct {
	Model *struct {
		kitEntry
		Parts []kitEntry `json:"parts"`
	} `json:"model"`
	Code     []kitEntry `json:"code"`
	DataSets []kitEntry `json:"datasets"`
	Docs     []kitEntry `json:"docs"`
	Prompts  []kitEntry `json:"prompts"`
}

type kitEntry struct {
	Path   string `json:"path"`
	Digest string `json:"digest"` // of the layer; absent in ModelKits before diffIDs
}

// kitOps lays out a ModelKit as `kit unpack` does
// (pkg/lib/filesystem/unpack/core.go): the n-th layer of a kind is the
// n-th Kitfile entry of that kind; tar layers unpack at the root (their
// entries carry the Kitfile paths), except in old ModelKits whose Kitfile
// entries have no digest, where they unpack into the entry path's
// directory. Raw layers are files at org.cncf.model.filepath (or the
// Kitfile path).
func (p *planner) kitOps(m *ocispec.Manifest, config []byte) error {
	var kf kitfile
	haveKitfile := len(config) > 0 && json.Unmarshal(config, &kf) == nil
	var parts, code, datasets, docs, prompts int
	entry := func(list []kitEntry, i *int) *kitEntry {
		defer func() { *i++ }()
		if *i < len(list) {
			return &list[*i]
		}
		return nil
	}
	mainFile := ""
	for _, l := range m.Layers {
		t, ok := layerTypes[l.MediaType]
		if !ok || t.format != FormatKitOps {
			p.skip(l, "not a KitOps layer media type")
			continue
		}
		var e *kitEntry
		if haveKitfile {
			switch t.role {
			case RoleWeight:
				if kf.Model != nil {
					e = &kf.Model.kitEntry
				}
			case RoleWeightPart:
				if kf.Model != nil {
					e = entry(kf.Model.Parts, &parts)
				}
			case RoleCode:
				if l.Annotations[annotationKitOpsSubtype] == "prompt" {
					e = entry(kf.Prompts, &prompts)
				} else {
					e = entry(kf.Code, &code)
				}
			case RoleDataset:
				e = entry(kf.DataSets, &datasets)
			case RoleDoc:
				e = entry(kf.Docs, &docs)
			}
		}
		if e != nil && e.Digest != "" && e.Digest != l.Digest.String() {
			return fmt.Errorf("layer %s: the Kitfile gives digest %s for %q: %w", l.Digest, e.Digest, e.Path, ErrUnsupported)
		}
		name := l.Annotations[annotationFilepath]
		if name == "" && e != nil {
			name = path.Clean(strings.TrimPrefix(e.Path, "./"))
		}
		switch {
		case t.compressedRaw:
			p.skip(l, "compressed raw layers are not supported")
			continue
		case t.archive:
			dir := ""
			if e != nil && e.Digest == "" && e.Path != "" {
				// An old ModelKit: entries are relative to the path's directory.
				if dir = path.Dir(path.Clean(strings.TrimPrefix(e.Path, "./"))); dir == "." {
					dir = ""
				}
			}
			if err := p.addArchive(l, dir, unpack.Options{Compression: t.compression}); err != nil {
				return err
			}
			if t.role == RoleWeight && weightExtensions[path.Ext(name)] && cache.CheckPath(name) == nil {
				mainFile = name
			}
		default:
			if name == "" || name == "." {
				p.skip(l, "raw layer without %s or a Kitfile path", annotationFilepath)
				continue
			}
			if err := p.addRaw(l, name); err != nil {
				return err
			}
			if t.role == RoleWeight {
				mainFile = name
			}
		}
	}
	if haveKitfile && kf.Model != nil && isModelKitReference(kf.Model.Path) {
		p.plan.Skipped = append(p.plan.Skipped, fmt.Sprintf("model %q is another ModelKit: not followed", kf.Model.Path))
	}
	p.plan.MainFile = mainFile
	return nil
}

// isModelKitReference reports whether a Kitfile model path names another
// ModelKit (registry/repo:tag) rather than a local path, as kitops'
// artifact.IsModelKitReference does in spirit: a path with a ":" or "@"
// after a host-like first component.
func isModelKitReference(p string) bool {
	first, _, found := strings.Cut(p, "/")
	return found && strings.ContainsAny(first, ".:") && strings.ContainsAny(p, ":@") && !strings.HasPrefix(p, ".")
}

// splitGGUF matches llama.cpp's split file names: NAME-00001-of-00003.gguf.
var splitGGUF = regexp.MustCompile(`-(\d{5})-of-(\d{5})\.gguf$`)

// dockerModel lays out a Docker model artifact. Config v0.2 names every
// file with org.cncf.model.filepath; v0.1 (and v0.2 layers without the
// annotation) get Docker Model Runner's fixed names. Tar layers unpack at
// the root. The main file is the first GGUF (the first shard of a split
// model), else the first safetensors file, else the DDUF file.
func (p *planner) dockerModel(m *ocispec.Manifest) error {
	v01 := m.Config.MediaType == mediaTypeDockerModelConfigV01
	counts := map[string]int{}
	for _, l := range m.Layers {
		counts[l.MediaType]++
	}
	seen := map[string]int{}
	var firstGGUF, firstShard, firstSafetensors, firstDDUF string
	for _, l := range m.Layers {
		t, ok := layerTypes[l.MediaType]
		if !ok || t.format != FormatDockerModel {
			p.skip(l, "not a Docker model layer media type")
			continue
		}
		if t.archive {
			if err := p.addArchive(l, "", unpack.Options{Compression: t.compression}); err != nil {
				return err
			}
			continue
		}
		seen[l.MediaType]++
		name := ""
		if !v01 {
			name = cmp.Or(l.Annotations[annotationFilepath], l.Annotations[ocispec.AnnotationTitle])
		}
		if name == "" {
			name = dockerFixedName(l.MediaType, seen[l.MediaType], counts[l.MediaType])
		}
		if name == "" {
			p.skip(l, "no %s and no fixed name for the media type", annotationFilepath)
			continue
		}
		if err := p.addRaw(l, name); err != nil {
			return err
		}
		switch l.MediaType {
		case "application/vnd.docker.ai.gguf.v3":
			firstGGUF = cmp.Or(firstGGUF, name)
			if mm := splitGGUF.FindStringSubmatch(name); mm != nil && mm[1] == "00001" {
				firstShard = cmp.Or(firstShard, name)
			}
		case "application/vnd.docker.ai.safetensors":
			firstSafetensors = cmp.Or(firstSafetensors, name)
		case "application/vnd.docker.ai.dduf":
			firstDDUF = cmp.Or(firstDDUF, name)
		}
	}
	p.plan.MainFile = cmp.Or(firstShard, firstGGUF, firstSafetensors, firstDDUF)
	return nil
}

// dockerFixedName is the name Docker Model Runner gives the i-th (from 1)
// of n layers of a media type in a v0.1 artifact; "" if it has none.
func dockerFixedName(mediaType string, i, n int) string {
	name := dockerV01Names[mediaType]
	if name == "" {
		return ""
	}
	ext := path.Ext(name)
	switch {
	case n > 1 && (ext == ".gguf" || ext == ".safetensors"):
		return fmt.Sprintf("model-%05d-of-%05d%s", i, n, ext)
	case i > 1:
		return numbered(name, i)
	}
	return name
}

// numbered returns name with "-i" before its extension: LICENSE-2,
// adapter-2.gguf.
func numbered(name string, i int) string {
	if i <= 1 {
		return name
	}
	ext := path.Ext(name)
	return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(name, ext), i, ext)
}

// ollama lays out an Ollama model with the fixed names of ollamaNames. A
// second model layer is skipped (Ollama merges split GGUFs into one layer;
// server/create_split_gguf.go); adapters, projectors and licenses may
// repeat and are numbered.
func (p *planner) ollama(m *ocispec.Manifest) error {
	seen := map[Role]int{}
	for _, l := range m.Layers {
		t, ok := layerTypes[l.MediaType]
		if !ok || t.format != FormatOllama {
			p.skip(l, "not an Ollama layer media type")
			continue
		}
		seen[t.role]++
		if seen[t.role] > 1 && (t.role == RoleWeight || t.role == RoleTemplate || t.role == RoleSystem || t.role == RoleParams || t.role == RoleMessages) {
			p.skip(l, "a second %s layer", t.role)
			continue
		}
		if err := p.addRaw(l, numbered(ollamaNames[t.role], seen[t.role])); err != nil {
			return err
		}
	}
	if seen[RoleWeight] == 0 {
		return fmt.Errorf("no application/vnd.ollama.image.model layer: %w", ErrUnsupported)
	}
	p.plan.MainFile = ollamaNames[RoleWeight]
	return nil
}

// oras lays out an ORAS artifact as `oras pull` does: a layer is the file
// named by its title; a layer marked io.deis.oras.content.unpack=true is a
// tar+gzip of a directory whose entries are prefixed with the title
// (oras-go content/file/utils.go tarDirectory), so it unpacks at the title
// taking only the entries under the title, prefix removed, as oras-go's
// extractTarDirectory does. The main file is the largest plain file.
func (p *planner) oras(m *ocispec.Manifest) error {
	var main mainPicker
	for _, l := range m.Layers {
		title := l.Annotations[ocispec.AnnotationTitle]
		if title == "" {
			p.skip(l, "no %s", ocispec.AnnotationTitle)
			continue
		}
		if l.Annotations[annotationORASUnpack] == "true" {
			compression := unpack.Gzip // what oras-go writes, whatever the media type says
			if t, ok := layerTypes[l.MediaType]; ok && t.archive && t.compression != unpack.None {
				compression = t.compression
			}
			dir := strings.TrimSuffix(title, "/")
			if err := p.addArchive(l, dir, unpack.Options{Compression: compression, Subdir: dir}); err != nil {
				return err
			}
			continue
		}
		if err := p.addRaw(l, title); err != nil {
			return err
		}
		main.offer(title, l.Size)
	}
	p.plan.MainFile = main.name
	return nil
}

// image lays out the files under ImageModelDir of an OCI or Docker image,
// every layer applied in order with whiteouts. The main file is unknown
// until the layers are unpacked.
func (p *planner) image(m *ocispec.Manifest, opts ClassifyOptions) error {
	dir := strings.Trim(cmp.Or(opts.ImageModelDir, DefaultImageModelDir), "/")
	if err := cache.CheckPath(dir); err != nil {
		return fmt.Errorf("image model directory: %w", err)
	}
	for _, l := range m.Layers {
		t, ok := layerTypes[l.MediaType]
		if !ok || t.format != FormatImage {
			p.skip(l, "not an image layer media type")
			continue
		}
		if err := p.addArchive(l, "", unpack.Options{Compression: t.compression, Subdir: dir, Whiteouts: true}); err != nil {
			return err
		}
	}
	return nil
}

// mainPicker keeps the largest file offered; the first of equal sizes.
type mainPicker struct {
	name string
	size int64
}

func (m *mainPicker) offer(name string, size int64) {
	if m.name == "" || size > m.size {
		m.name, m.size = name, size
	}
}

// SelectManifest picks the manifest of index for platform: OS and
// architecture must match (default linux/amd64). Variants follow the OCI
// image index spec and containerd's matcher: an empty variant means v8 on
// arm64, v7 on arm and v1 on amd64; a requested variant also accepts
// lower ones (an arm/v7 machine runs arm/v6), preferring the highest.
// Ties go to the first in index order. Entries that are not manifests
// (nested indexes, attestations with platform unknown/unknown) never match.
func SelectManifest(index *ocispec.Index, platform ocispec.Platform) (ocispec.Descriptor, error) {
	if index == nil {
		return ocispec.Descriptor{}, fmt.Errorf("select manifest: no index: %w", ErrUnsupported)
	}
	want := platform
	if want.OS == "" {
		want.OS = "linux"
	}
	if want.Architecture == "" {
		want.Architecture = "amd64"
	}
	wantLevel := variantLevel(want.Architecture, want.Variant)
	best, bestLevel := -1, -1
	var offered []string
	for i, d := range index.Manifests {
		if d.Platform == nil {
			continue
		}
		offered = append(offered, PlatformString(*d.Platform))
		if d.MediaType != ocispec.MediaTypeImageManifest && d.MediaType != mediaTypeDockerManifest {
			continue
		}
		if d.Platform.OS != want.OS || d.Platform.Architecture != want.Architecture {
			continue
		}
		level := variantLevel(d.Platform.Architecture, d.Platform.Variant)
		if level < 0 || wantLevel < 0 {
			// Unknown variant naming: only an exact match will do.
			if d.Platform.Variant == want.Variant && best < 0 {
				best = i
			}
			continue
		}
		if level <= wantLevel && level > bestLevel {
			best, bestLevel = i, level
		}
	}
	if best < 0 {
		return ocispec.Descriptor{}, fmt.Errorf("select manifest for %s among [%s]: %w", PlatformString(want), strings.Join(offered, ", "), ErrNoPlatform)
	}
	return index.Manifests[best], nil
}

// variantLevel returns the numeric level of an architecture variant ("v7"
// → 7), with the architecture's default for "", or -1 if it is not of the
// form vN.
func variantLevel(arch, variant string) int {
	if variant == "" {
		switch arch {
		case "arm64":
			return 8
		case "arm":
			return 7
		default:
			return 1
		}
	}
	var n int
	if _, err := fmt.Sscanf(variant, "v%d", &n); err != nil || fmt.Sprintf("v%d", n) != variant {
		return -1
	}
	return n
}

// PlatformString renders p as os/arch[/variant].
func PlatformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform parses os/arch[/variant].
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return ocispec.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// shortDigest is the first 12 hex digits of l's digest, for messages.
func shortDigest(l ocispec.Descriptor) string {
	if l.Digest.Validate() != nil {
		return fmt.Sprintf("%.20q", string(l.Digest))
	}
	return l.Digest.Encoded()[:12]
}
