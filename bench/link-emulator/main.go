// Command link-emulator is a network link in user space, the benchmark's stand-in for
// `tc qdisc add ... netem`, which the kernel it was written on lacks (CONFIG_NET_SCH_NETEM
// unset, no modules). It creates two TUN devices, one in its own network namespace and one
// in the namespace named by -netns, and moves every IP packet from one to the other after a
// fixed one-way delay, each TCP connection paced to its own bandwidth (as S3 serves each
// connection at a bounded rate). Packets a connection sends faster than its rate wait in
// its queue; past -queue bytes they are dropped, like a router's tail drop.
//
// It prints "ready" once both devices exist. It exits on SIGTERM or SIGINT, or when its
// standard input closes (its parent died), printing what it forwarded and dropped as one
// JSON line. TUN devices made this way vanish with the process that made them, so nothing
// of the link outlives it.
package main

import (
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const (
	tunSetIff     = 0x400454ca
	iffTun        = 0x0001
	iffNoPi       = 0x1000
	iffVnetHdr    = 0x4000
	tunSetOffload = 0x400454d0
	tunFCsum      = 0x01
	tunFTso4      = 0x02
	tunFTso6      = 0x04
	vnetHdrLen    = 10
	cloneNewNet   = 0x40000000
	maxPacketLen  = 65536 + vnetHdrLen
)

// setns(2) by architecture: the syscall package does not name it.
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268}[runtime.GOARCH]

func openTun(name string) (*os.File, error) {
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var ifr [40]byte
	copy(ifr[:15], name)
	binary.LittleEndian.PutUint16(ifr[16:], iffTun|iffNoPi|iffVnetHdr)
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&ifr[0])))
	if errno != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, errno)
	}
	// Segmentation offload: TCP still sends MTU-sized segments as far as it knows (its
	// window and pacing count them), but the kernel hands them over up to 64 KiB at a time,
	// so the emulator moves a few thousand packets a second rather than tens of thousands.
	_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetOffload, tunFCsum|tunFTso4|tunFTso6)
	if errno != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("TUNSETOFFLOAD %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openTunIn creates the device inside another network namespace. setns moves only the
// calling thread, so a locked thread does it and is never unlocked: the runtime ends that
// thread with its goroutine instead of reusing it in the wrong namespace.
func openTunIn(netnsPath, name string) (*os.File, error) {
	type result struct {
		file *os.File
		err  error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread()
		ns, err := os.Open(netnsPath)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer ns.Close()
		if sysSetns == 0 {
			done <- result{nil, fmt.Errorf("setns: unknown on %s", runtime.GOARCH)}
			return
		}
		if _, _, errno := syscall.RawSyscall(sysSetns, ns.Fd(), cloneNewNet, 0); errno != 0 {
			done <- result{nil, fmt.Errorf("setns %s: %w", netnsPath, errno)}
			return
		}
		file, err := openTun(name)
		done <- result{file, err}
	}()
	r := <-done
	return r.file, r.err
}

type flowKey [12]byte

// flowOf names a packet's connection: IPv4 addresses and, for TCP and UDP, ports. Each
// packet starts with a virtio-net header (the offload metadata), then the IP header.
func flowOf(frame []byte) flowKey {
	var key flowKey
	if len(frame) < vnetHdrLen {
		return key
	}
	p := frame[vnetHdrLen:]
	if len(p) < 20 || p[0]>>4 != 4 {
		return key
	}
	copy(key[:8], p[12:20])
	ihl := int(p[0]&0x0f) * 4
	if (p[9] == 6 || p[9] == 17) && len(p) >= ihl+4 {
		copy(key[8:], p[ihl:ihl+4])
	}
	return key
}

type packet struct {
	data []byte
	due  time.Time
}

type packetHeap []*packet

func (h packetHeap) Len() int           { return len(h) }
func (h packetHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h packetHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *packetHeap) Push(x any)        { *h = append(*h, x.(*packet)) }
func (h *packetHeap) Pop() any {
	old := *h
	last := old[len(old)-1]
	*h = old[:len(old)-1]
	return last
}

// direction is one way of the link: packets read from one device, due on the other.
type direction struct {
	out       *os.File
	delay     time.Duration
	rate      float64 // bytes per second per connection; 0: unlimited
	queue     float64 // bytes a connection may have waiting for its rate
	mu        sync.Mutex
	pending   packetHeap
	busyUntil map[flowKey]time.Time
	wake      chan struct{}
	forwarded uint64
	bytes     uint64
	dropped   uint64
}

func newDirection(out *os.File, delay time.Duration, rate, queue float64) *direction {
	return &direction{out: out, delay: delay, rate: rate, queue: queue,
		busyUntil: map[flowKey]time.Time{}, wake: make(chan struct{}, 1)}
}

func (d *direction) admit(data []byte) {
	now := time.Now()
	d.mu.Lock()
	due := now.Add(d.delay)
	if d.rate > 0 {
		key := flowOf(data)
		start := now
		if busy, ok := d.busyUntil[key]; ok && busy.After(now) {
			if busy.Sub(now).Seconds()*d.rate+float64(len(data)) > d.queue {
				d.dropped++
				d.mu.Unlock()
				return
			}
			start = busy
		}
		sent := start.Add(time.Duration(float64(len(data)) / d.rate * 1e9))
		d.busyUntil[key] = sent
		due = sent.Add(d.delay)
	}
	first := len(d.pending) == 0 || due.Before(d.pending[0].due)
	heap.Push(&d.pending, &packet{data: data, due: due})
	d.mu.Unlock()
	if first {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

func (d *direction) deliver() {
	timer := time.NewTimer(time.Hour)
	for {
		d.mu.Lock()
		now := time.Now()
		var ready []*packet
		for len(d.pending) > 0 && !d.pending[0].due.After(now) {
			ready = append(ready, heap.Pop(&d.pending).(*packet))
		}
		wait := time.Hour
		if len(d.pending) > 0 {
			wait = d.pending[0].due.Sub(now)
		}
		d.mu.Unlock()
		for _, p := range ready {
			// A write can fail for a packet the kernel refuses (e.g. while a device goes
			// down); a link loses packets too, and TCP resends.
			if _, err := d.out.Write(p.data); err == nil {
				d.mu.Lock()
				d.forwarded++
				d.bytes += uint64(len(p.data))
				d.mu.Unlock()
			}
		}
		if len(ready) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-d.wake:
		}
	}
}

// forgetIdle drops the pacing state of connections idle for a while.
func (d *direction) forgetIdle() {
	for range time.Tick(10 * time.Second) {
		d.mu.Lock()
		for key, busy := range d.busyUntil {
			if time.Since(busy) > 10*time.Second {
				delete(d.busyUntil, key)
			}
		}
		d.mu.Unlock()
	}
}

func (d *direction) read(in *os.File) {
	buf := make([]byte, maxPacketLen)
	for {
		n, err := in.Read(buf)
		if err != nil {
			fmt.Fprintf(os.Stderr, "link-emulator: reading %s: %v\n", in.Name(), err)
			os.Exit(1)
		}
		// A copy of the packet's own size: it waits in the queue while the next is read.
		d.admit(append([]byte(nil), buf[:n]...))
	}
}

func main() {
	hostName := flag.String("host-dev", "", "TUN device to create in this network namespace")
	nsName := flag.String("ns-dev", "", "TUN device to create in the namespace -netns")
	netns := flag.String("netns", "", "path of the other network namespace (/run/netns/NAME)")
	delay := flag.Duration("delay", 10*time.Millisecond, "one-way delay of each packet")
	rate := flag.Float64("rate", 0, "bytes per second per connection, each way (0: unlimited)")
	queue := flag.Float64("queue", 4<<20, "bytes a connection may have queued before drops")
	flag.Parse()
	if *hostName == "" || *nsName == "" || *netns == "" {
		flag.Usage()
		os.Exit(2)
	}
	host, err := openTun(*hostName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "link-emulator:", err)
		os.Exit(1)
	}
	inside, err := openTunIn(*netns, *nsName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "link-emulator:", err)
		os.Exit(1)
	}
	toNs := newDirection(inside, *delay, *rate, *queue)
	toHost := newDirection(host, *delay, *rate, *queue)
	for _, d := range []*direction{toNs, toHost} {
		go d.deliver()
		go d.forgetIdle()
	}
	go toNs.read(host)
	go toHost.read(inside)
	fmt.Println("ready")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGHUP
	}()
	<-stop
	report := map[string]uint64{}
	for name, d := range map[string]*direction{"toNamespace": toNs, "toHost": toHost} {
		d.mu.Lock()
		report[name+"Packets"] = d.forwarded
		report[name+"Bytes"] = d.bytes
		report[name+"Dropped"] = d.dropped
		d.mu.Unlock()
	}
	line, _ := json.Marshal(report)
	fmt.Println(string(line))
}
