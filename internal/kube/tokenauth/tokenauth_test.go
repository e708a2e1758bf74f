package tokenauth_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/kube/kubetest"
	"trellis.dev/trellis/internal/kube/tokenauth"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestAuthenticator(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster.CreateNamespace(t, "shop", nil)
	c := cluster.Client
	for _, sa := range []string{"reviews"} {
		if _, err := c.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	token := func(sa, audience string) string {
		tr, err := c.CoreV1().ServiceAccounts("shop").CreateToken(ctx, sa, &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To(int64(600))},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest for %s: %v", sa, err)
		}
		return tr.Status.Token
	}
	clk := &clock{t: time.Now()}
	auth, err := tokenauth.New(tokenauth.Config{Client: c, TrustDomain: "example.org", Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	withAuth := func(values ...string) context.Context {
		md := metadata.MD{}
		for _, v := range values {
			md.Append("authorization", v)
		}
		return metadata.NewIncomingContext(ctx, md)
	}

	tests := []struct {
		name    string
		ctx     context.Context
		want    identity.ID
		refused bool
	}{
		{name: "service account token", ctx: withAuth("Bearer " + token("reviews", "trellis-ca")),
			want: identity.ID{TrustDomain: "example.org", Namespace: "shop", ServiceAccount: "reviews"}},
		{name: "lowercase scheme", ctx: withAuth("bearer " + token("reviews", "trellis-ca")),
			want: identity.ID{TrustDomain: "example.org", Namespace: "shop", ServiceAccount: "reviews"}},
		{name: "another audience", ctx: withAuth("Bearer " + token("reviews", "https://kubernetes.default.svc")), refused: true},
		{name: "not a token", ctx: withAuth("Bearer abc.def.ghi"), refused: true},
		{name: "no bearer scheme", ctx: withAuth(token("reviews", "trellis-ca")), refused: true},
		{name: "two values", ctx: withAuth("Bearer a", "Bearer b"), refused: true},
		{name: "no metadata", ctx: ctx, refused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auth.Authenticate(tc.ctx)
			if tc.refused {
				if !errors.Is(err, tokenauth.ErrUnauthenticated) {
					t.Errorf("Authenticate = %v, %v; want ErrUnauthenticated", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Authenticate = %v, %v; want %v", got, err, tc.want)
			}
		})
	}

	t.Run("cached briefly", func(t *testing.T) {
		// Count the TokenReviews that reach the API server.
		var reviews atomic.Int32
		rc := rest.CopyConfig(cluster.Config)
		rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripper(func(r *http.Request) (*http.Response, error) {
				if strings.HasSuffix(r.URL.Path, "/tokenreviews") {
					reviews.Add(1)
				}
				return rt.RoundTrip(r)
			})
		}
		counted, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := tokenauth.New(tokenauth.Config{Client: counted, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		good, bad := token("reviews", "trellis-ca"), "Bearer abc.def.ghi"
		steps := []struct {
			name        string
			token       string
			advance     time.Duration
			wantReviews int32
			refused     bool
		}{
			{name: "first", token: good, wantReviews: 1},
			{name: "cached", token: good, wantReviews: 1},
			{name: "refused", token: bad, wantReviews: 2, refused: true},
			{name: "refusal cached", token: bad, wantReviews: 2, refused: true},
			{name: "refusal expired", token: bad, advance: tokenauth.DefaultRefuseTTL + time.Second, wantReviews: 3, refused: true},
			{name: "acceptance expired", token: good, advance: tokenauth.DefaultCacheTTL, wantReviews: 4},
		}
		for _, st := range steps {
			clk.advance(st.advance)
			_, err := auth.AuthenticateToken(ctx, st.token)
			if refused := err != nil; refused != st.refused {
				t.Errorf("%s: err = %v, want refused %v", st.name, err, st.refused)
			}
			if got := reviews.Load(); got != st.wantReviews {
				t.Errorf("%s: %d TokenReviews so far, want %d", st.name, got, st.wantReviews)
			}
		}
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
