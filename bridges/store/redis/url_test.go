package redis

import (
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want func(t *testing.T, o *optionsView)
	}{
		{"redis://localhost:6379/2", func(t *testing.T, o *optionsView) {
			o.addrs("localhost:6379").db(2).simple()
		}},
		{"redis://127.0.0.1", func(t *testing.T, o *optionsView) {
			o.addrs("127.0.0.1:6379").db(0).simple()
		}},
		{"redis://u:p%40ss@[::1]:7000/1?dial_timeout=3&read_timeout=6s&pool_size=7&client_name=jg", func(t *testing.T, o *optionsView) {
			o.addrs("[::1]:7000").db(1).auth("u", "p@ss").simple()
			if o.DialTimeout != 3*time.Second || o.ReadTimeout != 6*time.Second || o.PoolSize != 7 || o.ClientName != "jg" {
				t.Errorf("options not carried over: %+v", o.UniversalOptions)
			}
		}},
		{"rediss://:secret@redis.example.com:6380", func(t *testing.T, o *optionsView) {
			o.addrs("redis.example.com:6380").auth("", "secret").tls("redis.example.com").simple()
		}},
		{"unix:///run/redis/redis.sock?db=3", func(t *testing.T, o *optionsView) {
			o.addrs("/run/redis/redis.sock").db(3).simple()
		}},
		{"redis+sentinel://s1,s2:26380,[::1]/mymaster", func(t *testing.T, o *optionsView) {
			o.addrs("s1:26379", "s2:26380", "[::1]:26379").db(0).master("mymaster")
		}},
		{"redis+sentinel://user:pw@s1:26379/mymaster/4?sentinel_password=sp&sentinel_username=su&dial_timeout=500ms", func(t *testing.T, o *optionsView) {
			o.addrs("s1:26379").db(4).master("mymaster").auth("user", "pw")
			if o.SentinelUsername != "su" || o.SentinelPassword != "sp" || o.DialTimeout != 500*time.Millisecond {
				t.Errorf("sentinel options: %+v", o.UniversalOptions)
			}
		}},
		{"redis+sentinel://s1/m?db=5", func(t *testing.T, o *optionsView) {
			o.addrs("s1:26379").db(5).master("m")
		}},
		{"rediss+sentinel://s1.example:26379,s2.example/m", func(t *testing.T, o *optionsView) {
			o.addrs("s1.example:26379", "s2.example:26379").master("m").tls("s1.example")
		}},
		{"redis+cluster://h1:7000,h2:7001,h3", func(t *testing.T, o *optionsView) {
			o.addrs("h1:7000", "h2:7001", "h3:6379").cluster()
		}},
		{"redis+cluster://h1:7000", func(t *testing.T, o *optionsView) {
			o.addrs("h1:7000").cluster()
		}},
		{"rediss+cluster://:pw@h1:7000/?read_timeout=2&protocol=3", func(t *testing.T, o *optionsView) {
			o.addrs("h1:7000").cluster().auth("", "pw").tls("h1")
			if o.ReadTimeout != 2*time.Second || o.Protocol != 3 {
				t.Errorf("cluster options: %+v", o.UniversalOptions)
			}
		}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			o, err := ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			tc.want(t, &optionsView{t: t, UniversalOptions: o})
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"localhost:6379", "missing scheme"},
		{"http://localhost", "unknown scheme"},
		{"redis://localhost/x", "invalid database"},
		{"redis://localhost?bogus=1", "bogus"},
		{"unix://", "empty unix socket path"},
		{"redis+sentinel://s1,s2", "missing master name"},
		{"redis+sentinel://s1/", "missing master name"},
		{"redis+sentinel://s1/m/x", "bad database number"},
		{"redis+sentinel://s1/m/1/2", "bad path"},
		{"redis+sentinel://s1,,s2/m", "empty host"},
		{"redis+sentinel://s1:0/m", "bad port"},
		{"redis+sentinel://s1:99999/m", "bad port"},
		{"redis+sentinel://::1/m", "brackets"},
		{"redis+sentinel://s1/m?pool_size=-1", "pool_size"},
		{"redis+sentinel://s1/m?protocol=4", "protocol"},
		{"redis+sentinel://s1/m?dial_timeout=soon", "dial_timeout"},
		{"redis+cluster://h1/0", "no path"},
		{"redis+cluster://h1?db=1", "only for Sentinel"},
		{"redis+cluster://h1?sentinel_password=x", "only for Sentinel"},
		{"redis+cluster://h1?nope=1", "unknown option"},
		{"redis+cluster://", "empty host"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			o, err := ParseURL(tc.url)
			if err == nil {
				t.Fatalf("no error; options %+v", o)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestParseURLRedactsPassword(t *testing.T) {
	for _, u := range []string{
		"redis://user:hunter2@localhost/x",
		"redis://user:hunter2@local host/0",
		"redis+sentinel://user:hunter2@s1/m?nope=1",
		"redis+cluster://:hunter2@h1/0",
	} {
		_, err := ParseURL(u)
		if err == nil {
			t.Fatalf("%s: no error", u)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

// optionsView makes the table above read well.
type optionsView struct {
	t *testing.T
	*goredis.UniversalOptions
}

func (o *optionsView) addrs(want ...string) *optionsView {
	o.t.Helper()
	if !slices.Equal(o.Addrs, want) {
		o.t.Errorf("Addrs = %q, want %q", o.Addrs, want)
	}
	return o
}

func (o *optionsView) db(want int) *optionsView {
	o.t.Helper()
	if o.DB != want {
		o.t.Errorf("DB = %d, want %d", o.DB, want)
	}
	return o
}

func (o *optionsView) auth(user, pass string) *optionsView {
	o.t.Helper()
	if o.Username != user || o.Password != pass {
		o.t.Errorf("auth = %q/%q, want %q/%q", o.Username, o.Password, user, pass)
	}
	return o
}

func (o *optionsView) tls(server string) *optionsView {
	o.t.Helper()
	if o.TLSConfig == nil || o.TLSConfig.ServerName != server {
		o.t.Errorf("TLSConfig = %+v, want ServerName %q", o.TLSConfig, server)
	}
	return o
}

func (o *optionsView) simple() *optionsView {
	o.t.Helper()
	if o.MasterName != "" || o.IsClusterMode || len(o.Addrs) != 1 {
		o.t.Errorf("not a single-server configuration: %+v", o.UniversalOptions)
	}
	return o
}

func (o *optionsView) master(name string) *optionsView {
	o.t.Helper()
	if o.MasterName != name || o.IsClusterMode {
		o.t.Errorf("MasterName = %q (cluster %v), want %q", o.MasterName, o.IsClusterMode, name)
	}
	return o
}

func (o *optionsView) cluster() *optionsView {
	o.t.Helper()
	if !o.IsClusterMode || o.MasterName != "" {
		o.t.Errorf("not a cluster configuration: %+v", o.UniversalOptions)
	}
	return o
}
