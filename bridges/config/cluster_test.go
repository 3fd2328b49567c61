package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/config"
)

const clusterBase = `xmpp:
  server: localhost:5347
bridges:
  - network: echo
    domain: echo.localhost
    secret: s
    multi_link: true
access:
  allowed_domains: [localhost]
`

const clusterRedis = `store:
  backend: redis
  redis:
    url: redis://127.0.0.1:6379
vault:
  key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
`

func TestCluster(t *testing.T) {
	c, err := config.Parse("t.yaml", []byte(clusterBase+clusterRedis+"cluster:\n  enabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cluster.Enabled || c.Cluster.LeaseTTL != 15*time.Second || c.Cluster.Instance != "" || !c.Bridges[0].MultiLink {
		t.Errorf("cluster = %+v, multi_link %v", c.Cluster, c.Bridges[0].MultiLink)
	}
	c, err = config.Parse("t.yaml", []byte(clusterBase+clusterRedis+"cluster:\n  enabled: true\n  instance: gw-2\n  lease_ttl: 3s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Instance != "gw-2" || c.Cluster.LeaseTTL != 3*time.Second {
		t.Errorf("cluster = %+v", c.Cluster)
	}
	for _, tc := range []struct{ yaml, want string }{
		{clusterBase + "cluster:\n  enabled: true\n", "t.yaml:11: cluster.enabled: needs store.backend: redis"},
		{clusterBase + clusterRedis + "cluster:\n  enabled: true\n  lease_ttl: 500ms\n", "t.yaml:18: cluster.lease_ttl: must be at least 1s"},
		{clusterBase + clusterRedis + "cluster:\n  instance: gw 1\n", "t.yaml:17: cluster.instance: must not contain white space"},
		{clusterBase + clusterRedis + "cluster:\n  enabeld: true\n", "cluster.enabeld: unknown key"},
	} {
		_, err := config.Parse("t.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error = %v, want %q", err, tc.want)
		}
	}
}
