package model

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

var codeSpan = regexp.MustCompile("`([^`]+)`")

// docPath is a field pattern as docs/traffic.md writes it: below spec, without map
// keys, and for a DestinationRule every traffic policy as trafficPolicy.<field>.
func docPath(kind, pattern string) string {
	p := strings.TrimPrefix(FoldPolicyField(kind, pattern), "spec.")
	return strings.ReplaceAll(p, ".*", "")
}

// TestDocsListEveryField keeps docs/traffic.md (and, for PeerAuthentication,
// docs/security.md) and the field tables in step: every
// supported field is documented as supported (a documented field covers the fields
// below it), every known unsupported field is listed as not supported, and every
// field the supported tables document is implemented.
func TestDocsListEveryField(t *testing.T) {
	sections := map[string]string{}
	for _, doc := range []string{"../../docs/traffic.md", "../../docs/security.md", "../../docs/authorization.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range strings.Split(string(data), "\n## ")[1:] {
			title, body, _ := strings.Cut(s, "\n")
			sections[title] = body
		}
	}
	for kind, table := range fieldTables {
		t.Run(kind, func(t *testing.T) {
			section, ok := sections[kind]
			if !ok {
				t.Fatalf("docs/traffic.md and docs/security.md have no section %q", kind)
			}
			supportedPart, unsupportedPart, ok := strings.Cut(section, "### Not supported")
			if !ok {
				t.Fatalf("section %s has no \"### Not supported\"", kind)
			}
			var documented []string
			for _, line := range strings.Split(supportedPart, "\n") {
				cells := strings.Split(line, "|")
				if len(cells) < 3 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
					continue
				}
				for _, m := range codeSpan.FindAllStringSubmatch(cells[1], -1) {
					documented = append(documented, m[1])
				}
			}
			supported := map[string]bool{}
			for _, p := range table.Supported() {
				dp := docPath(kind, p)
				supported[dp] = true
				covered := false
				for _, d := range documented {
					if dp == d || strings.HasPrefix(dp, d+".") || strings.HasSuffix(dp, "."+d) {
						covered = true
						break
					}
				}
				if !covered {
					t.Errorf("supported field %s (%s) is not documented as supported", dp, p)
				}
			}
			for _, d := range documented {
				found := false
				for dp := range supported {
					if dp == d || strings.HasPrefix(dp, d+".") || strings.Contains("."+dp+".", "."+d+".") {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("documented as supported, but not in the table: %s", d)
				}
			}
			// Lines about values ("(value)", "(values)") name supported fields.
			listed, fields := map[string]bool{}, map[string]bool{}
			for _, line := range strings.Split(unsupportedPart, "\n") {
				for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
					listed[m[1]] = true
					if !strings.Contains(line, "(value") {
						fields[m[1]] = true
					}
				}
			}
			for p := range table.why {
				if dp := docPath(kind, p); !listed[dp] {
					t.Errorf("unsupported field %s is not listed under Not supported", dp)
				}
			}
			for l := range fields {
				if supported[l] {
					t.Errorf("%s is listed under Not supported, but it is supported", l)
				}
			}
		})
	}
}
