//go:build race

package main

func init() { binBuildFlags = append(binBuildFlags, "-race") }
