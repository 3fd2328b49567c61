package bridges

import (
	"context"
	"errors"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// runStandby is Run for a clustered bridge whose XMPP server accepts one
// component link per domain (Cluster.MultiLink false): wait for the
// bridge's link lease, run the bridge while holding it, and go back to
// standby if it is lost, until ctx ends. The lease is released (after
// the link closed) on the way out, so a standby takes over at its next
// check.
func (b *Bridge) runStandby(ctx context.Context) error {
	c := b.cl
	name := c.linkLease()
	defer b.setStandby(false)
	defer c.releaseInstance() // a standby holds it too (waitLink)
	for {
		b.setStandby(true)
		tok, ok := c.waitLink(ctx, name)
		if !ok {
			return nil
		}
		b.setStandby(false)
		b.log.Info("cluster: link lease acquired; this instance is active", "instance", c.instance, "token", tok)
		lctx, cancel := context.WithCancelCause(ctx)
		renewDone := make(chan struct{})
		go func() {
			defer close(renewDone)
			c.keepLink(lctx, name, tok, cancel)
		}()
		err := b.run(lctx)
		linkDown := errors.Is(context.Cause(lctx), errLinkDown)
		cancel(nil)
		<-renewDone
		if ctx.Err() != nil || linkDown {
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if rerr := c.leaser.Release(rctx, name, c.instHolder(), tok); rerr != nil {
				b.log.Warn("cluster: release link lease", "err", rerr)
			}
			rcancel()
		}
		if ctx.Err() != nil {
			return err
		}
		if linkDown {
			// Let a standby take the lease before this instance tries again
			// (it may be alone, or every link may be failing: then it does).
			b.log.Warn("cluster: the component link stayed down; link lease released for a standby", "retry_in", c.ttl)
			if !sleep(ctx, c.ttl) {
				return nil
			}
			continue
		}
		b.log.Warn("cluster: link lease lost; back to standby", "err", err)
	}
}

// waitLink acquires the link lease, checking every LeaseTTL/4, until it
// succeeds (true) or ctx ends (false).
func (c *cluster) waitLink(ctx context.Context, name string) (int64, bool) {
	logged := ""
	for {
		// A second process with this instance name (which keepInstance
		// logs) must not take the link either.
		if c.keepInstance(ctx); !c.instOK.Load() {
			if !sleep(ctx, c.check()) {
				return 0, false
			}
			continue
		}
		actx, cancel := context.WithTimeout(ctx, c.check())
		tok, ok, err := c.leaser.Acquire(actx, name, c.instHolder(), c.ttl)
		cancel()
		switch {
		case ok:
			return tok, true
		case err != nil && ctx.Err() == nil:
			c.b.log.Warn("cluster: cannot acquire the link lease", "err", err)
		case err == nil:
			if h, _, herr := c.leaser.Holder(ctx, name); herr == nil && h != logged {
				c.b.log.Info("cluster: standby; the component link is held by another instance", "active", h)
				logged = h
			} else if errors.Is(herr, store.ErrNotFound) {
				continue // released meanwhile: try at once
			}
		}
		if !sleep(ctx, c.check()) {
			return 0, false
		}
	}
}

// keepLink renews the link lease every LeaseTTL/4 until ctx ends; when the
// store refuses a renewal or the local deadline passes without one, it
// cancels ctx with errLeaseLost (the link then closes at once, without
// goodbye presences: another instance is taking over). When this
// instance's own link has been down for linkGrace (from the start, or
// since it dropped), it cancels ctx with errLinkDown: holding the lease
// would keep a standby with a working link from serving.
func (c *cluster) keepLink(ctx context.Context, name string, tok int64, cancel context.CancelCauseFunc) {
	downSince := time.Now() // the link is not up yet when the lease is taken
	// The deadline runs on its own: a Renew that hangs (a store that
	// stopped answering but keeps its connections) must not hold it up,
	// or two instances would hold links at once.
	deadline := time.AfterFunc(c.ttl*4/5, func() {
		if ctx.Err() == nil {
			c.b.log.Warn("cluster: link lease not renewed in time")
			cancel(errLeaseLost)
		}
	})
	defer deadline.Stop()
	tick := time.NewTicker(c.check())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if c.b.link.Up() {
			downSince = time.Time{}
		} else if downSince.IsZero() {
			downSince = time.Now()
		} else if time.Since(downSince) >= c.linkGrace() {
			c.b.log.Warn("cluster: component link down; handing the link lease over", "down", time.Since(downSince).Round(time.Second))
			cancel(errLinkDown)
			return
		}
		sent := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, c.check())
		ok, err := c.leaser.Renew(rctx, name, c.instHolder(), tok, c.ttl)
		rcancel()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				c.b.log.Warn("cluster: link lease not renewed; retrying", "err", err)
			}
		case !ok:
			c.b.log.Warn("cluster: link lease taken by another instance")
			cancel(errLeaseLost)
			return
		default:
			if ctx.Err() != nil {
				return // the deadline passed while this renewal waited
			}
			deadline.Reset(time.Until(c.deadline(sent)))
		}
	}
}

// skipGoodbye reports whether Run, stopping, must not tell users the
// gateway went away: other instances keep serving them (several links),
// or this one lost its link lease to another.
func (c *cluster) skipGoodbye(ctx context.Context) bool {
	if c == nil {
		return false
	}
	return c.multi || errors.Is(context.Cause(ctx), errLeaseLost) || errors.Is(context.Cause(ctx), errLinkDown)
}
