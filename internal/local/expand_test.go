package local

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpand(t *testing.T) {
	env := envLookup([]string{"PORT=8080", "NAME=echo", "EMPTY=", "PORT=9090"})
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "no reference", in: "--listen", want: "--listen"},
		{name: "reference", in: "127.0.0.1:$(PORT)", want: "127.0.0.1:9090"},
		{name: "two references", in: "$(NAME)-$(PORT)", want: "echo-9090"},
		{name: "empty value", in: "[$(EMPTY)]", want: "[]"},
		{name: "unknown stays as written", in: "$(NOPE):$(PORT)", want: "$(NOPE):9090"},
		{name: "escaped reference", in: "$$(PORT)", want: "$(PORT)"},
		{name: "escaped dollar", in: "a$$b", want: "a$b"},
		{name: "lone dollar", in: "cost $5 $", want: "cost $5 $"},
		{name: "shell syntax is not expanded", in: "${PORT} $PORT", want: "${PORT} $PORT"},
		{name: "unterminated", in: "x$(PORT", want: "x$(PORT"},
		{name: "empty name", in: "$()", want: "$()"},
		{name: "escape then reference", in: "$$$(PORT)", want: "$9090"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, expand(tt.in, env)); diff != "" {
				t.Errorf("expand(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
