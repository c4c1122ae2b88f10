package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/tokenizer"
)

func Example() {
	g, err := gguf.Open("../../examples/stories260K/model.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	tok, err := tokenizer.FromGGUF(g)
	if err != nil {
		log.Fatal(err)
	}

	ids := tok.Encode("Once upon a time", true, false)
	fmt.Println(ids)
	var texts []string
	for _, id := range ids {
		texts = append(texts, tok.TokenText(id))
	}
	fmt.Printf("%q\n", texts)

	// Stream generated tokens: text comes out as soon as it is complete.
	d := tok.NewDetokenizer()
	var out []string
	for _, id := range []int32{432, 383, 286, 261, 376, 298, 315, 421} {
		out = append(out, d.Add(id))
	}
	fmt.Printf("%q\n", append(out, d.Flush()))
	// Output:
	// [1 403 407 261 378]
	// ["<s>" "▁Once" "▁upon" "▁a" "▁time"]
	// ["," " there" " was" " a" " little" " g" "ir" "l" ""]
}
