package fetcher

import (
	"github.com/modelgate/modelgate/unpack"
)

// Format names a Plan carries.
const (
	FormatORAS        = "oras"
	FormatModelPack   = "modelpack"
	FormatKitOps      = "kitops"
	FormatDockerModel = "docker-model"
	FormatOllama      = "ollama"
	FormatImage       = "image"
)

// Role is what a layer holds, as its media type says.
type Role string

// Layer roles of the formats below.
const (
	RoleWeight       Role = "weight"        // model weights (ModelPack weight, KitOps model, Docker gguf/safetensors/dduf, Ollama model)
	RoleWeightPart   Role = "weight-part"   // KitOps modelpart
	RoleWeightConfig Role = "weight-config" // tokenizer.json, config.json, ... (ModelPack weight.config)
	RoleDoc          Role = "doc"
	RoleCode         Role = "code"
	RoleDataset      Role = "dataset"
	RoleLicense      Role = "license"
	RoleProjector    Role = "projector" // multimodal projector (mmproj)
	RoleAdapter      Role = "adapter"   // LoRA adapter
	RoleTemplate     Role = "template"  // chat template
	RoleSystem       Role = "system"    // Ollama system prompt
	RoleParams       Role = "params"    // Ollama default parameters (JSON)
	RoleMessages     Role = "messages"  // Ollama seed messages (JSON)
	RoleDirectory    Role = "directory" // an archive of a directory of model files
	RoleFile         Role = "file"      // any other file of the model
	RoleImageLayer   Role = "image-layer"
)

// layerType says how one layer media type becomes part of a model directory.
type layerType struct {
	format string
	// archive: the blob is a tar (compressed as compression says) to unpack;
	// otherwise the blob is the file itself.
	archive     bool
	compression unpack.Compression
	role        Role
	// compressedRaw marks a raw file stored compressed (KitOps
	// "raw+gzip"/"raw+zstd"): neither a file we can link nor a tar.
	compressedRaw bool
}

// Shorthands for the table, so that each row reads as one line.
const (
	gz = unpack.Gzip
	zs = unpack.Zstd
)

// layerTypes is the one table of the layer media types the classifier knows.
// Every string was checked against the producing project's own source
// (cited above each group) in 2026. ORAS generic artifacts are not here:
// they are recognised by the org.opencontainers.image.title annotation,
// whatever their media type (`oras push` defaults to
// application/vnd.oci.image.layer.v1.tar for plain files).
var layerTypes = map[string]layerType{
	// CNCF ModelPack, model-spec v0.0.7+:
	// https://github.com/modelpack/model-spec/blob/main/specs-go/v1/mediatype.go
	// Raw layers may not be compressed (kitops ParseMediaType refuses
	// raw+gzip for ModelPack, and the spec lists none).
	"application/vnd.cncf.model.weight.v1.raw":             {format: FormatModelPack, role: RoleWeight},
	"application/vnd.cncf.model.weight.v1.tar":             {format: FormatModelPack, archive: true, role: RoleWeight},
	"application/vnd.cncf.model.weight.v1.tar+gzip":        {format: FormatModelPack, archive: true, compression: gz, role: RoleWeight},
	"application/vnd.cncf.model.weight.v1.tar+zstd":        {format: FormatModelPack, archive: true, compression: zs, role: RoleWeight},
	"application/vnd.cncf.model.weight.config.v1.raw":      {format: FormatModelPack, role: RoleWeightConfig},
	"application/vnd.cncf.model.weight.config.v1.tar":      {format: FormatModelPack, archive: true, role: RoleWeightConfig},
	"application/vnd.cncf.model.weight.config.v1.tar+gzip": {format: FormatModelPack, archive: true, compression: gz, role: RoleWeightConfig},
	"application/vnd.cncf.model.weight.config.v1.tar+zstd": {format: FormatModelPack, archive: true, compression: zs, role: RoleWeightConfig},
	"application/vnd.cncf.model.doc.v1.raw":                {format: FormatModelPack, role: RoleDoc},
	"application/vnd.cncf.model.doc.v1.tar":                {format: FormatModelPack, archive: true, role: RoleDoc},
	"application/vnd.cncf.model.doc.v1.tar+gzip":           {format: FormatModelPack, archive: true, compression: gz, role: RoleDoc},
	"application/vnd.cncf.model.doc.v1.tar+zstd":           {format: FormatModelPack, archive: true, compression: zs, role: RoleDoc},
	"application/vnd.cncf.model.code.v1.raw":               {format: FormatModelPack, role: RoleCode},
	"application/vnd.cncf.model.code.v1.tar":               {format: FormatModelPack, archive: true, role: RoleCode},
	"application/vnd.cncf.model.code.v1.tar+gzip":          {format: FormatModelPack, archive: true, compression: gz, role: RoleCode},
	"application/vnd.cncf.model.code.v1.tar+zstd":          {format: FormatModelPack, archive: true, compression: zs, role: RoleCode},
	"application/vnd.cncf.model.dataset.v1.raw":            {format: FormatModelPack, role: RoleDataset},
	"application/vnd.cncf.model.dataset.v1.tar":            {format: FormatModelPack, archive: true, role: RoleDataset},
	"application/vnd.cncf.model.dataset.v1.tar+gzip":       {format: FormatModelPack, archive: true, compression: gz, role: RoleDataset},
	"application/vnd.cncf.model.dataset.v1.tar+zstd":       {format: FormatModelPack, archive: true, compression: zs, role: RoleDataset},
	// ModelPack before v0.0.7 (the "CNAI" names), still written by modctl
	// for registries that only know them: model-spec's older
	// specs-go/v1/mediatype.go and modctl's legacy constants; ramalama
	// accepts the same list.
	"application/vnd.cnai.model.weight.v1.raw":             {format: FormatModelPack, role: RoleWeight},
	"application/vnd.cnai.model.weight.v1.tar":             {format: FormatModelPack, archive: true, role: RoleWeight},
	"application/vnd.cnai.model.weight.v1.tar+gzip":        {format: FormatModelPack, archive: true, compression: gz, role: RoleWeight},
	"application/vnd.cnai.model.weight.v1.tar+zstd":        {format: FormatModelPack, archive: true, compression: zs, role: RoleWeight},
	"application/vnd.cnai.model.weight.config.v1.raw":      {format: FormatModelPack, role: RoleWeightConfig},
	"application/vnd.cnai.model.weight.config.v1.tar":      {format: FormatModelPack, archive: true, role: RoleWeightConfig},
	"application/vnd.cnai.model.weight.config.v1.tar+gzip": {format: FormatModelPack, archive: true, compression: gz, role: RoleWeightConfig},
	"application/vnd.cnai.model.weight.config.v1.tar+zstd": {format: FormatModelPack, archive: true, compression: zs, role: RoleWeightConfig},
	"application/vnd.cnai.model.doc.v1.raw":                {format: FormatModelPack, role: RoleDoc},
	"application/vnd.cnai.model.doc.v1.tar":                {format: FormatModelPack, archive: true, role: RoleDoc},
	"application/vnd.cnai.model.doc.v1.tar+gzip":           {format: FormatModelPack, archive: true, compression: gz, role: RoleDoc},
	"application/vnd.cnai.model.doc.v1.tar+zstd":           {format: FormatModelPack, archive: true, compression: zs, role: RoleDoc},
	"application/vnd.cnai.model.code.v1.raw":               {format: FormatModelPack, role: RoleCode},
	"application/vnd.cnai.model.code.v1.tar":               {format: FormatModelPack, archive: true, role: RoleCode},
	"application/vnd.cnai.model.code.v1.tar+gzip":          {format: FormatModelPack, archive: true, compression: gz, role: RoleCode},
	"application/vnd.cnai.model.code.v1.tar+zstd":          {format: FormatModelPack, archive: true, compression: zs, role: RoleCode},
	"application/vnd.cnai.model.dataset.v1.raw":            {format: FormatModelPack, role: RoleDataset},
	"application/vnd.cnai.model.dataset.v1.tar":            {format: FormatModelPack, archive: true, role: RoleDataset},
	"application/vnd.cnai.model.dataset.v1.tar+gzip":       {format: FormatModelPack, archive: true, compression: gz, role: RoleDataset},
	"application/vnd.cnai.model.dataset.v1.tar+zstd":       {format: FormatModelPack, archive: true, compression: zs, role: RoleDataset},

	// KitOps ModelKit: "application/vnd.kitops.modelkit.<base>.v1.<tar|raw>[+gzip|+zstd]"
	// https://github.com/kitops-ml/kitops/blob/main/pkg/lib/constants/mediatype/kitops.go
	// and mediatype.go (ParseMediaType, ParseKitBaseType: config, model,
	// modelpart, dataset, code, docs). Prompts are code layers with the
	// annotation ml.kitops.modelkit.layer-subtype=prompt
	// (pkg/lib/constants/consts.go). Tar entries are paths relative to the
	// Kitfile's directory (pkg/lib/filesystem/tar.go walks from ".").
	"application/vnd.kitops.modelkit.model.v1.raw":          {format: FormatKitOps, role: RoleWeight},
	"application/vnd.kitops.modelkit.model.v1.raw+gzip":     {format: FormatKitOps, compressedRaw: true, compression: gz, role: RoleWeight},
	"application/vnd.kitops.modelkit.model.v1.raw+zstd":     {format: FormatKitOps, compressedRaw: true, compression: zs, role: RoleWeight},
	"application/vnd.kitops.modelkit.model.v1.tar":          {format: FormatKitOps, archive: true, role: RoleWeight},
	"application/vnd.kitops.modelkit.model.v1.tar+gzip":     {format: FormatKitOps, archive: true, compression: gz, role: RoleWeight},
	"application/vnd.kitops.modelkit.model.v1.tar+zstd":     {format: FormatKitOps, archive: true, compression: zs, role: RoleWeight},
	"application/vnd.kitops.modelkit.modelpart.v1.raw":      {format: FormatKitOps, role: RoleWeightPart},
	"application/vnd.kitops.modelkit.modelpart.v1.raw+gzip": {format: FormatKitOps, compressedRaw: true, compression: gz, role: RoleWeightPart},
	"application/vnd.kitops.modelkit.modelpart.v1.raw+zstd": {format: FormatKitOps, compressedRaw: true, compression: zs, role: RoleWeightPart},
	"application/vnd.kitops.modelkit.modelpart.v1.tar":      {format: FormatKitOps, archive: true, role: RoleWeightPart},
	"application/vnd.kitops.modelkit.modelpart.v1.tar+gzip": {format: FormatKitOps, archive: true, compression: gz, role: RoleWeightPart},
	"application/vnd.kitops.modelkit.modelpart.v1.tar+zstd": {format: FormatKitOps, archive: true, compression: zs, role: RoleWeightPart},
	"application/vnd.kitops.modelkit.code.v1.raw":           {format: FormatKitOps, role: RoleCode},
	"application/vnd.kitops.modelkit.code.v1.raw+gzip":      {format: FormatKitOps, compressedRaw: true, compression: gz, role: RoleCode},
	"application/vnd.kitops.modelkit.code.v1.raw+zstd":      {format: FormatKitOps, compressedRaw: true, compression: zs, role: RoleCode},
	"application/vnd.kitops.modelkit.code.v1.tar":           {format: FormatKitOps, archive: true, role: RoleCode},
	"application/vnd.kitops.modelkit.code.v1.tar+gzip":      {format: FormatKitOps, archive: true, compression: gz, role: RoleCode},
	"application/vnd.kitops.modelkit.code.v1.tar+zstd":      {format: FormatKitOps, archive: true, compression: zs, role: RoleCode},
	"application/vnd.kitops.modelkit.dataset.v1.raw":        {format: FormatKitOps, role: RoleDataset},
	"application/vnd.kitops.modelkit.dataset.v1.raw+gzip":   {format: FormatKitOps, compressedRaw: true, compression: gz, role: RoleDataset},
	"application/vnd.kitops.modelkit.dataset.v1.raw+zstd":   {format: FormatKitOps, compressedRaw: true, compression: zs, role: RoleDataset},
	"application/vnd.kitops.modelkit.dataset.v1.tar":        {format: FormatKitOps, archive: true, role: RoleDataset},
	"application/vnd.kitops.modelkit.dataset.v1.tar+gzip":   {format: FormatKitOps, archive: true, compression: gz, role: RoleDataset},
	"application/vnd.kitops.modelkit.dataset.v1.tar+zstd":   {format: FormatKitOps, archive: true, compression: zs, role: RoleDataset},
	"application/vnd.kitops.modelkit.docs.v1.raw":           {format: FormatKitOps, role: RoleDoc},
	"application/vnd.kitops.modelkit.docs.v1.raw+gzip":      {format: FormatKitOps, compressedRaw: true, compression: gz, role: RoleDoc},
	"application/vnd.kitops.modelkit.docs.v1.raw+zstd":      {format: FormatKitOps, compressedRaw: true, compression: zs, role: RoleDoc},
	"application/vnd.kitops.modelkit.docs.v1.tar":           {format: FormatKitOps, archive: true, role: RoleDoc},
	"application/vnd.kitops.modelkit.docs.v1.tar+gzip":      {format: FormatKitOps, archive: true, compression: gz, role: RoleDoc},
	"application/vnd.kitops.modelkit.docs.v1.tar+zstd":      {format: FormatKitOps, archive: true, compression: zs, role: RoleDoc},

	// Docker model artifacts (Docker Model Runner):
	// https://github.com/docker/model-runner/blob/main/pkg/distribution/types/config.go;
	// model.file is written by push/formats.go for files Docker's classifier
	// (pkg/distribution/files/classify.go) leaves unclassified. The two tar
	// types are unpacked into the model directory's root
	// (pkg/distribution/internal/bundle/unpack.go).
	"application/vnd.docker.ai.gguf.v3":             {format: FormatDockerModel, role: RoleWeight},
	"application/vnd.docker.ai.safetensors":         {format: FormatDockerModel, role: RoleWeight},
	"application/vnd.docker.ai.dduf":                {format: FormatDockerModel, role: RoleWeight},
	"application/vnd.docker.ai.mmproj":              {format: FormatDockerModel, role: RoleProjector},
	"application/vnd.docker.ai.chat.template.jinja": {format: FormatDockerModel, role: RoleTemplate},
	"application/vnd.docker.ai.license":             {format: FormatDockerModel, role: RoleLicense},
	"application/vnd.docker.ai.model.file":          {format: FormatDockerModel, role: RoleFile},
	"application/vnd.docker.ai.vllm.config.tar":     {format: FormatDockerModel, archive: true, role: RoleWeightConfig},
	"application/vnd.docker.ai.dir.tar":             {format: FormatDockerModel, archive: true, role: RoleDirectory},

	// Ollama registry: server/images.go (GetModel) and server/create.go of
	// https://github.com/ollama/ollama. "prompt" is the old name of
	// "template"; "embed" is deprecated and ignored by Ollama itself, so it
	// is not listed (and is skipped).
	"application/vnd.ollama.image.model":     {format: FormatOllama, role: RoleWeight},
	"application/vnd.ollama.image.adapter":   {format: FormatOllama, role: RoleAdapter},
	"application/vnd.ollama.image.projector": {format: FormatOllama, role: RoleProjector},
	"application/vnd.ollama.image.template":  {format: FormatOllama, role: RoleTemplate},
	"application/vnd.ollama.image.prompt":    {format: FormatOllama, role: RoleTemplate},
	"application/vnd.ollama.image.system":    {format: FormatOllama, role: RoleSystem},
	"application/vnd.ollama.image.params":    {format: FormatOllama, role: RoleParams},
	"application/vnd.ollama.image.messages":  {format: FormatOllama, role: RoleMessages},
	"application/vnd.ollama.image.license":   {format: FormatOllama, role: RoleLicense},

	// OCI and Docker image layers: image-spec specs-go/v1/mediatype.go
	// (MediaTypeImageLayer, ...Gzip, ...Zstd) and Docker's image manifest v2
	// schema 2 (rootfs.diff.tar.gzip). Non-distributable and "foreign"
	// layers are not listed: they are skipped.
	"application/vnd.oci.image.layer.v1.tar":            {format: FormatImage, archive: true, role: RoleImageLayer},
	"application/vnd.oci.image.layer.v1.tar+gzip":       {format: FormatImage, archive: true, compression: gz, role: RoleImageLayer},
	"application/vnd.oci.image.layer.v1.tar+zstd":       {format: FormatImage, archive: true, compression: zs, role: RoleImageLayer},
	"application/vnd.docker.image.rootfs.diff.tar.gzip": {format: FormatImage, archive: true, compression: gz, role: RoleImageLayer},
}

// Manifest artifactType and config media types that name a format.
var (
	// artifactTypes maps a manifest's artifactType to its format.
	artifactTypes = map[string]string{
		"application/vnd.cncf.model.manifest.v1+json":      FormatModelPack, // model-spec specs-go/v1/mediatype.go
		"application/vnd.cnai.model.manifest.v1+json":      FormatModelPack, // model-spec before v0.0.7
		"application/vnd.kitops.modelkit.manifest.v1+json": FormatKitOps,    // kitops pkg/lib/constants/mediatype/artifacttype.go
	}
	// configTypes maps a config media type to its format. Image configs are
	// a weak signal: Ollama manifests use Docker's image config too.
	configTypes = map[string]string{
		"application/vnd.cncf.model.config.v1+json":      FormatModelPack,
		"application/vnd.cnai.model.config.v1+json":      FormatModelPack,
		mediaTypeKitOpsConfig:                            FormatKitOps, // kitops mediatype/kitops.go
		mediaTypeDockerModelConfigV01:                    FormatDockerModel,
		mediaTypeDockerModelConfigV02:                    FormatDockerModel,
		"application/vnd.oci.image.config.v1+json":       FormatImage, // image-spec MediaTypeImageConfig
		"application/vnd.docker.container.image.v1+json": FormatImage, // Docker image manifest v2 schema 2
	}
)

// Config media types the classifier reads or branches on.
const (
	mediaTypeKitOpsConfig         = "application/vnd.kitops.modelkit.config.v1+json"
	mediaTypeDockerModelConfigV01 = "application/vnd.docker.ai.model.config.v0.1+json"
	mediaTypeDockerModelConfigV02 = "application/vnd.docker.ai.model.config.v0.2+json"
)

// Annotations the classifier reads.
const (
	// annotationFilepath names a layer's path in CNCF ModelPack and Docker
	// model artifacts (model-spec v0.0.7+).
	annotationFilepath = "org.cncf.model.filepath"
	// annotationLegacyFilepath is org.cncf.model.filepath before
	// model-spec v0.0.7.
	annotationLegacyFilepath = "org.cnai.model.filepath"
	// annotationORASUnpack marks an ORAS directory layer (a tar+gzip to
	// unpack at its title): oras-go content/file/file.go AnnotationUnpack.
	annotationORASUnpack = "io.deis.oras.content.unpack"
	// annotationKitOpsSubtype tells prompt layers from code layers.
	annotationKitOpsSubtype = "ml.kitops.modelkit.layer-subtype"
)

// weightExtensions are the file extensions that name a weights file, used
// to tell whether an archive layer's path annotation names the main file
// itself (modctl packs each file as its own tar) rather than a directory.
var weightExtensions = map[string]bool{
	".gguf": true, ".safetensors": true, ".bin": true, ".pt": true, ".pth": true,
	".onnx": true, ".h5": true, ".ckpt": true, ".pb": true, ".tflite": true,
	".mlmodel": true, ".npz": true, ".ggml": true, ".llamafile": true, ".dduf": true,
}

// ollamaNames are the file names an Ollama model's layers get, chosen for
// llama-server users (`llama-server -m model.gguf --mmproj mmproj.gguf
// --lora adapter.gguf`); see docs/formats.md. A second layer of a role that
// may repeat gets "-2" before the extension, and so on.
var ollamaNames = map[Role]string{
	RoleWeight:    "model.gguf",
	RoleAdapter:   "adapter.gguf",
	RoleProjector: "mmproj.gguf",
	RoleTemplate:  "template.txt", // a Go text/template, not Jinja
	RoleSystem:    "system.txt",
	RoleParams:    "params.json",
	RoleMessages:  "messages.json",
	RoleLicense:   "LICENSE",
}

// dockerV01Names are the fixed names Docker Model Runner gives the files of
// a config v0.1 artifact (pkg/distribution/internal/bundle/unpack.go): one
// GGUF is model.gguf, several are model-%05d-of-%05d.gguf in layer order;
// safetensors likewise.
var dockerV01Names = map[string]string{
	"application/vnd.docker.ai.gguf.v3":             "model.gguf",
	"application/vnd.docker.ai.safetensors":         "model.safetensors",
	"application/vnd.docker.ai.dduf":                "model.dduf",
	"application/vnd.docker.ai.mmproj":              "model.mmproj",
	"application/vnd.docker.ai.chat.template.jinja": "template.jinja",
	"application/vnd.docker.ai.license":             "LICENSE",
}

// Manifest media types the puller reads besides OCI's.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)
