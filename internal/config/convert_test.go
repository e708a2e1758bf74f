package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Embedded is promoted into sample without a JSON name, as encoding/json does.
type Embedded struct {
	Depth int `json:"depth,omitempty"`
}

// sample exercises the shapes the converter must follow like encoding/json does.
type sample struct {
	metav1.TypeMeta `json:",inline"`
	*Embedded
	Quantity resource.Quantity     `json:"quantity,omitempty"`
	Time     metav1.Time           `json:"time,omitempty"`
	ByIndex  map[int]string        `json:"byIndex,omitempty"`
	Nested   map[string][]Embedded `json:"nested,omitempty"`
	Raw      []byte                `json:"raw,omitempty"`
	Any      any                   `json:"any,omitempty"`
	Ratio    float64               `json:"ratio,omitempty"`
	Small    uint8                 `json:"small,omitempty"`
	On       *bool                 `json:"on,omitempty"`
	Hidden   string                `json:"-"`
	NoTag    string
}

// decodeSample decodes src into a sample the way Parse decodes a document.
func decodeSample(t *testing.T, src string) (*sample, []string) {
	t.Helper()
	var errs ErrorList
	d := &document{file: "s.yaml", set: &Set{}, errs: &errs}
	var got *sample
	if d.load([]byte(src)) {
		got = &sample{}
		if !d.decode(got) {
			got = nil
		}
	}
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return got, msgs
}

func TestConvertTypes(t *testing.T) {
	on := true
	tests := []struct {
		name     string
		src      string
		want     *sample
		wantErrs []string
	}{
		{
			name: "every shape decodes",
			src: lines(
				"apiVersion: test/v1",
				"kind: Pod", // decodeSample decodes any kind into a sample
				"depth: 3",
				"quantity: 250m",
				"time: 2024-01-02T03:04:05Z",
				"byIndex: {1: one, 2: two}",
				"nested: {a: [{depth: 1}]}",
				"raw: aGk=",
				"any: {x: [1, true, null, 2.5]}",
				"ratio: 3",
				"small: 255",
				"on: true",
				"NoTag: plain",
			),
			want: &sample{
				TypeMeta: metav1.TypeMeta{APIVersion: "test/v1", Kind: "Pod"},
				Embedded: &Embedded{Depth: 3},
				Quantity: resource.MustParse("250m"),
				Time:     metav1.NewTime(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)),
				ByIndex:  map[int]string{1: "one", 2: "two"},
				Nested:   map[string][]Embedded{"a": {{Depth: 1}}},
				Raw:      []byte("hi"),
				Any:      map[string]any{"x": []any{float64(1), true, nil, 2.5}},
				Ratio:    3,
				Small:    255,
				On:       &on,
				NoTag:    "plain",
			},
		},
		{
			name: "problems at their lines",
			src: lines(
				"apiVersion: test/v1", // 1
				"kind: Pod",
				"quantity: 12 apples", // 3
				"time: yesterday",     // 4
				"byIndex: {x: one}",   // 5
				"nested:",             // 6
				"  a:",                // 7
				"  - {depth: 1, dept: 2}",
				"small: 256",    // 9
				"on: yes",       // 10
				"ratio: .inf",   // 11
				"Hidden: x",     // 12
				"notag: x",      // 13
				"any: !thing 1", // 14
			),
			wantErrs: []string{
				`s.yaml:3: Pod: quantity: invalid value string "12 apples": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`,
				`s.yaml:4: Pod: time: invalid value string "yesterday": parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`,
				`s.yaml:5: Pod: byIndex.x: wrong type: key must be an integer`,
				`s.yaml:8: Pod: nested.a[0].dept: unknown field (did you mean "depth"?)`,
				`s.yaml:9: Pod: small: 256 is out of range for an unsigned 8-bit integer (0 to 255)`,
				`s.yaml:10: Pod: on: wrong type: expected a boolean (true or false), got string "yes"`,
				`s.yaml:11: Pod: ratio: number .inf cannot be represented in JSON`,
				`s.yaml:12: Pod: Hidden: unknown field`,
				`s.yaml:13: Pod: notag: unknown field (did you mean "NoTag"?)`,
				`s.yaml:14: Pod: any: unsupported YAML tag !thing`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := decodeSample(t, tt.src)
			if diff := cmp.Diff(tt.wantErrs, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAliasBomb(t *testing.T) {
	bomb := "  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h"} { // 10^8 nodes expanded
		bomb += "  " + n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = n
	}
	t.Run("under unknown fields it is not expanded", func(t *testing.T) {
		src := "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selector: {a: b}, ports: [{port: 80}]}\nextra:\n" + bomb
		_, err := Parse("bomb.yaml", []byte(src))
		want := []string{"bomb.yaml:5: Service default/x: extra: unknown field"}
		if diff := cmp.Diff(want, errorStrings(t, err)); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})
	t.Run("under a field that takes anything it hits the node budget", func(t *testing.T) {
		_, errs := decodeSample(t, "apiVersion: v1\nkind: Pod\nany:\n"+bomb)
		if len(errs) != 1 || !strings.Contains(errs[0], "document too large") {
			t.Errorf("errors = %q, want one 'document too large'", errs)
		}
	})
}
