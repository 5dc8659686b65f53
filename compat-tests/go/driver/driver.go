// Package driver is what the Go client drivers (franz and sarama) share: the JSON argument and
// answer of one operation per run, the base64 transport of keys, values and headers, and the
// checks both drivers' group scenarios make. Each driver supplies its operations and its way of
// naming a client error.
//
//	<name>-driver '{"op": "produce", "bootstrap": "host:port", ...}'    (or the JSON on stdin)
//	-> {"ok": true, "result": ...} or {"ok": false, "error": {"kind": "MESSAGE_TOO_LARGE", "message": "..."}}
package driver

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"strings"
	"time"
)

// Message is one record as the Python side sends and receives it; key, value and header values are
// base64 (null stays null).
type Message struct {
	Key       *string     `json:"key"`
	Value     *string     `json:"value"`
	Headers   [][2]string `json:"headers"`
	Partition *int32      `json:"partition"`
	Timestamp *int64      `json:"timestamp"`
	Offset    int64       `json:"offset"`
}

// Arg is the operation's argument; each operation reads the fields it needs.
type Arg struct {
	Op          string            `json:"op"`
	Bootstrap   string            `json:"bootstrap"`
	Topic       string            `json:"topic"`
	Topics      []string          `json:"topics"`
	Messages    []Message         `json:"messages"`
	Compression string            `json:"compression"`
	Idempotent  *bool             `json:"idempotent"`
	TimeoutMs   int               `json:"timeoutMs"`
	Retries     int               `json:"retries"`
	Count       int               `json:"count"`
	Group       string            `json:"group"`
	Partitions  int32             `json:"partitions"`
	Configs     map[string]string `json:"configs"`
	Timestamp   int64             `json:"timestamp"`
	ReadCommit  bool              `json:"readCommitted"`
	Committed   []Message         `json:"committed"`
	Aborted     []Message         `json:"aborted"`
	TxnID       string            `json:"transactionalId"`
	// GroupProtocol is "consumer" for KIP-848's consumer group protocol; anything else is the classic one.
	GroupProtocol string `json:"groupProtocol"`
}

// Op runs one operation.
type Op func(*Arg) (interface{}, error)

// Decode is base64 to bytes; nil stays nil.
func Decode(s *string) []byte {
	if s == nil {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(*s)
	if err != nil {
		panic(err)
	}
	return b
}

// Encode is bytes to base64; nil stays nil.
func Encode(b []byte) *string {
	if b == nil {
		return nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s
}

// Timeout is the operation's timeout (timeoutMs, 20 s when not given).
func (a *Arg) Timeout() time.Duration {
	if a.TimeoutMs == 0 {
		return 20 * time.Second
	}
	return time.Duration(a.TimeoutMs) * time.Millisecond
}

// Brokers is the bootstrap list.
func (a *Arg) Brokers() []string { return strings.Split(a.Bootstrap, ",") }

// StrPtrs is a config map as the admin clients take it.
func StrPtrs(m map[string]string) map[string]*string {
	out := map[string]*string{}
	for k, v := range m {
		v := v
		out[k] = &v
	}
	return out
}

// Settled: both members own partitions, none twice, all of them (a member keeps its old claims
// until it has rejoined).
func Settled(a, b []int32, partitions int32) bool {
	seen := map[int32]bool{}
	for _, p := range append(append([]int32{}, a...), b...) {
		if seen[p] {
			return false
		}
		seen[p] = true
	}
	return len(a) > 0 && len(b) > 0 && int32(len(seen)) == partitions
}

// Main reads the argument (the first command-line argument, or stdin: a large record does not fit in
// one argument), runs its operation and prints the answer; kind names a failure for the Python side
// ("UNSUPPORTED" for an error whose text starts with "unsupported:", whatever kind says). It exits 0
// on success, 1 when the operation failed, 2 when the argument was not understood.
func Main(ops map[string]Op, kind func(error) string) {
	enc := json.NewEncoder(os.Stdout)
	fail := func(k, message string, code int) {
		enc.Encode(map[string]interface{}{"ok": false, "error": map[string]string{"kind": k, "message": message}})
		os.Exit(code)
	}
	var text []byte
	if len(os.Args) >= 2 {
		text = []byte(os.Args[1])
	} else {
		text, _ = io.ReadAll(os.Stdin)
	}
	var arg Arg
	if json.Unmarshal(text, &arg) != nil {
		fail("OTHER", "bad argument", 2)
	}
	fn, ok := ops[arg.Op]
	if !ok {
		fail("OTHER", "unknown op "+arg.Op, 2)
	}
	result, err := fn(&arg)
	if err != nil {
		k := kind(err)
		if strings.HasPrefix(err.Error(), "unsupported:") {
			k = "UNSUPPORTED"
		}
		fail(k, err.Error(), 1)
	}
	enc.Encode(map[string]interface{}{"ok": true, "result": result})
}
