package redis_test

import (
	"fmt"

	"github.com/jabbergate/jabbergate/bridges/store/redis"
)

func ExampleParseURL() {
	for _, u := range []string{
		"redis://localhost:6379/0",
		"unix:///run/redis/redis.sock?db=1",
		"redis+sentinel://s1:26379,s2/mymaster/2",
		"redis+cluster://h1:7000,h2:7001",
	} {
		o, err := redis.ParseURL(u)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%v db=%d master=%q cluster=%v\n", o.Addrs, o.DB, o.MasterName, o.IsClusterMode)
	}
	// Output:
	// [localhost:6379] db=0 master="" cluster=false
	// [/run/redis/redis.sock] db=1 master="" cluster=false
	// [s1:26379 s2:26379] db=2 master="mymaster" cluster=false
	// [h1:7000 h2:7001] db=0 master="" cluster=true
}
