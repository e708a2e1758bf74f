package ca_test

import (
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/ca"
)

func TestIssueServing(t *testing.T) {
	clk := newClock()
	authority, err := ca.New(ca.Config{DataDir: t.TempDir(), Logger: testLogger(t), Now: clk.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cert, err := authority.IssueServing([]string{"trellis-control.trellis-system.svc", "localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatalf("IssueServing: %v", err)
	}
	leaf := cert.Leaf
	if diff := cmp.Diff([]string{"trellis-control.trellis-system.svc", "localhost"}, leaf.DNSNames); diff != "" {
		t.Errorf("DNS SANs (-want +got):\n%s", diff)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("IP SANs = %v, want [127.0.0.1]", leaf.IPAddresses)
	}
	if len(leaf.URIs) != 0 {
		t.Errorf("URI SANs = %v, want none", leaf.URIs)
	}
	pool := x509.NewCertPool()
	for _, r := range authority.TrustBundle() {
		pool.AddCert(r)
	}
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: clk.Now()}); err != nil {
			t.Errorf("verifying for %s: %v", name, err)
		}
	}
	if _, err := authority.IssueServing(nil, time.Hour); err == nil {
		t.Error("IssueServing with no names succeeded")
	}
}
