package redisurl

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"
)

// maxCAFile bounds what ReadCAFile reads: CA bundles are a few hundred KB.
const maxCAFile = 16 << 20

// ReadCAFile reads tls_ca_file: a PEM file of the certificate authorities a
// rediss:// server is verified with. It fails, naming the file, when the file
// is missing or unreadable, is not a regular file (a device or a pipe would
// block or never end), or holds no PEM certificate.
func ReadCAFile(path string) (*x509.CertPool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err // *fs.PathError: "stat PATH: no such file or directory"
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pem, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, err
	}
	if len(pem) > maxCAFile {
		return nil, fmt.Errorf("%s is larger than %d MiB: not a PEM file of CA certificates", path, maxCAFile>>20)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// CheckTLSCAFile checks a tls_ca_file setting against its redis_url: the
// file must be a readable PEM file of certificates, and the URL a rediss://
// one (a CA file verifies TLS servers only). An empty caFile is fine.
func CheckTLSCAFile(caFile, rawURL string) error {
	if caFile == "" {
		return nil
	}
	if o, err := Parse(rawURL); err != nil || !o.TLS {
		return fmt.Errorf("is set, but redis_url is not a rediss:// URL: a CA file only verifies a TLS server")
	}
	_, err := ReadCAFile(caFile)
	return err
}
