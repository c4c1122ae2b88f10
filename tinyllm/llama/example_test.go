package llama_test

import (
	"fmt"
	"log"

	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/llama"
	"github.com/modelgate/modelgate/tinyllm/tensor"
)

// Greedy decoding: evaluate the prompt, then feed back the most likely
// token. The prompt is "Once upon a time" as the model's tokenizer encodes
// it, after the BOS token 1.
func Example() {
	g, err := gguf.Open("../../examples/stories260K/model.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	m, err := llama.Load(g, llama.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close() // before g.Close, deferred after it

	s := m.NewSession(0)
	logits, err := s.Eval([]int32{1, 403, 407, 261, 378})
	for i := 0; i < 8 && err == nil; i++ {
		next := int32(tensor.Argmax(logits))
		fmt.Print(next, " ")
		logits, err = s.Eval([]int32{next})
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("at position", s.Pos())
	// Output: 432 383 286 261 376 298 315 421 at position 13
}
