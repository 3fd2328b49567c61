package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a number of bytes. In YAML it is a plain integer (bytes) or
// an integer with a unit: B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB
// (powers of 1000), case-insensitive, e.g. "256KiB".
type ByteSize int64

// Binary units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

var byteUnits = map[string]ByteSize{
	"": 1, "b": 1,
	"kib": KiB, "mib": MiB, "gib": GiB,
	"kb": 1000, "mb": 1000 * 1000, "gb": 1000 * 1000 * 1000,
}

// ParseByteSize parses "256KiB", "1MiB", "10000" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	neg := strings.HasPrefix(t, "-")
	num := strings.TrimPrefix(t, "-")
	i := 0
	for i < len(num) && '0' <= num[i] && num[i] <= '9' {
		i++
	}
	mult, ok := byteUnits[strings.ToLower(strings.TrimSpace(num[i:]))]
	if i == 0 || !ok {
		return 0, fmt.Errorf("config: invalid size %q (want bytes, or a number with KiB, MiB, GiB, KB, MB or GB)", s)
	}
	n, err := strconv.ParseInt(num[:i], 10, 64)
	if err != nil || n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("config: size %q is too large", s)
	}
	if neg {
		n = -n
	}
	return ByteSize(n) * mult, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(value *yaml.Node) error {
	if value.Kind != yaml.ScalarNode {
		return fmt.Errorf("config: line %d: a size must be a single value", value.Line)
	}
	v, err := ParseByteSize(value.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler: the String form.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// String returns the size in the largest binary unit that divides it
// exactly ("256KiB", "1MiB"), or in bytes ("10000").
func (b ByteSize) String() string {
	for _, u := range []struct {
		size ByteSize
		name string
	}{{GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
