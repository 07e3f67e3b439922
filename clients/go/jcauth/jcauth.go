// Package jcauth holds what a Go client of journey-conversions presents to the server: its API
// key as per-RPC credentials (metadata "authorization: Bearer <key>", from which the server
// takes the tenant and scope), and TLS or mutual TLS transport credentials. Config and
// ConfigFromEnv put them together into grpc.DialOptions:
//
//	opts, err := jcauth.Config{
//		APIKey: os.Getenv("JC_API_KEY"),
//		TLS:    &jcauth.TLSFiles{CAFile: "ca.pem"},
//	}.DialOptions()
//	conn, err := grpc.Dial("conversions.internal:443", opts...)
//
// grpc-go 1.33 (Debian's) has no insecure.NewCredentials: a plaintext channel is
// grpc.WithInsecure(), and it refuses per-RPC credentials whose RequireTransportSecurity() is
// true, so a key on a plaintext channel is an APIKey with AllowPlaintext.
package jcauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// APIKey sends an API key (jck_<id>_<secret>) with every call as
// "authorization: Bearer <key>". It implements credentials.PerRPCCredentials.
type APIKey struct {
	Key string
	// AllowPlaintext lets the key go over a channel without TLS: only on loopback or a
	// network you trust, since anyone who reads the traffic can use the key.
	AllowPlaintext bool
}

var _ credentials.PerRPCCredentials = APIKey{}

// GetRequestMetadata returns the authorization metadata of each call.
func (k APIKey) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if !k.AllowPlaintext {
		if err := credentials.CheckSecurityLevel(ctx, credentials.PrivacyAndIntegrity); err != nil {
			return nil, fmt.Errorf("jcauth: the API key needs a TLS channel: %w", err)
		}
	}
	return map[string]string{"authorization": "Bearer " + k.Key}, nil
}

// RequireTransportSecurity is true unless AllowPlaintext: grpc.Dial then refuses the key on a
// channel made with grpc.WithInsecure().
func (k APIKey) RequireTransportSecurity() bool { return !k.AllowPlaintext }

// TLSFiles are the PEM files of a TLS channel.
type TLSFiles struct {
	// CAFile verifies the server's certificate; the system's roots when "".
	CAFile string
	// CertFile and KeyFile are the client certificate and its key, for mutual TLS; both or
	// neither. The server takes the tenant (and scope) from the certificate's URI SANs
	// urn:journey-conversions:tenant:<tenant> (and urn:journey-conversions:scope:<scope>).
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry, when it differs from the
	// target's host.
	ServerName string
}

// TransportCredentials are TLS credentials of these files: credentials.NewClientTLSFromFile for
// server-only TLS with a CA file, credentials.NewTLS otherwise.
func (f TLSFiles) TransportCredentials() (credentials.TransportCredentials, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("jcauth: a client certificate and its key go together")
	}
	if f.CertFile == "" && f.CAFile != "" {
		return credentials.NewClientTLSFromFile(f.CAFile, f.ServerName)
	}
	config := &tls.Config{ServerName: f.ServerName, MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("jcauth: the CA file: %w", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("jcauth: no PEM certificate in %s", f.CAFile)
		}
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("jcauth: the client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(config), nil
}

// Config is how a client presents itself: an API key, TLS, both or neither.
type Config struct {
	// APIKey is sent with every call; "" sends none (a development-mode server then takes the
	// tenant from x-tenant-id metadata, a keyed one needs a client certificate instead).
	APIKey string
	// TLS is nil for plaintext.
	TLS *TLSFiles
}

// DialOptions are the grpc.Dial options of the config. Without TLS the channel is plaintext
// and the key, if any, goes in the clear (see APIKey.AllowPlaintext).
func (c Config) DialOptions() ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if c.TLS == nil {
		opts = append(opts, grpc.WithInsecure())
	} else {
		creds, err := c.TLS.TransportCredentials()
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(creds))
	}
	if c.APIKey != "" {
		key := APIKey{Key: c.APIKey, AllowPlaintext: c.TLS == nil}
		opts = append(opts, grpc.WithPerRPCCredentials(key))
	}
	return opts, nil
}

// Identified reports whether calls carry an identity of their own (a key or a client
// certificate); if not, only a server in development mode takes them, by x-tenant-id.
func (c Config) Identified() bool {
	return c.APIKey != "" || (c.TLS != nil && c.TLS.CertFile != "")
}

// ConfigFromEnv reads JC_API_KEY, and for TLS JC_TLS_CA, JC_TLS_CERT, JC_TLS_KEY and
// JC_TLS_SERVER_NAME; TLS when any of those is set, or JC_TLS=1 (the system's roots).
func ConfigFromEnv() Config {
	files := TLSFiles{
		CAFile:     os.Getenv("JC_TLS_CA"),
		CertFile:   os.Getenv("JC_TLS_CERT"),
		KeyFile:    os.Getenv("JC_TLS_KEY"),
		ServerName: os.Getenv("JC_TLS_SERVER_NAME"),
	}
	config := Config{APIKey: os.Getenv("JC_API_KEY")}
	if files != (TLSFiles{}) || os.Getenv("JC_TLS") == "1" {
		config.TLS = &files
	}
	return config
}
