//go:build !linux

package main

import "os/exec"

// dieWithParent is Linux-only (Pdeathsig); elsewhere the cleanup at exit
// stops the children.
func dieWithParent(*exec.Cmd) {}
