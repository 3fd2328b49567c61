package main

import (
	"path/filepath"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/config"
)

// runGateway parses yaml (a whole config file; its http.listen must be
// g.http) and runs the gateway in-process until the test ends, logging it
// when the test failed.
func runGateway(t *testing.T, g *gatewayProc, yaml string) {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "jabbergate.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g.cfg = cfg
	g.start()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.log.String())
		}
	})
}

func newGatewayProc(t *testing.T) *gatewayProc {
	return &gatewayProc{t: t, log: &lockedBuffer{}, http: freeAddr(t)}
}
