package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem found in the configuration file.
type Error struct {
	File string // path of the file
	Line int    // 1-based line of the key, 0 when the key is absent
	Key  string // the key's path, e.g. models[1].runtime
	Msg  string // what is wrong
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
}

// problems collects every Error found in one file, so that Load reports
// them all at once.
type problems struct {
	file string
	root *yaml.Node // the parsed document, for lines and key presence
	errs []error
}

// add records a problem with the key at path.
func (p *problems) add(path []any, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: lineOf(p.root, path...), Key: keyString(path), Msg: fmt.Sprintf(format, args...)})
}

// has reports whether the file sets the key at path.
func (p *problems) has(path ...any) bool { return nodeAt(p.root, path...) != nil }

// err joins the problems, or returns nil when there are none.
func (p *problems) err() error { return errors.Join(p.errs...) }

// nodeAt returns the value node at path in the parsed document, or nil when
// the file does not set it.
func nodeAt(root *yaml.Node, path ...any) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		switch v := p.(type) {
		case string:
			if n = mapValue(n, v); n == nil {
				return nil
			}
		case int:
			if n.Kind == yaml.AliasNode {
				n = n.Alias
			}
			if n.Kind != yaml.SequenceNode || v >= len(n.Content) {
				return nil
			}
			n = n.Content[v]
		}
	}
	return n
}

// mapValue returns the value of key in the mapping n, following aliases and
// YAML merge keys (<<: *base) as the decoder does, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k, v := n.Content[i], n.Content[i+1]; {
		case k.Value == key && k.Tag != "!!merge":
			return v
		case k.Tag == "!!merge" && v.Kind == yaml.SequenceNode:
			merged = append(merged, v.Content...)
		case k.Tag == "!!merge":
			merged = append(merged, v)
		}
	}
	for _, m := range merged {
		if v := mapValue(m, key); v != nil {
			return v
		}
	}
	return nil
}

// keyString renders a path such as ["models", 1, "ref"] as models[1].ref.
func keyString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch v := p.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(v) + "]")
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(v)
		}
	}
	return b.String()
}

// lineOf finds the line of the node at path in the parsed document, or the
// line of the deepest ancestor that exists, or 0.
func lineOf(root *yaml.Node, path ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, p := range path {
		switch v := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == v {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return line
			}
			n = next
		case int:
			if n.Kind != yaml.SequenceNode || v >= len(n.Content) {
				return line
			}
			n = n.Content[v]
			line = n.Line
		}
	}
	return line
}
