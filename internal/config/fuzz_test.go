package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse parses any bytes as a mesh file. It must not panic; a file it refuses
// gets an ErrorList whose every entry names the file, a line within it (1 to the
// number of lines, when the problem has a place) and what is wrong; a file it
// accepts parses the same way twice.
//
// The seeds are every mesh file of the control plane's golden cases
// (internal/xdsgen/testdata/*/mesh.yaml), the demo mesh, the analyzer's inputs and
// the committed corpus in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	var files []string
	for _, glob := range []string{"../xdsgen/testdata/*/mesh.yaml", "../demo/*.yaml", "../analyze/testdata/*.yaml"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "mesh.yaml"
		set, err := Parse(file, data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not an ErrorList: %T %v", err, err)
			}
			lines := yamlLines(data)
			for _, e := range list {
				if e.Pos.File != file || strings.TrimSpace(e.Msg) == "" || e.Pos.Line < 0 || e.Pos.Line > lines {
					t.Fatalf("error does not say where or what (file has %d lines): %#v", lines, e)
				}
			}
			return
		}
		if set == nil {
			t.Fatal("no error and no set")
		}
		if _, err := Parse(file, data); err != nil {
			t.Fatalf("accepted once, refused the second time: %v", err)
		}
	})
}

// yamlLines is the number of lines of data as YAML counts them: a lone CR, and in
// yaml.v3 NEL, LS and PS, break lines too (the file's editor may agree).
func yamlLines(data []byte) int {
	n := 1 + bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n"))
	for _, r := range []string{"\u0085", "\u2028", "\u2029"} {
		n += strings.Count(string(data), r)
	}
	return n
}
