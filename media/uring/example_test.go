//go:build linux

package uring_test

import (
	"log"
	"runtime"
	"time"

	"github.com/trackline/trackline/media/uring"
)

// The shape of a relay loop on a Ring: each socket has a multishot receive (user data: the
// socket's index), each received datagram is sent on from the buffer it arrived in (user
// data: a tag and the buffer id), and the buffer goes back to the ring when the send
// completes. sockets[i] relays to peer[i], a connected socket. A socket leaves with
// r.CancelFD(fd, ud) and is closed once its receive's last completion (no More) arrived.
func Example() {
	if err := uring.Available(); err != nil {
		log.Printf("io_uring unavailable, using epoll: %v", err)
		return
	}
	runtime.LockOSThread() // the ring's single issuer
	defer runtime.UnlockOSThread()
	r, err := uring.New(1024, 8192)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	br, err := r.RegisterBufRing(1, 4096, 512) // header, source address, RTP packet
	if err != nil {
		log.Fatal(err)
	}
	var sockets, peers []int // bound UDP sockets, set up elsewhere
	for i, fd := range sockets {
		r.RecvMsgMultishot(fd, br.Group(), uint64(i))
	}
	const sendTag = 1 << 62
	stop := true // a real loop runs until told to stop
	for {
		// Submit the last batch's sends, run the ready receives, wait at most 20 ms.
		if _, err := r.EnterTimeout(1, 20*time.Millisecond); err != nil {
			log.Print(err) // e.g. EBUSY: consume completions and go on
		}
		for c, ok := r.Next(); ok; c, ok = r.Next() {
			if c.UserData&sendTag != 0 {
				br.Recycle(uint16(c.UserData))
				continue
			}
			i := int(c.UserData)
			if !c.More() { // ended (e.g. ENOBUFS): arm it again
				r.RecvMsgMultishot(sockets[i], br.Group(), uint64(i))
			}
			bid, ok := c.Buffer()
			if !ok {
				continue
			}
			_, payload, ok := uring.ParseRecvMsg(br.Buf(bid)[:c.Res])
			if !ok {
				br.Recycle(bid)
				continue
			}
			r.Send(peers[i], payload, sendTag|uint64(bid))
		}
		if stop {
			return
		}
	}
}
