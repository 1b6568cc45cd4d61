//go:build !linux

package slapdtest

import (
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// waitStopped cannot look at the threads here; it gives the signal time.
func waitStopped(int) error {
	time.Sleep(100 * time.Millisecond)
	return nil
}
