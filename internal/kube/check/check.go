package check

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"trellis.dev/trellis/internal/kube/install"
)

// MinVersion is the oldest Kubernetes minor version Trellis supports: native
// sidecars (init containers with restartPolicy Always) are on by default from 1.29.
const MinVersion = "1.29"

// Status is the outcome of one check.
type Status string

// The statuses. Warn does not fail the command.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one check's outcome.
type Result struct {
	Name   string
	Status Status
	Detail string
}

// Config says what to check and with which clients.
type Config struct {
	// Client and Dynamic reach the API server; required.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Namespace is the control plane's namespace; default install.DefaultNamespace.
	Namespace string
	// MonitoringURL is the monitoring address (http://host:port) of a control plane
	// running outside the cluster; Post GETs its /ready. Optional.
	MonitoringURL string
	// HTTP fetches MonitoringURL; default http.DefaultClient.
	HTTP *http.Client
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = install.DefaultNamespace
	}
	if c.HTTP == nil {
		c.HTTP = http.DefaultClient
	}
	return c
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Installed says whether Trellis is installed: its injector webhook configuration
// exists.
func Installed(ctx context.Context, cfg Config) (bool, error) {
	_, err := cfg.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, install.InjectorName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("looking for MutatingWebhookConfiguration %s: %w", install.InjectorName, err)
	}
	return true, nil
}

// Pre checks the cluster's prerequisites for an install. When the API server does
// not answer, that is the only result.
func Pre(ctx context.Context, cfg Config) []Result {
	cfg = cfg.withDefaults()
	info, err := cfg.Client.Discovery().ServerVersion()
	if err != nil {
		return []Result{{"API server reachable", Fail, err.Error()}}
	}
	out := []Result{{"API server reachable", OK, "version " + info.GitVersion}}
	out = append(out, versionResult(info.Major, info.Minor))
	out = append(out, permissions(ctx, cfg)...)
	out = append(out, admission(ctx, cfg))
	return out
}

// versionResult checks major.minor against MinVersion.
func versionResult(major, minor string) Result {
	name := "Kubernetes version >= " + MinVersion
	maj, err1 := strconv.Atoi(strings.TrimSuffix(major, "+"))
	mnr, err2 := strconv.Atoi(strings.TrimSuffix(minor, "+"))
	if err1 != nil || err2 != nil {
		return Result{name, Warn, fmt.Sprintf("cannot read version %q.%q", major, minor)}
	}
	wantMinor, _ := strconv.Atoi(strings.TrimPrefix(MinVersion, "1."))
	if maj < 1 || (maj == 1 && mnr < wantMinor) {
		return Result{name, Fail, fmt.Sprintf("%d.%d: native sidecars need %s or later", maj, mnr, MinVersion)}
	}
	return Result{name, OK, fmt.Sprintf("%d.%d", maj, mnr)}
}

// access is one thing install creates.
type access struct {
	group, resource string
	namespaced      bool
}

var installAccess = []access{
	{"apiextensions.k8s.io", "customresourcedefinitions", false},
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", false},
	{"admissionregistration.k8s.io", "validatingwebhookconfigurations", false},
	{"rbac.authorization.k8s.io", "clusterroles", false},
	{"rbac.authorization.k8s.io", "clusterrolebindings", false},
	{"", "namespaces", false},
	{"rbac.authorization.k8s.io", "roles", true},
	{"rbac.authorization.k8s.io", "rolebindings", true},
	{"", "serviceaccounts", true},
	{"", "services", true},
	{"apps", "deployments", true},
	{"policy", "poddisruptionbudgets", true},
}

// permissions asks, with one SelfSubjectAccessReview each, whether the caller may
// create what install creates.
func permissions(ctx context.Context, cfg Config) []Result {
	var out []Result
	for _, a := range installAccess {
		attrs := &authorizationv1.ResourceAttributes{Verb: "create", Group: a.group, Resource: a.resource}
		where := ""
		if a.namespaced {
			attrs.Namespace = cfg.Namespace
			where = " in " + cfg.Namespace
		}
		name := "may create " + qualified(a.group, a.resource) + where
		review, err := cfg.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}},
			metav1.CreateOptions{})
		switch {
		case err != nil:
			out = append(out, Result{name, Fail, "SelfSubjectAccessReview: " + err.Error()})
		case !review.Status.Allowed:
			out = append(out, Result{name, Fail, orText(review.Status.Reason, "denied")})
		default:
			out = append(out, Result{name, OK, ""})
		}
	}
	return out
}

func qualified(group, resource string) string {
	if group == "" {
		return resource
	}
	return resource + "." + group
}

// admission checks that the webhook admission API is served and that a dry-run
// create of a ConfigMap goes through the admission chain.
func admission(ctx context.Context, cfg Config) Result {
	name := "admission webhooks answer"
	list, err := cfg.Client.Discovery().ServerResourcesForGroupVersion("admissionregistration.k8s.io/v1")
	if err != nil {
		return Result{name, Fail, "admissionregistration.k8s.io/v1 is not served: " + err.Error()}
	}
	for _, want := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
		if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == want }) {
			return Result{name, Fail, want + " is not served: enable the MutatingAdmissionWebhook and ValidatingAdmissionWebhook admission plugins"}
		}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "trellis-check-"}}
	_, err = cfg.Client.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil && !apierrors.IsForbidden(err) {
		return Result{name, Fail, "a dry-run create through admission failed: " + err.Error()}
	}
	return Result{name, OK, ""}
}

// Post checks an installed mesh.
func Post(ctx context.Context, cfg Config) []Result {
	cfg = cfg.withDefaults()
	out := crds(ctx, cfg)
	out = append(out, controlPlane(ctx, cfg))
	out = append(out, caBundles(ctx, cfg)...)
	out = append(out, injectionNamespaces(ctx, cfg))
	return out
}

// crds checks that the CRD of every kind exists and is Established.
func crds(ctx context.Context, cfg Config) []Result {
	var out []Result
	for _, k := range install.Kinds() {
		name := "CRD " + k.CRDName() + " established"
		u, err := cfg.Dynamic.Resource(crdResource).Get(ctx, k.CRDName(), metav1.GetOptions{})
		if err != nil {
			out = append(out, Result{name, Fail, err.Error()})
			continue
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &crd); err != nil {
			out = append(out, Result{name, Fail, "decoding: " + err.Error()})
			continue
		}
		if !install.Established(&crd) {
			out = append(out, Result{name, Fail, "not Established yet"})
			continue
		}
		out = append(out, Result{name, OK, ""})
	}
	return out
}

// controlPlane checks the Deployment, or the monitoring /ready of a control plane
// outside the cluster (the webhooks call a URL).
func controlPlane(ctx context.Context, cfg Config) Result {
	d, err := cfg.Client.AppsV1().Deployments(cfg.Namespace).Get(ctx, install.Name, metav1.GetOptions{})
	switch {
	case err == nil:
		return deploymentResult(d)
	case !apierrors.IsNotFound(err):
		return Result{"control plane", Fail, fmt.Sprintf("reading Deployment %s/%s: %v", cfg.Namespace, install.Name, err)}
	}
	name := "control plane (outside the cluster) ready"
	if cfg.MonitoringURL == "" {
		return Result{name, Warn, fmt.Sprintf("no Deployment %s/%s: the control plane runs outside the cluster; pass --monitoring-url to check its /ready", cfg.Namespace, install.Name)}
	}
	url := strings.TrimSuffix(cfg.MonitoringURL, "/") + "/ready"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Result{name, Fail, err.Error()}
	}
	resp, err := cfg.HTTP.Do(req)
	if err != nil {
		return Result{name, Fail, err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return Result{name, Fail, fmt.Sprintf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))}
	}
	return Result{name, OK, "GET " + url + ": " + strings.TrimSpace(string(body))}
}

func deploymentResult(d *appsv1.Deployment) Result {
	name := fmt.Sprintf("control plane Deployment %s/%s available", d.Namespace, d.Name)
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			if c.Status == corev1.ConditionTrue {
				return Result{name, OK, fmt.Sprintf("%d/%d replicas available", d.Status.AvailableReplicas, d.Status.Replicas)}
			}
			return Result{name, Fail, orText(c.Message, c.Reason)}
		}
	}
	return Result{name, Fail, fmt.Sprintf("no Available condition yet (%d/%d replicas available)", d.Status.AvailableReplicas, d.Status.Replicas)}
}

// caBundles checks that every webhook of both configurations has a caBundle.
func caBundles(ctx context.Context, cfg Config) []Result {
	adm := cfg.Client.AdmissionregistrationV1()
	var out []Result
	var configs []webhookConfig
	m, err := adm.MutatingWebhookConfigurations().Get(ctx, install.InjectorName, metav1.GetOptions{})
	if err != nil {
		out = append(out, Result{"MutatingWebhookConfiguration " + install.InjectorName, Fail, err.Error()})
	} else {
		for _, w := range m.Webhooks {
			configs = append(configs, webhookConfig{"MutatingWebhookConfiguration " + m.Name, w.Name, w.ClientConfig})
		}
	}
	v, err := adm.ValidatingWebhookConfigurations().Get(ctx, install.ValidatorName, metav1.GetOptions{})
	if err != nil {
		out = append(out, Result{"ValidatingWebhookConfiguration " + install.ValidatorName, Fail, err.Error()})
	} else {
		for _, w := range v.Webhooks {
			configs = append(configs, webhookConfig{"ValidatingWebhookConfiguration " + v.Name, w.Name, w.ClientConfig})
		}
	}
	for _, c := range configs {
		name := c.object + " webhook " + c.webhook + " has a caBundle"
		if len(c.client.CABundle) == 0 {
			out = append(out, Result{name, Fail, "empty: the control plane has not written it yet (is it running?) or install lacked --ca-bundle"})
			continue
		}
		out = append(out, Result{name, OK, ""})
	}
	return out
}

type webhookConfig struct {
	object, webhook string
	client          admissionregistrationv1.WebhookClientConfig
}

// injectionNamespaces lists the namespaces labelled for injection.
func injectionNamespaces(ctx context.Context, cfg Config) Result {
	name := "namespaces with " + install.InjectionLabel + "=enabled"
	list, err := cfg.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: install.InjectionLabel + "=enabled"})
	if err != nil {
		return Result{name, Fail, err.Error()}
	}
	var names []string
	for _, ns := range list.Items {
		names = append(names, ns.Name)
	}
	if len(names) == 0 {
		return Result{name, Warn, "none: label one with kubectl label namespace NS " + install.InjectionLabel + "=enabled"}
	}
	slices.Sort(names)
	return Result{name, OK, strings.Join(names, ",")}
}

// Failed counts the results of status Fail.
func Failed(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Status == Fail {
			n++
		}
	}
	return n
}

// Write prints one result a line: status, check, detail.
func Write(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tDETAIL")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, r.Name, orText(r.Detail, "-"))
	}
	return tw.Flush()
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
