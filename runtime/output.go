package runtime

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// lineLogger is the io.Writer a runtime's stdout or stderr is copied into: it
// logs each complete line with the model's name and keeps the last few
// lines for error messages. It never holds more than one line plus the tail.
type lineLogger struct {
	log    *slog.Logger
	stream string
	keep   int

	mu      sync.Mutex
	partial []byte
	tail    []string
}

// maxLine bounds a line kept while waiting for its newline.
const maxLine = 64 << 10

func newLineLogger(log *slog.Logger, stream string, keep int) *lineLogger {
	return &lineLogger{log: log, stream: stream, keep: keep}
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.partial = append(l.partial, p...)
			if len(l.partial) > maxLine {
				l.emit(string(l.partial))
				l.partial = l.partial[:0]
			}
			break
		}
		l.partial = append(l.partial, p[:i]...)
		l.emit(string(l.partial))
		l.partial = l.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineLogger) emit(line string) {
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return
	}
	l.log.Info(line, "stream", l.stream)
	if l.keep > 0 {
		l.tail = append(l.tail, line)
		if len(l.tail) > l.keep {
			l.tail = l.tail[len(l.tail)-l.keep:]
		}
	}
}

// Tail returns the last lines written, oldest first, including a final line
// that has no newline yet.
func (l *lineLogger) Tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]string(nil), l.tail...)
	if len(l.partial) > 0 {
		out = append(out, string(l.partial))
	}
	if len(out) > l.keep {
		out = out[len(out)-l.keep:]
	}
	return out
}
