package config

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"trellis.dev/trellis/internal/api/v1alpha1"
)

// typeKey is an apiVersion and kind, as a document names them.
type typeKey struct{ apiVersion, kind string }

// decodeFunc decodes one document of its kind (d.decode), applies defaults, validates
// it (d.errorf) and adds the object to d.set.
type decodeFunc func(d *document)

// kinds is every kind Parse accepts. Adding a kind: a type and a field in Set and a
// line in Set.lists (set.go), and a decodeFunc here.
var kinds = kindTable(
	map[typeKey]decodeFunc{
		{v1alpha1.GroupVersion, v1alpha1.KindWorkload}: decodeWorkload,
		{"v1", "Service"}: decodeService,
	},
	istioKinds(),
	gatewayKinds(),
	trellisKinds(),
)

func kindTable(parts ...map[typeKey]decodeFunc) map[typeKey]decodeFunc {
	out := map[typeKey]decodeFunc{}
	for _, p := range parts {
		maps.Copy(out, p)
	}
	return out
}

// addVersions adds each kind of byKind under every group/version of versions.
func addVersions(out map[typeKey]decodeFunc, group string, versions []string, byKind map[string]decodeFunc) {
	for _, v := range versions {
		for kind, f := range byKind {
			out[typeKey{group + "/" + v, kind}] = f
		}
	}
}

// supportedKinds says what a document with an unknown apiVersion and kind could have
// said instead: the apiVersions of kind if it is known, else the kinds of apiVersion if
// it is known, else every kind.
func supportedKinds(apiVersion, kind string) string {
	var sameKind, sameVersion []string
	allKinds := map[string]bool{}
	for k := range kinds {
		allKinds[k.kind] = true
		if k.kind == kind {
			sameKind = append(sameKind, k.apiVersion+" "+k.kind)
		}
		if k.apiVersion == apiVersion {
			sameVersion = append(sameVersion, k.apiVersion+" "+k.kind)
		}
	}
	switch {
	case len(sameKind) > 0:
		return "supported: " + strings.Join(slices.Sorted(slices.Values(sameKind)), ", ")
	case len(sameVersion) > 0:
		return "supported: " + strings.Join(slices.Sorted(slices.Values(sameVersion)), ", ")
	}
	return "supported kinds: " + strings.Join(slices.Sorted(maps.Keys(allKinds)), ", ")
}

// metaObject is a pointer to a Kubernetes-style object type: it embeds metav1.ObjectMeta.
type metaObject[T any] interface {
	*T
	GetObjectMeta() metav1.Object
}

// decodeObject is the decodeFunc of a custom resource kind T: it decodes the document
// into a new T, defaults its namespace, checks its metadata (the name a DNS-1123
// subdomain, as for any custom resource) and, with check if not nil, the rest; then add
// puts it in the set.
func decodeObject[T any, PT metaObject[T]](check func(*document, PT), add func(*Set, Position, PT)) decodeFunc {
	return func(d *document) {
		obj := PT(new(T))
		if !d.decode(obj) {
			return
		}
		meta := obj.GetObjectMeta().(*metav1.ObjectMeta)
		defaultMeta(meta)
		validateMeta(d, meta, utilvalidation.IsDNS1123Subdomain)
		if check != nil {
			check(d, obj)
		}
		add(d.set, d.pos(), obj)
	}
}

func sortedKeysOf[K int32 | uint32 | string, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

func uintKey(k uint32) string { return strconv.FormatUint(uint64(k), 10) }
