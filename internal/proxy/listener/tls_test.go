package listener

import (
	"io"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPeek(t *testing.T) {
	tests := []struct {
		name    string
		writes  [][]byte
		wantTLS bool
	}{
		{name: "client hello", writes: [][]byte{{22, 3, 1, 0, 5, 'h', 'e', 'l', 'l', 'o'}}, wantTLS: true},
		{name: "client hello split", writes: [][]byte{{22}, {3, 3, 0}}, wantTLS: true},
		{name: "http", writes: [][]byte{[]byte("GET / HTTP/1.1\r\n\r\n")}},
		{name: "h2c preface", writes: [][]byte{[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")}},
		{name: "handshake record of another version", writes: [][]byte{{22, 2, 0}}},
		{name: "one byte then end", writes: [][]byte{{22}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			var sent []byte
			go func() {
				for _, w := range tt.writes {
					client.Write(w)
				}
				client.Close()
			}()
			for _, w := range tt.writes {
				sent = append(sent, w...)
			}
			pc, err := peek(server, InspectTimeout)
			if err != nil {
				t.Fatalf("peek: %v", err)
			}
			if got := pc.isTLS(); got != tt.wantTLS {
				t.Errorf("isTLS = %v, want %v", got, tt.wantTLS)
			}
			got, err := io.ReadAll(pc)
			if err != nil {
				t.Fatalf("reading after peek: %v", err)
			}
			if diff := cmp.Diff(sent, got); diff != "" {
				t.Errorf("bytes read after peek (-want +got):\n%s", diff)
			}
		})
	}
}
