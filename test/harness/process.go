package harness

import (
	"os/exec"
	"strings"
	"sync"
)

// process is one running `consul agent`; done closes when it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid after done
}

func startProcess(bin string, args []string, out *tailBuffer) (*process, error) {
	return startProcessIn("", bin, args, out)
}

// startProcessIn starts bin with its working directory dir ("": the test's).
func startProcessIn(dir, bin string, args []string, out *tailBuffer) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// kill sends SIGKILL and waits for the exit, so the ports are free when it
// returns.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tailBufferSize bounds the log kept per server: enough for the lines that
// explain a failed start or a failed test, small enough for benchmarks that
// run many servers.
const tailBufferSize = 64 << 10

// tailBuffer keeps the last tailBufferSize bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - tailBufferSize; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// tail returns the last n lines.
func (b *tailBuffer) tail(n int) string {
	b.mu.Lock()
	s := string(b.buf)
	b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
