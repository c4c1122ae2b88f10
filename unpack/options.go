package unpack

// Compression is how an archive blob is compressed.
type Compression string

// The compressions of the layer media types of the field.
const (
	None Compression = ""     // plain tar
	Gzip Compression = "gzip" // tar+gzip, and Docker's rootfs.diff.tar.gzip
	Zstd Compression = "zstd" // tar+zstd
)

// Options say how one archive is unpacked.
type Options struct {
	Compression Compression
	// Subdir, when set, takes only the entries under this slash-separated
	// directory of the archive, with the prefix removed (KServe modelcar
	// images keep the model under "models").
	Subdir string
	// Whiteouts applies OCI and Docker whiteout files (".wh.NAME" deletes
	// NAME from what earlier layers unpacked; ".wh..wh..opq" empties its
	// directory) instead of unpacking them; for image layers.
	Whiteouts bool
	// MaxBytes caps the bytes written by this archive; 0 means DefaultMaxBytes.
	MaxBytes int64
	// MaxEntries caps the entries of this archive; 0 means DefaultMaxEntries.
	MaxEntries int
}

// Defaults for the caps, generous for real models (a 405B model is about
// 800 GB in a few hundred files) while bounding a hostile archive.
const (
	DefaultMaxBytes   int64 = 2 << 40 // 2 TiB
	DefaultMaxEntries       = 100_000
)
