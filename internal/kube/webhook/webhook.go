package webhook

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/kube/inject"
)

// Paths the handler serves.
const (
	InjectPath   = "/inject"
	ValidatePath = "/validate"
)

// maxBody bounds a request body: the API server sends objects of at most about 1.5 MB.
const maxBody = 4 << 20

// Config configures the handlers.
type Config struct {
	// Inject says what the injected containers are made of.
	Inject inject.Config
	// Logger receives one line per refused request and per handler error. Default:
	// discard.
	Logger *slog.Logger
}

// Handler serves the injection webhook on /inject and the validation webhook on
// /validate.
func Handler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+InjectPath, review(cfg.Logger, func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		return injectPod(req, cfg.Inject)
	}))
	mux.Handle("POST "+ValidatePath, review(cfg.Logger, validate))
	return mux
}

// review adapts an admission function to HTTP: it decodes the AdmissionReview, calls
// admit and writes the review back with the response.
func review(log *slog.Logger, admit func(*admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, fmt.Sprintf("reading request body: %v", err), http.StatusRequestEntityTooLarge)
			return
		}
		var in admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, fmt.Sprintf("decoding AdmissionReview: %v", err), http.StatusBadRequest)
			return
		}
		if in.Request == nil {
			http.Error(w, "AdmissionReview has no request", http.StatusBadRequest)
			return
		}
		resp := admit(in.Request)
		resp.UID = in.Request.UID
		if !resp.Allowed {
			log.Info("admission refused", "path", r.URL.Path, "kind", in.Request.Kind.Kind,
				"namespace", in.Request.Namespace, "name", in.Request.Name, "reason", resp.Result.Message)
		}
		out := admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Response: resp,
		}
		data, err := json.Marshal(out)
		if err != nil {
			log.Error("encoding AdmissionReview", "err", err)
			http.Error(w, "encoding AdmissionReview", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
	})
}

func allow() *admissionv1.AdmissionResponse { return &admissionv1.AdmissionResponse{Allowed: true} }

// deny refuses with code (400 for a bad object, 422 for an invalid one) and msg.
func deny(code int32, reason metav1.StatusReason, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result:  &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg},
	}
}
