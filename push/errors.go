package push

import "errors"

// Errors a push can end with, each wrapped with the path or reference it
// concerns. All of them are returned before anything is sent to the registry.
var (
	// ErrNotDir means DIR exists but is not a directory.
	ErrNotDir = errors.New("not a directory")
	// ErrEmptyDir means DIR holds no file to push (hidden entries are
	// skipped, so a directory with only .git/ is empty too).
	ErrEmptyDir = errors.New("no files to push")
	// ErrLinkOutside means a symbolic link in DIR resolves to a path outside
	// DIR.
	ErrLinkOutside = errors.New("symbolic link points outside the directory")
	// ErrNotRegular means an entry is neither a regular file, a directory
	// nor a symbolic link to a regular file (a device, socket, named pipe,
	// or a link to a directory).
	ErrNotRegular = errors.New("not a regular file")
	// ErrNoTag means the reference names no tag (push tags what it writes,
	// so a bare repository or a digest reference is refused).
	ErrNoTag = errors.New("reference has no tag")
	// ErrUnknownFormat means Options.Format is not one of the Format names.
	ErrUnknownFormat = errors.New("unknown format")
	// ErrNoWeights means the Docker format was asked for a directory without
	// a .gguf, .safetensors or .dduf file; Docker's model runner needs one,
	// and its own packager refuses such a directory too.
	ErrNoWeights = errors.New("no weight file (.gguf, .safetensors or .dduf)")
)
