package webhook

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/config"
)

// validate decodes the object with internal/config, as a mesh file, and refuses it
// with every problem found.
func validate(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Operation == admissionv1.Delete || req.SubResource != "" || len(req.Object.Raw) == 0 {
		return allow()
	}
	what := req.Kind.Kind + " " + req.Namespace + "/" + req.Name
	doc, err := configDocument(req.Object.Raw)
	if err != nil {
		return deny(http.StatusBadRequest, metav1.StatusReasonBadRequest, what+": decoding: "+err.Error())
	}
	_, err = config.Parse(what, doc)
	if err == nil {
		return allow()
	}
	var list config.ErrorList
	if !errors.As(err, &list) {
		return deny(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, what+" is invalid: "+err.Error())
	}
	return deny(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, what+" is invalid: "+problems(list))
}

// configDocument is the object as a mesh file would hold it: without what the API
// server adds and a user never writes (managedFields, status), which the config
// package does not expect.
func configDocument(raw []byte) ([]byte, error) {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	delete(obj, "status")
	if meta, ok := obj["metadata"].(map[string]any); ok {
		delete(meta, "managedFields")
	}
	return json.Marshal(obj)
}

// problems is every problem, "field: message", separated by "; ".
func problems(list config.ErrorList) string {
	msgs := make([]string, 0, len(list))
	for _, e := range list {
		if e.Field != "" {
			msgs = append(msgs, e.Field+": "+e.Msg)
		} else {
			msgs = append(msgs, e.Msg)
		}
	}
	return strings.Join(msgs, "; ")
}
