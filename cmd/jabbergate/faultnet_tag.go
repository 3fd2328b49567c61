//go:build faultnet

package main

// Built with -tags faultnet (the fault-injection tests do), the binary also
// links the test-only "fault" network (legacy/legacytest/faultnet) and
// accepts it in the config.

import (
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/legacy/legacytest/faultnet"
)

func init() { config.RegisterNetwork(faultnet.Name) }
