package push_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// jsonSchema validates a JSON document against testdata/modelpack-config-schema.json
// (the ModelPack config schema, see testdata/README.md). No JSON Schema
// library is among our dependencies, so this implements the keywords that
// schema uses, and refuses any other keyword so that a newer schema cannot
// be half-checked without notice.
type jsonSchema struct {
	root map[string]any
}

// schemaKeywords are the keywords validate understands, or ignores because
// they annotate rather than constrain.
var schemaKeywords = []string{
	"$schema", "$id", "$defs", "description", // annotations
	"type", "properties", "additionalProperties", "required", "$ref",
	"enum", "items", "minItems", "minLength", "minimum", "pattern", "format",
}

func loadSchema(t *testing.T, path string) *jsonSchema {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return &jsonSchema{root: root}
}

// validate returns every violation of the schema by the JSON document data.
func (s *jsonSchema) validate(data []byte) []string {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return []string{err.Error()}
	}
	var errs []string
	s.check(s.root, v, "$", &errs)
	return errs
}

func (s *jsonSchema) check(schema map[string]any, v any, at string, errs *[]string) {
	fail := func(format string, args ...any) { *errs = append(*errs, at+": "+fmt.Sprintf(format, args...)) }
	for k := range schema {
		if !slices.Contains(schemaKeywords, k) {
			fail("schema keyword %q is not supported by this test's validator", k)
		}
	}
	if ref, ok := schema["$ref"].(string); ok {
		name, found := strings.CutPrefix(ref, "#/$defs/")
		def, _ := s.root["$defs"].(map[string]any)[name].(map[string]any)
		if !found || def == nil {
			fail("unresolvable $ref %q", ref)
			return
		}
		s.check(def, v, at, errs)
	}
	if typ, ok := schema["type"].(string); ok && !hasType(v, typ) {
		fail("%s is not of type %s", compact(v), typ)
		return
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
		fail("%s is not one of %v", compact(v), enum)
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		for _, r := range asSlice(schema["required"]) {
			if _, ok := v[r.(string)]; !ok {
				fail("required property %q is missing", r)
			}
		}
		for k, pv := range v {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if schema["additionalProperties"] == false {
					fail("property %q is not allowed", k)
				}
				continue
			}
			s.check(ps, pv, at+"."+k, errs)
		}
	case []any:
		if n, ok := schema["minItems"].(float64); ok && float64(len(v)) < n {
			fail("%d items, want at least %v", len(v), n)
		}
		if is, ok := schema["items"].(map[string]any); ok {
			for i, e := range v {
				s.check(is, e, fmt.Sprintf("%s[%d]", at, i), errs)
			}
		}
	case string:
		if n, ok := schema["minLength"].(float64); ok && float64(len([]rune(v))) < n {
			fail("%q is shorter than %v", v, n)
		}
		if p, ok := schema["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(v) {
			fail("%q does not match %s", v, p)
		}
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339, v); err != nil {
				fail("%q is not an RFC 3339 date-time", v)
			}
		}
	case float64:
		if m, ok := schema["minimum"].(float64); ok && v < m {
			fail("%v is less than %v", v, m)
		}
	}
}

func hasType(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	}
	return false
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestSchemaValidatorRejects proves the validator catches what the schema
// forbids, so that a pass in TestPush means something.
func TestSchemaValidatorRejects(t *testing.T) {
	s := loadSchema(t, "testdata/modelpack-config-schema.json")
	valid := `{"descriptor":{"createdAt":"2025-01-01T00:00:00Z","name":"m"},"config":{"format":"gguf"},"modelfs":{"type":"layers","diffIds":["sha256:00"]}}`
	if errs := s.validate([]byte(valid)); len(errs) != 0 {
		t.Fatalf("valid config refused: %v", errs)
	}
	for name, doc := range map[string]string{
		"missing modelfs":    `{"descriptor":{},"config":{}}`,
		"missing descriptor": `{"config":{},"modelfs":{"type":"layers","diffIds":["sha256:00"]}}`,
		"unknown top key":    `{"descriptor":{},"config":{},"modelfs":{"type":"layers","diffIds":["x"]},"rootfs":{}}`,
		"snake case diffids": `{"descriptor":{},"config":{},"modelfs":{"type":"layers","diff_ids":["x"]}}`,
		"no diffIds":         `{"descriptor":{},"config":{},"modelfs":{"type":"layers","diffIds":[]}}`,
		"wrong fs type":      `{"descriptor":{},"config":{},"modelfs":{"type":"rootfs","diffIds":["x"]}}`,
		"bad createdAt":      `{"descriptor":{"createdAt":"yesterday"},"config":{},"modelfs":{"type":"layers","diffIds":["x"]}}`,
		"empty name":         `{"descriptor":{"name":""},"config":{},"modelfs":{"type":"layers","diffIds":["x"]}}`,
		"size in config":     `{"descriptor":{},"config":{"size":"1GiB"},"modelfs":{"type":"layers","diffIds":["x"]}}`,
		"format not string":  `{"descriptor":{},"config":{"format":1},"modelfs":{"type":"layers","diffIds":["x"]}}`,
	} {
		if errs := s.validate([]byte(doc)); len(errs) == 0 {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
}
