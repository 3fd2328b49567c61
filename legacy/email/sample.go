package email

import _ "embed"

// Sample is a sample bridge section for the configuration file.
//
//go:embed sample.yaml
var Sample string
