package iptables

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func injectedDefaults() Config {
	return Config{
		ProxyUID: 1337, InboundPort: 15006, OutboundPort: 15001,
		IncludeInboundPorts:  []string{"*"},
		ExcludeInboundPorts:  []int{15020},
		IncludeOutboundCIDRs: []string{"*"},
		DNSPort:              15053,
	}
}

func TestScriptGolden(t *testing.T) {
	lists := injectedDefaults()
	lists.ProxyGID = 1337
	lists.IncludeInboundPorts = []string{"8080", "9090", "15020"}
	lists.ExcludeOutboundPorts = []int{5432}
	lists.IncludeOutboundCIDRs = []string{"10.96.0.0/12", "10.244.1.7/16"}
	lists.ExcludeOutboundCIDRs = []string{"10.96.0.1/32"}
	lists.DNSPort = 0
	tests := []struct {
		name string
		cfg  Config
	}{
		{"injected-defaults", injectedDefaults()},
		{"lists", lists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Script(tt.cfg, true)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Script (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScriptInvalid(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"inbound port", func(c *Config) { c.InboundPort = 0 }, "inbound port 0: out of range 1..65535"},
		{"include port", func(c *Config) { c.IncludeInboundPorts = []string{"http"} }, `include inbound port "http"`},
		{"excluded port", func(c *Config) { c.ExcludeOutboundPorts = []int{70000} }, "excluded port 70000"},
		{"cidr", func(c *Config) { c.ExcludeOutboundCIDRs = []string{"10.0.0.0/33"} }, `IP range "10.0.0.0/33"`},
		{"ipv6", func(c *Config) { c.IncludeOutboundCIDRs = []string{"fd00::/8"} }, "only IPv4"},
		{"dns port", func(c *Config) { c.DNSPort = -1 }, "DNS port -1: out of range 1..65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := injectedDefaults()
			tt.modify(&cfg)
			_, err := Script(cfg, true)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Script error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// NetNS creates a fresh network namespace for a test and removes it at the end; it
// skips the test when not root or when ip/iptables are missing.
func netNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and writes iptables rules in it")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (hack/test-deps.sh installs it)", tool)
		}
	}
	name := fmt.Sprintf("trellis-ipt-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return name
}

func TestApplyInNetNS(t *testing.T) {
	ns := netNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inNS := func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		return Exec(ctx, stdin, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	}
	cfg := injectedDefaults()
	var first string
	for i := range 2 { // the second apply must change nothing
		if _, err := Apply(ctx, cfg, inNS); err != nil {
			t.Fatalf("apply #%d: %v", i+1, err)
		}
		out, err := inNS(ctx, nil, "iptables-save")
		if err != nil {
			t.Fatalf("iptables-save: %v: %s", err, out)
		}
		got := rulesOf(string(out))
		if i == 0 {
			first = got
			continue
		}
		if diff := cmp.Diff(first, got); diff != "" {
			t.Errorf("rules after the second apply (-first +second):\n%s", diff)
		}
	}
	want, err := Script(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	// iptables-save prints rules in chain order; compare as sets of -A lines.
	if diff := cmp.Diff(sortedLines(rulesOf(want)), sortedLines(first)); diff != "" {
		t.Errorf("iptables-save (-want +got):\n%s", diff)
	}
}

// rulesOf keeps the -A lines of an iptables-save or iptables-restore text.
func rulesOf(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "-A ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func sortedLines(s string) []string {
	lines := strings.Split(s, "\n")
	sort.Strings(lines)
	return lines
}
