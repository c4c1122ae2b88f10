package testregistry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// tokenService is the registry's service name, the tokens' audience.
	tokenService = "modelgate-testregistry"
	// tokenIssuer is the iss claim the registry expects.
	tokenIssuer = "modelgate-testregistry-tokens"
	// tokenTTL is how long an issued token is valid.
	tokenTTL = 5 * time.Minute
)

// tokenServer implements the Docker token protocol for one registry: GET
// /token with Basic credentials and scope=repository:NAME:ACTIONS parameters
// answers a JWT granting the intersection of the requested and the allowed
// actions. Distribution verifies the signature through the x5c header: a
// self-signed certificate also listed in its rootcertbundle.
// Reference: https://distribution.github.io/distribution/spec/auth/token/ and
// https://distribution.github.io/distribution/spec/auth/jwt/
type tokenServer struct {
	srv     *httptest.Server
	key     *ecdsa.PrivateKey
	certDER []byte
	bundle  string // path of the PEM root certificate bundle

	users    map[string]string
	actions  map[string][]string
	requests atomic.Int64
}

func newTokenServer(dir string, users map[string]string, actions map[string][]string) (*tokenServer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate token key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: tokenIssuer},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create token certificate: %w", err)
	}
	bundle := filepath.Join(dir, "token-root.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write token root bundle: %w", err)
	}
	ts := &tokenServer{key: key, certDER: der, bundle: bundle, users: users, actions: actions}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	return ts, nil
}

func (ts *tokenServer) realm() string { return ts.srv.URL + "/token" }
func (ts *tokenServer) count() int    { return int(ts.requests.Load()) }
func (ts *tokenServer) close()        { ts.srv.Close() }

// access is one entry of a token's access claim.
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.requests.Add(1)
	if r.Method != http.MethodGet || r.URL.Path != "/token" {
		http.Error(w, "only GET /token", http.StatusNotFound)
		return
	}
	user, pass, ok := r.BasicAuth()
	want, known := ts.users[user]
	if !ok || !known || subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("WWW-Authenticate", `Basic realm="modelgate-testregistry-tokens"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
		return
	}
	allowed, ok := ts.actions[user]
	if !ok {
		allowed = []string{"pull", "push"}
	}
	var grants []access
	for _, scope := range r.URL.Query()["scope"] {
		for _, s := range strings.Split(scope, " ") {
			typ, rest, ok1 := strings.Cut(s, ":")
			i := strings.LastIndex(rest, ":")
			if !ok1 || i < 0 || typ != "repository" {
				continue
			}
			var granted []string
			for _, a := range strings.Split(rest[i+1:], ",") {
				if slices.Contains(allowed, a) {
					granted = append(granted, a)
				}
			}
			if len(granted) > 0 {
				grants = append(grants, access{Type: typ, Name: rest[:i], Actions: granted})
			}
		}
	}
	tok, err := ts.sign(user, grants)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "access_token": tok, "expires_in": int(tokenTTL.Seconds()),
		"issued_at": time.Now().UTC().Format(time.RFC3339),
	})
}

// sign returns a compact ES256 JWS of the claims Distribution checks.
func (ts *tokenServer) sign(subject string, grants []access) (string, error) {
	header := map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)}}
	jti, err := randomHex(8)
	if err != nil {
		return "", err
	}
	now := time.Now()
	if grants == nil {
		grants = []access{}
	}
	claims := map[string]any{
		"iss": tokenIssuer, "sub": subject, "aud": tokenService,
		"exp": now.Add(tokenTTL).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": jti, "access": grants,
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	rr, ss, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	sig := make([]byte, 64) // JWS ES256: r and s, 32 bytes each, big-endian
	rr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return input + "." + enc.EncodeToString(sig), nil
}
