package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/sdk/freeport"
)

// stopGrace is how long a process gets to stop after SIGTERM before the
// demo kills its whole process group.
const stopGrace = 10 * time.Second

// procs tracks every process the demo starts, so all of them stop at the
// end, on Ctrl-C, and on any error.
type procs struct {
	logDir  string
	started func(name string, pid int)

	mu   sync.Mutex
	list []*proc
}

// proc is one child process, the leader of its own process group.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// start runs bin with args, its output appended to <logDir>/<name>.log.
func (ps *procs) start(name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(ps.logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	if ps.started != nil {
		ps.started(name, cmd.Process.Pid)
	}
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs the process group and waits for the leader to exit, so its
// ports are free when kill returns.
func (p *proc) kill() {
	if err := signalGroup(p.pid(), syscall.SIGKILL); err != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// stop asks the process to shut down (SIGTERM) and kills its group if it
// has not exited within stopGrace.
func (p *proc) stop() {
	if p.exited() {
		_ = signalGroup(p.pid(), syscall.SIGKILL) // anything it left behind
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
	}
	p.kill()
}

// stopAll stops every process, the last started first.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for i := len(list) - 1; i >= 0; i-- {
		wg.Go(list[i].stop)
	}
	wg.Wait()
}

// tail returns the last n lines of a process's log.
func (p *proc) tail(n int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct free loopback TCP ports from sdk/freeport's
// reserved blocks: outside the ephemeral range (so an outgoing connection
// cannot take one before its server binds it) and never handed to another
// process using freeport, such as concurrently running Consul tests.
func freePorts(n int) ([]int, error) {
	ports, err := freeport.Take(n)
	if err != nil {
		return nil, fmt.Errorf("free ports: %w", err)
	}
	return ports, nil
}

// poll calls cond every pollInterval until it returns nil, the timeout
// passes (cond's last error is returned) or the demo is stopped.
func poll(done <-chan struct{}, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, timeout, err)
		}
		select {
		case <-done:
			return errors.New("interrupted")
		case <-time.After(pollInterval):
		}
	}
}

// pollInterval: waits end within 100ms of their condition, and polling
// loopback HTTP endpoints this often costs nothing.
const pollInterval = 100 * time.Millisecond
