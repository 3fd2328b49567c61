package main

import (
	"sync"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store"
)

// instanceName is this process's default cluster instance name, the same
// for every bridge of the process.
var instanceName = sync.OnceValue(bridges.DefaultInstance)

// clusterOptions returns the bridges.Cluster of bridge bc, or nil when
// cluster.enabled is off. The config loader already refused a cluster on
// a store that is not shared (bolt); a store without leases is refused
// here by bridges.New.
func (g *gateway) clusterOptions(cfg *config.Config, bc config.Bridge) *bridges.Cluster {
	if !cfg.Cluster.Enabled {
		return nil
	}
	c := &bridges.Cluster{
		Instance:  cfg.Cluster.Instance,
		LeaseTTL:  cfg.Cluster.LeaseTTL,
		MultiLink: bc.MultiLink,
	}
	if c.Instance == "" {
		c.Instance = instanceName()
	}
	c.Leaser, _ = g.raw.(store.Leaser)
	c.Notifier, _ = g.raw.(store.Notifier)
	return c
}
