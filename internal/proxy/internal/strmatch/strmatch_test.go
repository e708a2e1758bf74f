package strmatch

import "testing"

func TestWhole(t *testing.T) {
	for _, tc := range []struct {
		name, expr, s string
		want          bool
	}{
		{name: "whole", expr: "[0-9]+", s: "42", want: true},
		{name: "not a part", expr: "[0-9]+", s: "a42", want: false},
		{name: "alternation stays inside", expr: "a|b", s: "ab", want: false},
		{name: "quoted to the end", expr: `\Qa.b`, s: "a.b", want: true},
		{name: "quoted, not a pattern", expr: `\Qa.b`, s: "axb", want: false},
		{name: "flags", expr: "(?i)x", s: "X", want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			re, err := Whole(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := re.MatchString(tc.s); got != tc.want {
				t.Errorf("Whole(%q) on %q = %v, want %v", tc.expr, tc.s, got, tc.want)
			}
		})
	}
	for _, bad := range []string{"a)|(b", "(", `\`, "x{1001}"} {
		if _, err := Whole(bad); err == nil {
			t.Errorf("Whole(%q) accepted", bad)
		}
	}
}

func TestFold(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"ascii", EqualFold("Bearer", "bEARER"), true},
		{"kelvin sign is not k", EqualFold("\u212a", "k"), false},
		{"long s is not s", HasPrefixFold("\u017fre", "sre"), false},
		{"suffix", HasSuffixFold("x-ADMIN", "admin"), true},
		{"contains", ContainsFold("the ADMIN role", "admin"), true},
		{"contains, longer", ContainsFold("ad", "admin"), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
