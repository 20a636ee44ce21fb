// Package testutil holds the few helpers several packages' tests share.
package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Buffer is a strings.Builder safe for concurrent writes, for capturing the
// log output of code that logs from several goroutines.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WriteConfig writes content to ushka.toml in a new temporary directory and
// returns its path.
func WriteConfig(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ushka.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
