package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/iptables"
)

func newIptablesCmd() *cobra.Command {
	var (
		cfg                                              iptables.Config
		includeIn, excludeIn, excludeOut, inCIDR, exCIDR string
		dryRun                                           bool
	)
	cmd := &cobra.Command{
		Use:   "iptables",
		Short: "Redirect a pod's TCP traffic through its sidecar (nat rules)",
		Long: `Write the nat rules a pod needs (what the injected trellis-init container runs):
inbound TCP is redirected to --inbound-port, outbound TCP to --outbound-port, except
the proxy's own traffic (--proxy-uid) and loopback. The rules live in the chains
TRELLIS_INBOUND, TRELLIS_IN_REDIRECT, TRELLIS_OUTPUT, TRELLIS_REDIRECT and (with
--dns-port, which sends the pod's DNS queries to the sidecar) TRELLIS_DNS, and are
applied with iptables-restore in one transaction; running it twice is running it once.
--dry-run prints the iptables-restore input instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			cfg.IncludeInboundPorts = splitList(includeIn)
			cfg.IncludeOutboundCIDRs = splitList(inCIDR)
			cfg.ExcludeOutboundCIDRs = splitList(exCIDR)
			if cfg.ExcludeInboundPorts, err = portList("--exclude-inbound-ports", excludeIn); err != nil {
				return err
			}
			if cfg.ExcludeOutboundPorts, err = portList("--exclude-outbound-ports", excludeOut); err != nil {
				return err
			}
			if dryRun {
				s, err := iptables.Script(cfg, true)
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(cmd.OutOrStdout(), s)
				return err
			}
			_, err = iptables.Apply(cmd.Context(), cfg, nil)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.ProxyUID, "proxy-uid", 1337, "UID of the proxy, whose traffic is never redirected")
	f.IntVar(&cfg.ProxyGID, "proxy-gid", 0, "GID of the proxy, whose traffic is never redirected (0: not matched)")
	f.IntVar(&cfg.InboundPort, "inbound-port", 15006, "port inbound TCP is redirected to")
	f.IntVar(&cfg.OutboundPort, "outbound-port", 15001, "port outbound TCP is redirected to")
	f.StringVar(&includeIn, "include-inbound-ports", "*", `inbound ports to redirect, comma-separated, or "*"`)
	f.StringVar(&excludeIn, "exclude-inbound-ports", "", "inbound ports never redirected, comma-separated")
	f.StringVar(&excludeOut, "exclude-outbound-ports", "", "outbound destination ports never redirected, comma-separated")
	f.StringVar(&inCIDR, "include-outbound-ip-ranges", "*", `outbound destination CIDRs to redirect, comma-separated, or "*"`)
	f.StringVar(&exCIDR, "exclude-outbound-ip-ranges", "", "outbound destination CIDRs never redirected, comma-separated")
	f.IntVar(&cfg.DNSPort, "dns-port", 0, "redirect DNS queries (UDP and TCP to port 53), but the proxy's, to this port: the sidecar's DNS server (0: none)")
	f.BoolVar(&dryRun, "dry-run", false, "print the rules (iptables-restore input) instead of applying them")
	return cmd
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

func portList(flag, s string) ([]int, error) {
	var ports []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s: %q is not a port 1..65535", flag, p)
		}
		ports = append(ports, n)
	}
	return ports, nil
}
