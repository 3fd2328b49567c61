package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd's process end when jgbench does, however it
// ends (a kill, a crash): no gateway or limit is left running.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
