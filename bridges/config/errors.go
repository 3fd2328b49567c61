package config

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Error is one configuration problem.
type Error struct {
	File    string // file name as given to Load or Parse
	Line    int    // 1-based line, 0 if unknown
	Key     string // key path, e.g. "bridges[0].secret"; "" for the whole file
	Problem string // what is wrong; never contains a secret
}

// Error returns "<file>:<line>: <key>: <problem>", leaving out ":<line>"
// when the line is unknown and "<key>: " when the problem is not about a
// key.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// Errors returns the *Error values in err: err itself, or the members of an
// errors.Join as returned by Load and Parse. It returns nil for nil.
func Errors(err error) []*Error {
	if e, ok := err.(*Error); ok {
		return []*Error{e}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*Error
		for _, m := range j.Unwrap() {
			out = append(out, Errors(m)...)
		}
		return out
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return nil
}

func (d *decoder) errorf(line int, key, format string, args ...any) {
	if d.validating {
		if d.isBad(key) {
			return
		}
	} else if key != "" {
		if d.bad == nil {
			d.bad = map[string]bool{}
		}
		d.bad[key] = true
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Problem: fmt.Sprintf(format, args...)})
}

// err returns the collected errors, ordered by line (problems without a
// line last), or nil.
func (d *decoder) err() error {
	switch len(d.errs) {
	case 0:
		return nil
	case 1:
		return d.errs[0]
	}
	sort.SliceStable(d.errs, func(i, j int) bool {
		li, lj := d.errs[i].Line, d.errs[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a YAML parser error into an *Error.
func syntaxError(file string, err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Problem: "invalid YAML: " + m[2]}
	}
	return &Error{File: file, Problem: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}
