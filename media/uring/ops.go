//go:build linux

package uring

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The prep methods below each fill one submission entry. The kernel takes the entries at
// the next Submit or Enter; when the queue is full, a prep method submits what it holds
// first. userData comes back in the operation's completions (CQE.UserData).

// Nop prepares a no-op, which completes with Res 0.
func (r *Ring) Nop(userData uint64) error {
	s, _, err := r.getSQE()
	if err != nil {
		return err
	}
	s.opcode = opNop
	s.userData = userData
	return nil
}

// RecvMsgMultishot arms a multishot receive on the datagram socket fd
// (IORING_OP_RECVMSG with IORING_RECV_MULTISHOT): each datagram completes with a buffer
// of group bgid (CQE.Buffer) laid out as ParseRecvMsg expects, and Res its used length.
// The receive goes on while completions carry IORING_CQE_F_MORE (CQE.More); without it,
// it has ended (Res -ENOBUFS when the group ran out of buffers, -ECANCELED after a
// cancel) and must be armed again. Buffers must hold the 16-byte header, NameLen bytes
// of address and the largest datagram expected.
func (r *Ring) RecvMsgMultishot(fd int, bgid uint16, userData uint64) error {
	s, _, err := r.getSQE()
	if err != nil {
		return err
	}
	s.opcode = opRecvMsg
	s.fd = int32(fd)
	s.ioprio = recvMultishot
	s.flags = sqeBufferSelect
	s.bufGroup = bgid
	s.addr = uint64(uintptr(unsafe.Pointer(r.msg)))
	s.userData = userData
	return nil
}

// Send prepares the sending of p on the connected socket fd (IORING_OP_SEND). Its
// completion's Res is the number of bytes sent or a negated errno.
//
// p must stay valid and unchanged until that completion: the kernel tries the send while
// it takes the entry, but a socket that would block is retried later from the same
// memory. A BufRing buffer, recycled after the completion, fits; p must not be on a
// goroutine stack, and Send makes any slice given to it escape to the heap to that end.
func (r *Ring) Send(fd int, p []byte, userData uint64) error {
	s, _, err := r.getSQE()
	if err != nil {
		return err
	}
	r.prepSend(s, fd, p, userData)
	return nil
}

func (r *Ring) prepSend(s *sqe, fd int, p []byte, userData uint64) {
	s.opcode = opSend
	s.fd = int32(fd)
	if len(p) > 0 {
		ptr := unsafe.Pointer(unsafe.SliceData(p))
		r.keep = ptr
		s.addr = uint64(uintptr(ptr))
	}
	s.len = uint32(len(p))
	s.userData = userData
}

// SendFixed is Send on the socket in slot of the ring's registered files (RegisterFiles,
// SetFile), which saves the kernel looking the descriptor up and taking a reference to its
// file for each send.
func (r *Ring) SendFixed(slot int, p []byte, userData uint64) error {
	s, _, err := r.getSQE()
	if err != nil {
		return err
	}
	r.prepSend(s, slot, p, userData)
	s.flags = sqeFixedFile
	return nil
}

// SendTo prepares the sending of p to the IPv4 address to on the socket fd, connected or
// not (IORING_OP_SEND with a destination address, Linux 6.1+). The address is copied into
// the ring's own memory, so to need not outlive the call; p follows Send's rule.
func (r *Ring) SendTo(fd int, p []byte, to *unix.RawSockaddrInet4, userData uint64) error {
	s, i, err := r.getSQE()
	if err != nil {
		return err
	}
	r.prepSend(s, fd, p, userData)
	// The kernel copies the address while it takes the entry, before this slot can be
	// filled again.
	a := &r.addrs[i]
	*a = *to
	s.off = uint64(uintptr(unsafe.Pointer(a)))
	s.addrLen = unix.SizeofSockaddrInet4
	return nil
}

// SendToFixed is SendTo on the socket in slot of the ring's registered files (see
// SendFixed): the packet loop sends a leg's generated frames this way before the leg has
// latched and been connected.
func (r *Ring) SendToFixed(slot int, p []byte, to *unix.RawSockaddrInet4, userData uint64) error {
	if err := r.SendTo(slot, p, to, userData); err != nil {
		return err
	}
	r.sqes[(r.sqeTail-1)&r.sqMask].flags = sqeFixedFile
	return nil
}

// CancelUserData prepares the cancellation of the operation submitted with user data
// target (IORING_OP_ASYNC_CANCEL), e.g. a multishot receive: that operation then posts
// its last completion (Res -ECANCELED, without IORING_CQE_F_MORE). The cancel's own
// completion has Res 0, -ENOENT (nothing found) or -EALREADY (already running).
func (r *Ring) CancelUserData(target, userData uint64) error {
	s, _, err := r.getSQE()
	if err != nil {
		return err
	}
	s.opcode = opAsyncCancel
	s.fd = -1
	s.addr = target
	s.userData = userData
	return nil
}

// CancelFD prepares the cancellation of every operation on the descriptor fd
// (IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL, Linux 5.19+). Each cancelled
// operation posts its last completion; the cancel's own has Res the number cancelled.
// A socket with a multishot receive is closed after that receive's last completion, so
// that no operation outlives its descriptor.
func (r *Ring) CancelFD(fd int, userData uint64) error {
	s, _, err := r.getSQE()
	if err != nil {
		return err
	}
	s.opcode = opAsyncCancel
	s.fd = int32(fd)
	s.opFlags = cancelFD | cancelAll
	s.userData = userData
	return nil
}

// PollMultishot arms a multishot poll of fd for events (e.g. unix.POLLIN on an eventfd
// that wakes the loop; IORING_OP_POLL_ADD with IORING_POLL_ADD_MULTI). Each readiness
// completes with Res the ready events and IORING_CQE_F_MORE while the poll goes on.
func (r *Ring) PollMultishot(fd int, events uint32, userData uint64) error {
	s, _, err := r.getSQE()
	if err != nil {
		return err
	}
	s.opcode = opPollAdd
	s.fd = int32(fd)
	s.len = pollAddMulti
	s.opFlags = events
	s.userData = userData
	return nil
}
