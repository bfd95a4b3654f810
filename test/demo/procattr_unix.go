//go:build unix && !linux

package main

import "syscall"

// procAttr puts a child in its own process group, so the demo, not the
// terminal's Ctrl-C, decides when it stops, and a kill reaches everything
// it started.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
