package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		uri     string
		want    ID
		wantErr string
	}{
		{name: "default trust domain", uri: "spiffe://cluster.local/ns/default/sa/reviews",
			want: ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "reviews"}},
		{name: "dotted service account", uri: "spiffe://example.org/ns/shop/sa/bookinfo.reviews-v2",
			want: ID{TrustDomain: "example.org", Namespace: "shop", ServiceAccount: "bookinfo.reviews-v2"}},
		{name: "underscore in trust domain", uri: "spiffe://my_mesh/ns/a/sa/b",
			want: ID{TrustDomain: "my_mesh", Namespace: "a", ServiceAccount: "b"}},
		{name: "other scheme", uri: "https://cluster.local/ns/a/sa/b", wantErr: `scheme must be "spiffe://"`},
		{name: "uppercase scheme", uri: "SPIFFE://cluster.local/ns/a/sa/b", wantErr: "scheme"},
		{name: "uppercase trust domain", uri: "spiffe://Cluster.local/ns/a/sa/b", wantErr: "trust domain: character 'C'"},
		{name: "port", uri: "spiffe://cluster.local:8443/ns/a/sa/b", wantErr: "character ':'"},
		{name: "userinfo", uri: "spiffe://user@cluster.local/ns/a/sa/b", wantErr: "character '@'"},
		{name: "empty trust domain", uri: "spiffe:///ns/a/sa/b", wantErr: "trust domain: empty"},
		{name: "query", uri: "spiffe://cluster.local/ns/a/sa/b?x=1", wantErr: "query and fragment"},
		{name: "fragment", uri: "spiffe://cluster.local/ns/a/sa/b#f", wantErr: "query and fragment"},
		{name: "no path", uri: "spiffe://cluster.local", wantErr: "missing path"},
		{name: "trailing slash", uri: "spiffe://cluster.local/ns/a/sa/b/", wantErr: "path must be"},
		{name: "extra segment", uri: "spiffe://cluster.local/ns/a/sa/b/c", wantErr: "path must be"},
		{name: "swapped keys", uri: "spiffe://cluster.local/sa/a/ns/b", wantErr: "path must be"},
		{name: "double slash", uri: "spiffe://cluster.local//ns/a/sa/b", wantErr: "path must be"},
		{name: "empty namespace", uri: "spiffe://cluster.local/ns//sa/b", wantErr: `namespace "": empty`},
		{name: "dot segment", uri: "spiffe://cluster.local/ns/../sa/b", wantErr: "not a DNS label"},
		{name: "uppercase namespace", uri: "spiffe://cluster.local/ns/Default/sa/b", wantErr: "not a DNS label"},
		{name: "percent encoding", uri: "spiffe://cluster.local/ns/a/sa/b%41", wantErr: "not a DNS subdomain"},
		{name: "dotted namespace", uri: "spiffe://cluster.local/ns/a.b/sa/c", wantErr: "not a DNS label"},
		{name: "leading hyphen", uri: "spiffe://cluster.local/ns/-a/sa/c", wantErr: "not a DNS label"},
		{name: "empty service account label", uri: "spiffe://cluster.local/ns/a/sa/b..c", wantErr: "not a DNS subdomain"},
		{name: "long namespace", uri: "spiffe://cluster.local/ns/" + strings.Repeat("a", 64) + "/sa/b", wantErr: "longer than 63"},
		{name: "too long", uri: "spiffe://cluster.local/ns/a/sa/" + strings.Repeat("a", 2048), wantErr: "longer than 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.uri)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.uri, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.uri, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.uri, diff)
			}
			if got.String() != tt.uri {
				t.Errorf("String() = %q, want %q", got.String(), tt.uri)
			}
			if got.URL().String() != tt.uri {
				t.Errorf("URL().String() = %q, want %q", got.URL().String(), tt.uri)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate(): %v", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		id      ID
		wantErr string
	}{
		{name: "ok", id: New("default", "reviews")},
		{name: "zero", id: ID{}, wantErr: "trust domain"},
		{name: "no namespace", id: ID{TrustDomain: "td", ServiceAccount: "sa"}, wantErr: "namespace"},
		{name: "slash in service account", id: ID{TrustDomain: "td", Namespace: "ns", ServiceAccount: "a/b"}, wantErr: "service account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.id.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(): %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFromCertificate(t *testing.T) {
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	good := "spiffe://cluster.local/ns/default/sa/reviews"
	tests := []struct {
		name    string
		uris    []*url.URL
		want    ID
		wantErr string
	}{
		{name: "one SPIFFE URI", uris: []*url.URL{mustURL(good)}, want: New("default", "reviews")},
		{name: "none", wantErr: "found 0"},
		{name: "two", uris: []*url.URL{mustURL(good), mustURL("spiffe://cluster.local/ns/default/sa/other")}, wantErr: "found 2"},
		{name: "not SPIFFE", uris: []*url.URL{mustURL("https://example.com/x")}, wantErr: "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := selfSigned(t, tt.uris)
			got, err := FromCertificate(cert)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromCertificate() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromCertificate(): %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FromCertificate() (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := FromCertificate(nil); err == nil {
		t.Error("FromCertificate(nil) succeeded")
	}
}

// selfSigned makes a real certificate carrying uris, parsed back from DER so that the
// URIs are what a peer would see.
func selfSigned(t *testing.T, uris []*url.URL) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), URIs: uris}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"spiffe://cluster.local/ns/default/sa/reviews",
		"spiffe://example.org/ns/a/sa/b.c",
		"spiffe://x/ns/a/sa/b?q",
		"spiffe://X:1@y/ns/a/sa/b",
		"spiffe://cluster.local/ns/a/sa/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		id, err := Parse(uri)
		if err != nil {
			return
		}
		if id.String() != uri {
			t.Fatalf("Parse(%q).String() = %q: an ID must have one spelling", uri, id.String())
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted an invalid ID: %v", uri, err)
		}
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatalf("Parse(%q) accepted what net/url rejects: %v", uri, err)
		}
		if u.String() != uri {
			t.Fatalf("net/url respells %q as %q", uri, u.String())
		}
	})
}
