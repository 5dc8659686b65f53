// A driver for franz-go (github.com/twmb/franz-go, kgo and kadm at the releases go.mod pins), one
// operation per run.
//
//	franz-driver '{"op": "produce", "bootstrap": "host:port", ...}'    (or the JSON on stdin)
//	-> {"ok": true, "result": ...} or {"ok": false, "error": {"kind": "MESSAGE_TOO_LARGE", "message": "..."}}
//
// The argument and answer convention is the Node.js driver's; go/driver holds what it shares with the
// sarama driver (keys, values and header values travel base64-encoded, null stays null). franz-go negotiates request versions from
// ApiVersions; it is configured as its users configure it: acks=all (its default), idempotence on
// (its default) unless asked otherwise, its default sticky key partitioner (murmur2, as Java's).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"kcompat/driver"
)

type (
	Message = driver.Message
	Arg     = driver.Arg
)

var codecs = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
	"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

func opts(arg *Arg, extra ...kgo.Opt) []kgo.Opt {
	o := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(arg.Bootstrap, ",")...),
		kgo.ClientID("kbroker-compat"),
		kgo.DialTimeout(5 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond),
	}
	if arg.ReadCommit {
		o = append(o, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if os.Getenv("FRANZ_LOG") != "" {
		o = append(o, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil)))
	}
	return append(o, extra...)
}

func record(topic string, m Message) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: driver.Decode(m.Key), Value: driver.Decode(m.Value)}
	for _, h := range m.Headers {
		v := h[1]
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h[0], Value: driver.Decode(&v)})
	}
	if m.Partition != nil {
		r.Partition = *m.Partition
	}
	if m.Timestamp != nil {
		r.Timestamp = time.UnixMilli(*m.Timestamp)
	}
	return r
}

func out(r *kgo.Record) Message {
	hs := [][2]string{}
	for _, h := range r.Headers {
		hs = append(hs, [2]string{h.Key, *driver.Encode(append([]byte{}, h.Value...))})
	}
	p := r.Partition
	ts := r.Timestamp.UnixMilli()
	return Message{Key: driver.Encode(r.Key), Value: driver.Encode(r.Value), Headers: hs, Partition: &p, Timestamp: &ts, Offset: r.Offset}
}

func producerOpts(arg *Arg, msgs []Message) ([]kgo.Opt, error) {
	codec, ok := codecs[arg.Compression]
	if !ok {
		codec = kgo.NoCompression()
	}
	o := opts(arg, kgo.ProducerBatchCompression(codec), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProduceRequestTimeout(arg.Timeout()))
	// No kgo.RecordDeliveryTimeout: franz-go measures it from the record's own Timestamp, so a record
	// given a CreateTime an hour ago would expire before it is sent. The context bounds the wait instead.
	explicit := 0
	for _, m := range msgs {
		if m.Partition != nil {
			explicit++
		}
	}
	if explicit == len(msgs) && explicit > 0 {
		o = append(o, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	} else if explicit > 0 {
		return nil, errors.New("unsupported: the driver takes explicit partitions for all records or none")
	}
	return o, nil
}

func produceAll(ctx context.Context, c *kgo.Client, topic string, msgs []Message) error {
	recs := make([]*kgo.Record, 0, len(msgs))
	for _, m := range msgs {
		recs = append(recs, record(topic, m))
	}
	return c.ProduceSync(ctx, recs...).FirstErr()
}

func produce(arg *Arg) (interface{}, error) {
	o, err := producerOpts(arg, arg.Messages)
	if err != nil {
		return nil, err
	}
	if arg.Idempotent != nil && !*arg.Idempotent {
		o = append(o, kgo.DisableIdempotentWrite())
	}
	c, err := kgo.NewClient(o...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), arg.Timeout())
	defer cancel()
	return len(arg.Messages), produceAll(ctx, c, arg.Topic, arg.Messages)
}

func transactions(arg *Arg) (interface{}, error) {
	o, err := producerOpts(arg, append(append([]Message{}, arg.Committed...), arg.Aborted...))
	if err != nil {
		return nil, err
	}
	c, err := kgo.NewClient(append(o, kgo.TransactionalID(arg.TxnID))...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), arg.Timeout())
	defer cancel()
	for _, step := range []struct {
		msgs []Message
		end  kgo.TransactionEndTry
	}{{arg.Committed, kgo.TryCommit}, {arg.Aborted, kgo.TryAbort}} {
		if err := c.BeginTransaction(); err != nil {
			return nil, err
		}
		if err := produceAll(ctx, c, arg.Topic, step.msgs); err != nil {
			return nil, err
		}
		if err := c.EndTransaction(ctx, step.end); err != nil {
			return nil, err
		}
	}
	return len(arg.Committed) + len(arg.Aborted), nil
}

// poll takes records until count or the deadline; a fetch error ends it.
func poll(ctx context.Context, c *kgo.Client, count int, take func(*kgo.Record) bool) ([]Message, error) {
	result := []Message{}
	for len(result) < count {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			return result, nil
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return result, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if len(result) < count && (take == nil || take(r)) {
				result = append(result, out(r))
			}
		})
	}
	return result, nil
}

func consume(arg *Arg) (interface{}, error) {
	ctx, cancel := context.WithTimeout(context.Background(), arg.Timeout())
	defer cancel()
	adm, err := kgo.NewClient(opts(arg)...)
	if err != nil {
		return nil, err
	}
	parts, err := partitionsOf(ctx, kadm.NewClient(adm), arg.Topic)
	adm.Close()
	if err != nil {
		return nil, err
	}
	assign := map[int32]kgo.Offset{}
	for _, p := range parts {
		assign[p] = kgo.NewOffset().AtStart()
	}
	c, err := kgo.NewClient(opts(arg, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{arg.Topic: assign}))...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return poll(ctx, c, arg.Count, nil)
}

func partitionsOf(ctx context.Context, a *kadm.Client, topic string) ([]int32, error) {
	td, err := a.ListTopics(ctx, topic)
	if err != nil {
		return nil, err
	}
	d, ok := td[topic]
	if !ok {
		return nil, kerr.UnknownTopicOrPartition
	}
	if d.Err != nil {
		return nil, d.Err
	}
	return d.Partitions.Numbers(), nil
}

func offsetsForTimes(arg *Arg) (interface{}, error) {
	return withAdmin(arg, func(ctx context.Context, a *kadm.Client) (interface{}, error) {
		listed, err := a.ListOffsetsAfterMilli(ctx, arg.Timestamp, arg.Topic)
		if err != nil {
			return nil, err
		}
		if err := listed.Error(); err != nil {
			return nil, err
		}
		res := map[string]int64{}
		listed.Each(func(o kadm.ListedOffset) {
			if o.Partition < arg.Partitions {
				// Kafka answers -1 where no record is that late; kadm reports the end offset then
				// (with timestamp -1), as Java's offsetsForTimes reports null.
				if o.Timestamp < 0 {
					res[fmt.Sprint(o.Partition)] = -1
				} else {
					res[fmt.Sprint(o.Partition)] = o.Offset
				}
			}
		})
		return res, nil
	})
}

// groupOpts are a group member's options. The classic protocol gets quick rebalances for a short test.
// groupProtocol "consumer" opts into KIP-848 with kgo.ServerSideBalancer (the heartbeat interval and the
// session timeout are then the broker's). franz-go uses the new protocol only when the broker offers
// ConsumerGroupHeartbeat v1 and silently stays classic otherwise, so the driver refuses to run then: a
// scenario asking for KIP-848 must not pass on the classic protocol.
func groupOpts(arg *Arg, extra ...kgo.Opt) []kgo.Opt {
	o := []kgo.Opt{kgo.ConsumerGroup(arg.Group), kgo.ConsumeTopics(arg.Topic)}
	if arg.GroupProtocol == "consumer" {
		o = append(o, kgo.ServerSideBalancer())
	} else {
		o = append(o, kgo.HeartbeatInterval(300*time.Millisecond), kgo.SessionTimeout(6*time.Second))
	}
	return append(o, extra...)
}

// requireKIP848 fails unless the broker offers what franz-go needs to use KIP-848 (ConsumerGroupHeartbeat v1).
func requireKIP848(arg *Arg) error {
	if arg.GroupProtocol != "consumer" {
		return nil
	}
	_, err := withAdmin(arg, func(ctx context.Context, a *kadm.Client) (interface{}, error) {
		vs, err := a.ApiVersions(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range vs.Sorted() {
			if v.Err != nil {
				return nil, v.Err
			}
			if max, ok := v.KeyMaxVersion(int16(kmsg.ConsumerGroupHeartbeat)); !ok || max < 1 {
				return nil, fmt.Errorf("broker %d does not offer ConsumerGroupHeartbeat v1: franz-go would fall back to the classic group protocol", v.NodeID)
			}
		}
		return nil, nil
	})
	return err
}

func groupConsume(arg *Arg) (interface{}, error) {
	if err := requireKIP848(arg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), arg.Timeout())
	defer cancel()
	c, err := kgo.NewClient(opts(arg, groupOpts(arg, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit())...)...)
	if err != nil {
		return nil, err
	}
	defer c.Close() // leaves the group
	var taken []*kgo.Record
	got, err := poll(ctx, c, arg.Count, func(r *kgo.Record) bool { taken = append(taken, r); return true })
	if err != nil {
		return nil, err
	}
	if len(got) < arg.Count {
		return nil, fmt.Errorf("timed out: took %d of %d records", len(got), arg.Count)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), arg.Timeout())
	defer ccancel()
	if err := c.CommitRecords(cctx, taken...); err != nil { // the position after exactly these
		return nil, err
	}
	return got, nil
}

func rebalance(arg *Arg) (interface{}, error) {
	if err := requireKIP848(arg); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(arg.Timeout())
	type member struct {
		c    *kgo.Client
		mu   sync.Mutex
		last []int32
		done chan struct{}
	}
	var ms []*member
	for i := 0; i < 2; i++ {
		m := &member{done: make(chan struct{})}
		owned := map[int32]bool{}
		// franz-go's default balancer is cooperative-sticky: the callbacks name what changed.
		change := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
			return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
				m.mu.Lock()
				defer m.mu.Unlock()
				for _, p := range ps[arg.Topic] {
					if add {
						owned[p] = true
					} else {
						delete(owned, p)
					}
				}
				m.last = m.last[:0]
				for p := range owned {
					m.last = append(m.last, p)
				}
				sort.Slice(m.last, func(i, j int) bool { return m.last[i] < m.last[j] })
			}
		}
		c, err := kgo.NewClient(opts(arg, groupOpts(arg, kgo.OnPartitionsAssigned(change(true)),
			kgo.OnPartitionsRevoked(change(false)), kgo.OnPartitionsLost(change(false)))...)...)
		if err != nil {
			return nil, err
		}
		m.c = c
		go func() {
			defer close(m.done)
			for {
				fs := c.PollFetches(context.Background())
				if fs.IsClientClosed() {
					return
				}
			}
		}()
		ms = append(ms, m)
	}
	get := func(m *member) []int32 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return append([]int32{}, m.last...)
	}
	closed := map[int]bool{}
	defer func() {
		for i, m := range ms {
			if !closed[i] {
				m.c.Close()
			}
		}
	}()
	for time.Now().Before(deadline) && !driver.Settled(get(ms[0]), get(ms[1]), arg.Partitions) {
		time.Sleep(50 * time.Millisecond)
	}
	before := [][]int32{get(ms[0]), get(ms[1])}
	ms[1].c.Close() // leaves the group
	closed[1] = true
	for time.Now().Before(deadline) && int32(len(get(ms[0]))) < arg.Partitions {
		time.Sleep(50 * time.Millisecond)
	}
	return map[string]interface{}{"before": before, "after": get(ms[0])}, nil
}

func withAdmin(arg *Arg, fn func(context.Context, *kadm.Client) (interface{}, error)) (interface{}, error) {
	c, err := kgo.NewClient(opts(arg)...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), arg.Timeout())
	defer cancel()
	return fn(ctx, kadm.NewClient(c))
}

var ops = map[string]driver.Op{
	"produce":         produce,
	"transactions":    transactions,
	"consume":         consume,
	"offsetsForTimes": offsetsForTimes,
	"groupConsume":    groupConsume,
	"rebalance":       rebalance,
	"cluster": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(ctx context.Context, a *kadm.Client) (interface{}, error) {
			meta, err := a.Metadata(ctx, arg.Topics...)
			if err != nil {
				return nil, err
			}
			bs := [][]interface{}{}
			for _, b := range meta.Brokers {
				bs = append(bs, []interface{}{b.Host, b.Port})
			}
			topics := map[string]int{}
			for name, t := range meta.Topics {
				if t.Err == nil {
					topics[name] = len(t.Partitions)
				}
			}
			return map[string]interface{}{"brokers": bs, "topics": topics}, nil
		})
	},
	"createTopic": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(ctx context.Context, a *kadm.Client) (interface{}, error) {
			res, err := a.CreateTopic(ctx, arg.Partitions, 1, driver.StrPtrs(arg.Configs), arg.Topic)
			if err != nil {
				return nil, err
			}
			return nil, res.Err
		})
	},
	"deleteTopic": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(ctx context.Context, a *kadm.Client) (interface{}, error) {
			res, err := a.DeleteTopic(ctx, arg.Topic)
			if err != nil {
				return nil, err
			}
			return nil, res.Err
		})
	},
	"describeConfigs": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(ctx context.Context, a *kadm.Client) (interface{}, error) {
			rcs, err := a.DescribeTopicConfigs(ctx, arg.Topic)
			if err != nil {
				return nil, err
			}
			rc, err := rcs.On(arg.Topic, nil)
			if err != nil {
				return nil, err
			}
			if rc.Err != nil {
				return nil, rc.Err
			}
			res := map[string]string{}
			for _, c := range rc.Configs {
				res[c.Key] = c.MaybeValue()
			}
			return res, nil
		})
	},
	"alterConfigs": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(ctx context.Context, a *kadm.Client) (interface{}, error) {
			var alters []kadm.AlterConfig
			for k, v := range arg.Configs {
				v := v
				alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
			}
			res, err := a.AlterTopicConfigs(ctx, alters, arg.Topic)
			if err != nil {
				return nil, err
			}
			for _, r := range res {
				if r.Err != nil {
					return nil, r.Err
				}
			}
			return nil, nil
		})
	},
	"listGroups": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(ctx context.Context, a *kadm.Client) (interface{}, error) {
			gs, err := a.ListGroups(ctx)
			if err != nil {
				return nil, err
			}
			return gs.Groups(), nil
		})
	},
	"describeGroup": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(ctx context.Context, a *kadm.Client) (interface{}, error) {
			ds, err := a.DescribeGroups(ctx, arg.Group)
			if err != nil {
				return nil, err
			}
			d, ok := ds[arg.Group]
			if !ok {
				return nil, errors.New("the group is not in the answer")
			}
			if d.Err != nil {
				return nil, d.Err
			}
			return map[string]interface{}{"state": d.State, "members": len(d.Members)}, nil
		})
	},
}

func kind(err error) string {
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return "MESSAGE_TOO_LARGE"
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return "UNKNOWN_TOPIC_OR_PARTITION"
	case errors.Is(err, kerr.RequestTimedOut), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, kgo.ErrRecordTimeout), strings.Contains(err.Error(), "timed out"):
		return "TIMEOUT"
	}
	return "OTHER"
}

func main() { driver.Main(ops, kind) }
