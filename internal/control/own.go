package control

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/xdsgen"
)

// ownCache keeps every proxy's own resources (xdsgen.GenerateOwn) from one
// translation to the next, with the inputs they were generated from, so that a
// translation regenerates only the proxies whose inputs changed, and the xDS server
// recognises the unchanged resources by their pointers without serializing them
// again. Owned by the translator's goroutine.
//
// The inputs of a proxy's own resources are its registration, the mesh's
// policies (security, rate limits, Sidecars: ownPolicies), which services its ports
// are endpoints of (for policies that target services), and its ports' detected
// protocols. A proxy with upstream binds also depends on the services and clusters
// it binds to: it is always regenerated.
type ownCache struct {
	entries map[string]ownEntry // by node ID
}

type ownEntry struct {
	key string
	res *xdsgen.Resources
	err error
}

// ownInputs is what the own resources of every proxy depend on, for one mesh.
type ownInputs struct {
	// policies is a hash of the mesh's policies (every proxy's key holds it).
	policies string
	// serves lists, by node ID, the service ports whose endpoints the node is.
	serves map[string][]string
}

func newOwnInputs(mesh *model.Mesh) ownInputs {
	in := ownInputs{serves: map[string][]string{}}
	b, err := json.Marshal(struct {
		TrustDomain, RootNamespace string
		PathNormalization          model.PathNormalization
		PeerAuthentications        []*model.PeerAuthPolicy
		AuthzPolicies              []*model.AuthzPolicy
		JWTPolicies                []*model.JWTPolicy
		ExtAuthz                   []model.ExtAuthzProvider
		RateLimits                 []*model.RateLimitRule
		RateLimitService           *model.RateLimitService
		Sidecars                   []*model.Sidecar
	}{mesh.TrustDomain, mesh.RootNamespace, mesh.PathNormalization, mesh.PeerAuthentications, mesh.AuthzPolicies,
		mesh.JWTPolicies, mesh.ExtAuthz, mesh.RateLimits, mesh.RateLimitService, mesh.Sidecars})
	if err != nil {
		// Nothing to compare: no proxy's own resources are reused.
		return ownInputs{}
	}
	sum := sha256.Sum256(b)
	in.policies = hex.EncodeToString(sum[:])
	for _, svc := range mesh.Services {
		for _, port := range svc.Ports {
			for _, ep := range port.Endpoints {
				if ep.NodeID != "" {
					in.serves[ep.NodeID] = append(in.serves[ep.NodeID], fmt.Sprintf("%s:%d@%s", svc.FQDN, port.Number, ep.Address))
				}
			}
		}
	}
	return in
}

// key is the inputs of p's own resources, or "" if they cannot be reused.
func (in ownInputs) key(mesh *model.Mesh, inst registry.Instance, p *model.Proxy) string {
	if in.policies == "" || len(p.Upstreams) > 0 {
		return ""
	}
	md, err := json.Marshal(inst.Metadata)
	if err != nil {
		return ""
	}
	var b strings.Builder
	b.Write(md)
	for _, port := range p.Inbound {
		fmt.Fprintf(&b, "|%d=%s", port.Port, mesh.InboundProtocol(p.ID, port))
	}
	b.WriteString("|" + strings.Join(in.serves[p.ID], ","))
	b.WriteString("|" + in.policies)
	return b.String()
}
