package slapdtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// sysProcAttr has the kernel kill slapd when the test process dies, so a
// crashed or timed-out test leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// waitStopped returns once every thread of pid is stopped. kill(SIGSTOP)
// only queues the signal: a slapd thread that is running at that moment can
// still answer a request that is already in, and a test that relies on a
// frozen server would then be flaky.
func waitStopped(pid int) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		stopped, err := allThreadsStopped(pid)
		if err != nil || stopped {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slapd (pid %d) did not stop within 2s", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

func allThreadsStopped(pid int) (bool, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		return false, fmt.Errorf("listing the threads of pid %d: %v", pid, err)
	}
	for _, task := range tasks {
		data, err := os.ReadFile(task)
		if err != nil {
			return false, nil // a thread that exits meanwhile; look again
		}
		// The state follows the parenthesised command name: "pid (comm) S ...".
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 || i+2 >= len(data) {
			return false, nil
		}
		if state := data[i+2]; state != 'T' && state != 't' {
			return false, nil
		}
	}
	return true, nil
}
