package chat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/tokenizer"
)

const demoModel = "../../examples/stories260K/model.gguf"

// conversation is system + user + assistant + user; the last message ends
// in a newline to show which templates trim contents.
var conversation = []Message{
	{Role: "system", Content: "You are a helpful assistant."},
	{Role: "user", Content: "Hello!"},
	{Role: "assistant", Content: "Hi there. How can I help?"},
	{Role: "user", Content: "Tell me a story.\n"},
}

func readTemplate(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".jinja"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRealTemplates renders the chat templates of well-known model
// families, written into testdata/ from their public tokenizer_config.json
// files. The expected strings are what Python's Jinja2 3.1 renders with
// Hugging Face's settings (trim_blocks, lstrip_blocks) for the same input.
func TestRealTemplates(t *testing.T) {
	tests := []struct {
		file, bos, eos string
		want           string
	}{
		{"chatml", "", "<|im_end|>",
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n" +
				"<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n<|im_start|>user\nTell me a story.\n<|im_end|>\n" +
				"<|im_start|>assistant\n"},
		{"llama3-instruct", "<|begin_of_text|>", "<|eot_id|>",
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nTell me a story.<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"llama2-chat", "<s>", "</s>",
			"<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi there. How can I help? </s>" +
				"<s>[INST] Tell me a story. [/INST]"},
		{"mistral-instruct", "<s>", "</s>",
			"<s>[INST] Hello![/INST] Hi there. How can I help?</s>[INST] You are a helpful assistant.\n\nTell me a story.\n[/INST]"},
		{"gemma3", "<bos>", "<eos>",
			"<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n" +
				"<start_of_turn>model\nHi there. How can I help?<end_of_turn>\n" +
				"<start_of_turn>user\nTell me a story.<end_of_turn>\n<start_of_turn>model\n"},
		{"phi3", "<s>", "<|endoftext|>",
			"<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n" +
				"<|assistant|>\nHi there. How can I help?<|end|>\n<|user|>\nTell me a story.\n<|end|>\n<|assistant|>\n"},
		{"zephyr", "<s>", "</s>",
			"<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello!</s>\n" +
				"<|assistant|>\nHi there. How can I help?</s>\n<|user|>\nTell me a story.\n</s>\n<|assistant|>\n"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			src := readTemplate(t, tt.file)
			tmpl, err := Parse(src, tt.bos, tt.eos)
			if err != nil {
				t.Fatal(err)
			}
			if tmpl.Source() != src {
				t.Error("Source differs from the parsed text")
			}
			got, err := tmpl.Apply(conversation, true)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Apply =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestTemplateFeatures covers the Jinja that chat templates rely on. The
// expected strings are Python Jinja2 3.1's, as for TestRealTemplates.
func TestTemplateFeatures(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"loop.last", "{% for m in messages %}{{ m.role }}{% if not loop.last %},{% endif %}{% endfor %}",
			"system,user,assistant,user"},
		{"loop counters", "{% for m in messages %}{{ loop.index }}{{ loop.first }}{{ loop.length }};{% endfor %}",
			"1True4;2False4;3False4;4False4;"},
		{"namespace", "{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m['role'] == 'assistant' %}" +
			"{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.found }} {{ ns.n }}", "True 4"},
		{"indexing", "{{ messages[0]['role'] }}|{{ messages[-1].role }}|{{ messages|length }}", "system|user|4"},
		{"slicing", "{% for m in messages[1:] %}{{ m.role[0] }}{% endfor %}", "uau"},
		{"special tokens", "{{ bos_token }}x{{ eos_token }}", "<s>x</s>"},
		{"strip and trim", "[{{ '  a b \n'.strip() }}][{{ ' c '|trim }}][{{ 'xx'.lstrip('x') }}][{{ ' y '.rstrip() }}]",
			"[a b][c][][ y]"},
		{"whitespace control", "a  {%- if true -%}  b  {%- endif -%}  c\n{{- ' d ' -}}\n e", "abc d e"},
		{"trim_blocks and lstrip_blocks", "<\n  {% if true %}\n    x\n  {% endif %}\n>", "<\n    x\n>"},
		{"is defined", "{% if foo is defined %}yes{% else %}no{% endif %}{% if messages is defined %}Y{% endif %}{{ foo is none }}",
			"noYFalse"},
		{"string methods", "{{ 'abc'.startswith('a') }}{{ 'abc'.endswith('bc') }}{{ 'a,b'.split(',')|join('+') }}" +
			"{{ 'Ab'|upper }}{{ 'Ab'|lower }}{{ 'a' ~ 1 ~ 'b' }}{{ 'hello world'.replace('o','0') }}",
			"TrueTruea+bABaba1bhell0 w0rld"},
		{"tojson", "{{ {'a': 1, 'b': [1, 2, 'x']}|tojson }}", `{"a": 1, "b": [1, 2, "x"]}`},
		{"message order", "{{ messages[0]|tojson }}", `{"role": "system", "content": "You are a helpful assistant."}`},
		{"in", "{{ 'sys' in 'system' }}{{ 'x' in ['x'] }}{{ 'role' in messages[0] }}", "TrueTrueTrue"},
		{"inline if", "{{ 'a' if add_generation_prompt else 'b' }}", "a"},
		{"macro", "{% macro f(x, y='d') %}<{{ x }}{{ y }}>{% endmacro %}{{ f(1) }}{{ f(2, y='z') }}", "<1d><2z>"},
		{"filters", "{{ messages|map(attribute='role')|join(',') }}|{{ messages|selectattr('role','equalto','user')|list|length }}" +
			"|{{ [3,1,2]|sort|first }}", "system,user,assistant,user|2|1"},
		{"dict methods", "{{ messages[0].get('role') }}{{ messages[0].get('nope', 'dflt') }}{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}",
			"systemdflta=1"},
		{"missing attribute", "{{ messages[0].nope }}|{% if messages[0].tool_calls %}T{% else %}F{% endif %}", "|F"},
		{"arithmetic", "{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 * 3 + 1 }} {{ (1 + 2) * 3 }} {{ 10 / 4 }}", "3 1 7 9 2.5"},
		{"set block", "{% set x %}in{{ 1 }}{% endset %}[{{ x }}]", "[in1]"},
		{"for else and range", "{% for i in [] %}{{ i }}{% else %}empty{% endfor %}{% for i in range(3) %}{{ i }}{% endfor %}" +
			"{{ range(1, 10, 4)|list }}{{ range(3, 0, -1)|list }}", "empty012[1, 5, 9][3, 2, 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Parse(tt.src, "<s>", "</s>")
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Apply(conversation, true)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		msgs     []Message
		op       string
		raised   bool
		contains string
	}{
		{"gemma refuses a system message", readTemplate(t, "gemma"), conversation, "apply", true, "System role not supported"},
		{"llama 2 wants alternating roles", readTemplate(t, "llama2-chat"),
			[]Message{{Role: "user", Content: "a"}, {Role: "user", Content: "b"}}, "apply", true, "roles must alternate"},
		{"syntax error", "{% if messages %}unclosed", conversation, "parse", false, ""},
		{"unknown filter", "{{ 'a'|frobnicate }}", conversation, "apply", false, "frobnicate"},
		{"library panic becomes an error", "{{ 'a' * -1 }}", conversation, "apply", false, "panicked"},
		{"range is bounded", "{% for i in range(100000000) %}{% endfor %}", conversation, "apply", false, "range too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Parse(tt.src, "<s>", "</s>")
			if err == nil {
				_, err = tmpl.Apply(tt.msgs, true)
			}
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if te.Op != tt.op || te.Template != describe(tt.src) {
				t.Errorf("Op %q, Template %q; want %q, %q", te.Op, te.Template, tt.op, describe(tt.src))
			}
			if errors.Is(err, ErrRaised) != tt.raised {
				t.Errorf("errors.Is(ErrRaised) = %v: %v", !tt.raised, err)
			}
			if !strings.Contains(err.Error(), tt.contains) || !strings.Contains(err.Error(), te.Template) {
				t.Errorf("err %q does not name the template or contain %q", err, tt.contains)
			}
		})
	}
}

func TestFallback(t *testing.T) {
	tests := []struct {
		name string
		msgs []Message
		want string
	}{
		{"one user message", []Message{{Role: "user", Content: "Once upon a time"}}, "Once upon a time"},
		{"system and user", []Message{{Role: "system", Content: "A story."}, {Role: "user", Content: "Once upon a time"}},
			"A story.\nOnce upon a time"},
		{"assistant continues the text", []Message{{Role: "user", Content: "Once upon a time"},
			{Role: "assistant", Content: ", there was a cat."}, {Role: "user", Content: "The cat"}},
			"Once upon a time, there was a cat.\nThe cat"},
		{"no messages", nil, ""},
	}
	g := openDemo(t)
	tmpl, err := FromGGUF(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Source() != "" {
		t.Errorf("Source = %q, want the fallback", tmpl.Source())
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, gen := range []bool{false, true} {
				if got, err := tmpl.Apply(tt.msgs, gen); err != nil || got != tt.want {
					t.Errorf("Apply(gen %v) = %q, %v; want %q", gen, got, err, tt.want)
				}
			}
		})
	}
}

func TestFromGGUFUsesTheModelTemplate(t *testing.T) {
	g := writeGGUF(t, []gguf.KV{
		{Key: "general.name", Value: "tiny-chat"},
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: []string{"<unk>", "<s>", "</s>", "▁a"}},
		{Key: "tokenizer.ggml.token_type", Value: []int32{2, 3, 3, 1}},
		{Key: "tokenizer.chat_template", Value: "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}" +
			"{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}"},
	})
	tok, err := tokenizer.FromGGUF(g)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := FromGGUF(g, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tmpl.Apply([]Message{{Role: "user", Content: "hi"}}, true); err != nil || got != "<s>hi</s>" {
		t.Errorf("Apply = %q, %v", got, err)
	}
	_, err = tmpl.Apply(conversation, true)
	var te *Error
	if !errors.As(err, &te) || !errors.Is(err, ErrRaised) || te.Template != `tokenizer.chat_template of "tiny-chat"` {
		t.Errorf("err = %v", err)
	}
}

func openDemo(t testing.TB) *gguf.File {
	t.Helper()
	g, err := gguf.Open(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func writeGGUF(t testing.TB, meta []gguf.KV) *gguf.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := gguf.Write(f, meta, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// FuzzTemplate feeds arbitrary template sources (a model file is not
// trusted to hold a good one) and message contents (client input) through
// Parse and Apply: errors are fine, panics are not.
func FuzzTemplate(f *testing.F) {
	for _, name := range []string{"chatml", "llama3-instruct", "llama2-chat", "mistral-instruct", "gemma", "gemma3", "phi3", "zephyr"} {
		f.Add(readTemplate(f, name), "Hello {{ not a template }}")
	}
	f.Add("{{ 'a' * -1 }}", "")
	f.Add("{% for m in messages %}{{ m.content|trim|indent(2) }}{% endfor %}", " \xff\n")
	f.Fuzz(func(t *testing.T, src, content string) {
		tmpl, err := Parse(src, "<s>", "</s>")
		if err != nil {
			return
		}
		msgs := []Message{{Role: "system", Content: content}, {Role: "user", Content: content}}
		tmpl.Apply(msgs, true)
	})
}

func TestConcurrentApply(t *testing.T) {
	tmpl, err := Parse(readTemplate(t, "gemma3"), "<bos>", "<eos>")
	if err != nil {
		t.Fatal(err)
	}
	want, err := tmpl.Apply(conversation, true)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				if got, err := tmpl.Apply(conversation, true); err != nil || got != want {
					t.Errorf("Apply = %q, %v", got, err)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
