package legacy

import (
	"fmt"
	"sort"
	"sync"
)

// Factory builds a Network from its configuration section (the bridge's
// `options` map in the config file). It validates and does no I/O. A
// problem with one option is best returned as an *OptionError (wrapped or
// joined as the factory likes): the configuration check then names that
// option's line and key in the config file.
type Factory func(options map[string]string) (Network, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a network available by name. It is meant to be called from
// an adapter's init function and panics if name is empty, f is nil or name
// is already registered.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" {
		panic("legacy: Register with empty name")
	}
	if f == nil {
		panic("legacy: Register " + name + " with nil factory")
	}
	if _, dup := registry[name]; dup {
		panic("legacy: Register called twice for " + name)
	}
	registry[name] = f
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Names returns the registered network names, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds the network registered under name.
func New(name string, options map[string]string) (Network, error) {
	f, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("legacy: unknown network %q (known: %v)", name, Names())
	}
	return f(options)
}

// OptionErrors returns the *OptionError values in err's tree, following
// Unwrap() error and Unwrap() []error (errors.Join) depth first, in order;
// nil if there is none.
func OptionErrors(err error) []*OptionError {
	var out []*OptionError
	var walk func(error, int)
	walk = func(e error, depth int) {
		if e == nil || depth > 100 { // a cycle or an absurd chain
			return
		}
		switch x := e.(type) {
		case *OptionError:
			out = append(out, x)
		case interface{ Unwrap() []error }:
			for _, m := range x.Unwrap() {
				walk(m, depth+1)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap(), depth+1)
		}
	}
	walk(err, 0)
	return out
}
