package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// cpuSample is CPU time (seconds) and system calls of some processes, and
// host jiffies.
type cpuSample struct {
	proc                map[int]float64
	syscalls            map[int]sysIO
	hostIdle, hostTotal float64
}

// sysIO is a process's read and write system calls so far
// (/proc/PID/io syscr, syscw).
type sysIO struct{ reads, writes float64 }

// procIO returns pid's read and write system calls (zero if unreadable).
func procIO(pid int) sysIO {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return sysIO{}
	}
	var io sysIO
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch k {
		case "syscr":
			io.reads = n
		case "syscw":
			io.writes = n
		}
	}
	return io
}

const clkTck = 100 // USER_HZ on Linux

func sampleCPU(pids []int) cpuSample {
	s := cpuSample{proc: map[int]float64{}, syscalls: map[int]sysIO{}}
	for _, p := range pids {
		s.proc[p] = procCPU(p)
		s.syscalls[p] = procIO(p)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, v := range f[1:] {
			x, _ := strconv.ParseFloat(v, 64)
			s.hostTotal += x
			if i == 3 || i == 4 { // idle, iowait
				s.hostIdle += x
			}
		}
	}
	return s
}

// procCPU returns utime+stime of pid in seconds (0 if gone).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clkTck
}

// peakRSS returns VmHWM of pid in KiB.
func peakRSS(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// pidsMentioning returns the processes whose command line mentions dir
// (the server's private directory: its configuration lives there).
func pidsMentioning(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cl, []byte(dir)) {
			out = append(out, pid)
		}
	}
	return out
}

func randomSecret() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// shim is the minimal testing.TB that component/servertest needs, so
// jgbench can start real servers outside `go test`. Fatal unwinds with a
// panic that run() recovers; Cleanup functions run in reverse order at
// exit. Methods servertest does not call are left to the embedded nil
// interface (they would panic).
type shim struct {
	testing.TB
	out      io.Writer
	mu       sync.Mutex
	cleanups []func()
	dirs     []string
}

type shimFatal struct{ msg string }

func newShim(out io.Writer) *shim { return &shim{out: out} }

func (s *shim) Helper()                           {}
func (s *shim) Name() string                      { return "jgbench" }
func (s *shim) Failed() bool                      { return false }
func (s *shim) Log(args ...any)                   { fmt.Fprintln(s.out, args...) }
func (s *shim) Logf(format string, args ...any)   { fmt.Fprintf(s.out, format+"\n", args...) }
func (s *shim) Error(args ...any)                 { s.Log(args...) }
func (s *shim) Errorf(format string, args ...any) { s.Logf(format, args...) }
func (s *shim) Fatal(args ...any) {
	s.Log(args...)
	panic(shimFatal{fmt.Sprint(args...)})
}
func (s *shim) Fatalf(format string, args ...any) {
	s.Logf(format, args...)
	panic(shimFatal{fmt.Sprintf(format, args...)})
}
func (s *shim) FailNow()                      { panic(shimFatal{"FailNow"}) }
func (s *shim) Skip(args ...any)              { s.Fatal(args...) }
func (s *shim) Skipf(format string, a ...any) { s.Fatalf(format, a...) }
func (s *shim) Cleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}
func (s *shim) TempDir() string {
	d, err := os.MkdirTemp("", "jgbench-")
	if err != nil {
		s.Fatalf("jgbench: %v", err)
	}
	os.Chmod(d, 0o755)
	s.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// cleanup runs the registered functions, last first.
func (s *shim) cleanup() {
	for {
		s.mu.Lock()
		if len(s.cleanups) == 0 {
			s.mu.Unlock()
			return
		}
		f := s.cleanups[len(s.cleanups)-1]
		s.cleanups = s.cleanups[:len(s.cleanups)-1]
		s.mu.Unlock()
		f()
	}
}
