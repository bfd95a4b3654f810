//go:build !unix

package main

import (
	"errors"
	"syscall"
)

func procAttr() *syscall.SysProcAttr { return nil }

func signalGroup(int, syscall.Signal) error {
	return errors.New("process groups are not supported on this platform")
}

func alive(int) bool { return false }
