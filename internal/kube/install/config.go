package install

import "fmt"

// Defaults of Config.
const (
	DefaultNamespace = "trellis-system"
	DefaultImage     = "trellis.dev/trellis:dev"
	DefaultReplicas  = 2
)

// Names of the objects Install creates, in the control plane's namespace unless they
// are cluster-scoped.
const (
	// Name is the name of the ServiceAccount, Role(Binding), ClusterRole(Binding),
	// Deployment, PodDisruptionBudget and Service.
	Name = "trellis"
	// InjectorName is the MutatingWebhookConfiguration's name.
	InjectorName = "trellis-sidecar-injector"
	// ValidatorName is the ValidatingWebhookConfiguration's name.
	ValidatorName = "trellis-validator"
)

// Labels and annotations users and the webhooks rely on.
const (
	// InjectionLabel on a namespace turns injection on for its pods: trellis-injection=enabled.
	InjectionLabel = "trellis-injection"
	// InjectLabel on a pod ("false") opts that pod out of injection.
	InjectLabel = "sidecar.trellis.dev/inject"
	// ManagedByLabel marks every object Install creates (value Name), so that Uninstall
	// removes only those, and Install never takes over a CRD someone else installed.
	ManagedByLabel = "app.kubernetes.io/managed-by"
)

// The control plane's ports (docs: DESIGN.md §5).
const (
	XDSPort        = 15012
	WebhookPort    = 15017
	MonitoringPort = 15014
)

// Webhook paths, as internal/kube/webhook serves them.
const (
	InjectPath   = "/inject"
	ValidatePath = "/validate"
)

// Config says what to install.
type Config struct {
	// Namespace is the control plane's namespace. Default trellis-system.
	Namespace string
	// Image is the trellis image the control plane runs. Default trellis.dev/trellis:dev.
	Image string
	// Replicas of the control plane Deployment. Default 2.
	Replicas int32
	// ControlPlaneURL, when set, is a control plane running outside the cluster (for
	// development and tests): no Deployment or PodDisruptionBudget is installed, and
	// the webhooks call ControlPlaneURL+"/inject" and ControlPlaneURL+"/validate".
	ControlPlaneURL string
	// CABundle is the PEM bundle the API server verifies the webhook server with. Empty
	// in a normal install: the control plane keeps it current. While it is empty the
	// validating webhook fails open (failurePolicy Ignore); the injector always fails
	// closed, so that no pod of a meshed namespace starts without its sidecar.
	CABundle []byte
	// RateLimit installs the rate-limit service for Global rate-limit rules (Deployment
	// and Service trellis-ratelimit, counting in Redis at RedisAddr) and points the
	// control plane at it (--ratelimit-addr).
	RateLimit bool
	// RedisAddr is the Redis host:port of the rate-limit service; required with
	// RateLimit, and only used with it.
	RedisAddr string
}

// withDefaults fills in the defaults and checks what cannot be defaulted.
func (c Config) withDefaults() (Config, error) {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Image == "" {
		c.Image = DefaultImage
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Replicas < 0 {
		return c, fmt.Errorf("replicas %d is negative", c.Replicas)
	}
	if c.RateLimit && c.RedisAddr == "" {
		return c, fmt.Errorf("the rate-limit service needs a Redis address (--redis-addr HOST:PORT, Helm value rateLimit.redisAddr)")
	}
	if !c.RateLimit && c.RedisAddr != "" {
		return c, fmt.Errorf("a Redis address (%s) is only used with the rate-limit service (--ratelimit, Helm value rateLimit.enabled)", c.RedisAddr)
	}
	return c, nil
}
