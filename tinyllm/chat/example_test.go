package chat_test

import (
	"fmt"
	"log"

	"github.com/modelgate/modelgate/tinyllm/chat"
)

func ExampleParse() {
	// The ChatML template, as many models ship it in tokenizer.chat_template.
	const chatML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
		"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
	tmpl, err := chat.Parse(chatML, "", "<|im_end|>")
	if err != nil {
		log.Fatal(err)
	}
	prompt, err := tmpl.Apply([]chat.Message{
		{Role: "system", Content: "You are terse."},
		{Role: "user", Content: "Hi!"},
	}, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(prompt)
	// Output:
	// <|im_start|>system
	// You are terse.<|im_end|>
	// <|im_start|>user
	// Hi!<|im_end|>
	// <|im_start|>assistant
}
