package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/certinfo"
)

func newProxyConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy-config",
		Short: "Show a sidecar's configuration, read from its admin endpoint",
		Long: `proxy-config prints what a sidecar has accepted, read from its admin endpoint:
listeners, routes, clusters and endpoints (GET /config_dump) and secret (GET /certs).
The sidecar is TARGET, a workload of trellis up's --state file, or --admin ADDR. In
Kubernetes, forward a pod's admin port first (kubectl port-forward POD 15000) and pass
--admin 127.0.0.1:15000.`,
		Args: cobra.NoArgs,
	}
	for _, s := range dumpSections {
		cmd.AddCommand(newProxyConfigDumpCmd(s.name, s.short, s.write))
	}
	cmd.AddCommand(newProxyConfigSecretCmd())
	return cmd
}

func newProxyConfigSecretCmd() *cobra.Command {
	var (
		target proxyTarget
		output string
	)
	cmd := &cobra.Command{
		Use:   "secret (TARGET --state FILE | --admin ADDR)",
		Short: "Show a sidecar's certificates and trust bundle: chain, SANs, serial, expiry",
		Long: `secret reads GET /certs from a sidecar's admin address (--admin, or the "admin" of
workload TARGET in trellis up's --state file) and prints its workload certificate
(the chain as presented), when it renews it, and the roots it trusts (ROOTCA).
A pod's sidecar is not reachable directly: run kubectl port-forward POD 15000 and
pass --admin 127.0.0.1:15000.`,
		Example: `  trellis proxy-config secret --admin 127.0.0.1:40003
  trellis proxy-config secret web --state state.json -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			admin, err := target.resolve(args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			raw, certs, err := fetchCerts(ctx, admin)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			case "table", "":
				return writeSecretTable(cmd.OutOrStdout(), certs)
			}
			return fmt.Errorf("--output: %q is not table or json", output)
		},
	}
	target.flags(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// fetchCerts reads and decodes GET /certs from a sidecar's admin address.
func fetchCerts(ctx context.Context, admin string) ([]byte, certinfo.Certs, error) {
	var certs certinfo.Certs
	url := "http://" + admin + certinfo.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, certs, fmt.Errorf("reading %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, certs, fmt.Errorf("reading %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, certs, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, certs, fmt.Errorf("reading %s: %s: %s", url, resp.Status, strings.TrimSpace(string(raw)))
	}
	if err := json.Unmarshal(raw, &certs); err != nil {
		return nil, certs, fmt.Errorf("decoding %s: %w", url, err)
	}
	return raw, certs, nil
}

// writeSecretTable prints certificates and roots, one line per certificate.
func writeSecretTable(w io.Writer, c certinfo.Certs) error {
	if c.Identity != "" {
		fmt.Fprintf(w, "Identity: %s\n", c.Identity)
	} else {
		fmt.Fprintln(w, "Identity: none yet (no certificate)")
	}
	for _, cert := range c.Certificates {
		if !cert.RenewAt.IsZero() {
			fmt.Fprintf(w, "Secret %s: received %s, renews at %s\n", cert.Name, stamp(cert.Received), stamp(cert.RenewAt))
		}
	}
	if c.TrustBundle != nil && c.TrustBundle.Version != "" {
		fmt.Fprintf(w, "Trust bundle %s: version %s, %d root(s)\n", c.TrustBundle.Name, c.TrustBundle.Version, len(c.TrustBundle.Roots))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECRET\tCERT\tSUBJECT / SANS\tISSUER\tSERIAL\tNOT BEFORE\tNOT AFTER\tSHA-256")
	row := func(secret, kind string, x certinfo.Cert) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", secret, kind, subjectOrSANs(x), orDash(x.Issuer),
			x.Serial, stamp(x.NotBefore), stamp(x.NotAfter), short(x.SHA256))
	}
	for _, cert := range c.Certificates {
		for i, x := range cert.Chain {
			kind := "leaf"
			if i > 0 {
				kind = "intermediate"
			}
			row(cert.Name, kind, x)
		}
	}
	if c.TrustBundle != nil {
		for _, x := range c.TrustBundle.Roots {
			row(c.TrustBundle.Name, "root", x)
		}
	}
	return tw.Flush()
}

// subjectOrSANs names a certificate: its SANs when it has some (a workload
// certificate's SPIFFE ID), else its subject.
func subjectOrSANs(x certinfo.Cert) string {
	sans := append(append(append([]string{}, x.URIs...), x.DNSNames...), x.IPAddresses...)
	if len(sans) > 0 {
		return strings.Join(sans, ",")
	}
	return orDash(x.Subject)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// short is the first 16 hex digits of a fingerprint: enough to tell roots apart.
func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}
