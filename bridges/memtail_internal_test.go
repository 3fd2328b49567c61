package bridges

import "testing"

// TestMemTailWakeWarm: the link coming up wakes a warm tail's worker and
// leaves a tail whose worker has not started alone (its start reads the
// store or knows the queue empty: a kick then would only cost a read);
// a started cold tail needs the caller to wake its worker for a read.
func TestMemTailWakeWarm(t *testing.T) {
	var m memTail[memIn]
	if !m.wakeWarm() {
		t.Error("a tail whose worker has not started asks for a store read")
	}
	ready := m.start(true)
	select {
	case <-ready:
		t.Fatal("start signalled ready")
	default:
	}
	if !m.wakeWarm() {
		t.Error("a warm tail asks for a store read")
	}
	select {
	case <-ready:
	default:
		t.Error("a warm tail's worker was not woken")
	}
	m.cool()
	if m.wakeWarm() {
		t.Error("a cold tail of a started worker was taken as complete")
	}
	m.start(false)
	if m.wakeWarm() {
		t.Error("a tail started cold was taken as complete")
	}
}
