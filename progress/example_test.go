package progress_test

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/modelgate/modelgate/progress"
)

// One tracker per operation; each stream read through Tracker.Reader.
// Transfers shorter than the interval write no progress line, so here only
// the caller's own lines show.
func ExampleTracker() {
	files := map[string]string{"model.gguf": "GGUF and some weights"}
	var total int64
	for _, data := range files {
		total += int64(len(data))
	}
	tk, err := progress.New(os.Stdout, total, progress.Options{Mode: progress.Plain, Interval: time.Hour, Verbs: progress.Upload})
	if err != nil {
		panic(err)
	}
	for name, data := range files {
		tk.Logf("uploading  %s (%dB)", name, len(data))
		io.Copy(io.Discard, tk.Reader(name, strings.NewReader(data), int64(len(data))))
	}
	tk.Done()
	fmt.Printf("%d of %d bytes\n", tk.Transferred(), total)
	// Output:
	// uploading  model.gguf (21B)
	// 21 of 21 bytes
}
