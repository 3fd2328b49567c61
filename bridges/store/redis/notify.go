package redis

import (
	"context"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	goredis "github.com/redis/go-redis/v9"
)

// Notifications (store.Notifier) are Redis pub/sub messages on one channel
// per bridge, "<prefix>:{B}:notify", with the payload "<topic>|<jid>"
// (topic first: it has no '|'). Classic PUBLISH reaches every node's
// subscribers on a Cluster too. Pub/sub is fire and forget: a message
// published while a subscriber is reconnecting is lost, which is why
// Subscribe calls resync after every (re)subscription.

var _ store.Notifier = (*Store)(nil)

func (s *Store) notifyChannel(bridge string) string { return s.bridgeKey(bridge, "notify") }

// Notify implements store.Notifier.
func (s *Store) Notify(ctx context.Context, bridge, jid, topic string) error {
	return wrap(s.c.Publish(ctx, s.notifyChannel(bridge), topic+"|"+jid).Err())
}

// Subscribe implements store.Notifier. go-redis resubscribes by itself
// after a lost connection; each (re)subscription calls resync.
func (s *Store) Subscribe(ctx context.Context, bridge string, fn func(jid, topic string), resync func()) error {
	ps := s.c.Subscribe(ctx, s.notifyChannel(bridge))
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(goredis.WithChannelHealthCheckInterval(10*time.Second), goredis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			switch m := m.(type) {
			case *goredis.Subscription:
				if m.Kind == "subscribe" && resync != nil {
					resync()
				}
			case *goredis.Message:
				if topic, jid, ok := strings.Cut(m.Payload, "|"); ok {
					fn(jid, topic)
				}
			}
		}
	}
}
