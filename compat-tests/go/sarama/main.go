// A driver for sarama (github.com/IBM/sarama, the release go.mod pins), one operation per run.
//
//	sarama-driver '{"op": "produce", "bootstrap": "host:port", ...}'    (or the JSON on stdin)
//	-> {"ok": true, "result": ...} or {"ok": false, "error": {"kind": "MESSAGE_TOO_LARGE", "message": "..."}}
//
// go/driver holds what it shares with the franz-go driver (keys, values and header values travel
// base64-encoded, null stays null). Built in module mode from the Go module proxy (go.mod, go.sum).
// Sarama is configured as its users configure it for Kafka 4:
// an explicit protocol Version (V4_0_0_0; sarama picks request versions from it rather than from
// ApiVersions), acks=all, and the default hash partitioner (FNV-1a) unless partitions are given.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"kcompat/driver"
)

type (
	Message = driver.Message
	Arg     = driver.Arg
)

var codecs = map[string]sarama.CompressionCodec{
	"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

var kinds = map[sarama.KError]string{
	sarama.ErrMessageSizeTooLarge:     "MESSAGE_TOO_LARGE",
	sarama.ErrUnknownTopicOrPartition: "UNKNOWN_TOPIC_OR_PARTITION",
	sarama.ErrRequestTimedOut:         "TIMEOUT",
}

func config(arg *Arg) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "kbroker-compat"
	c.Version = sarama.V4_0_0_0
	timeout := arg.Timeout()
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = timeout + 5*time.Second
	c.Admin.Timeout = timeout
	c.Producer.Timeout = timeout
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	if arg.Retries > 0 {
		c.Metadata.Retry.Max = arg.Retries
		c.Producer.Retry.Max = arg.Retries
	}
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.MaxWaitTime = 200 * time.Millisecond
	c.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	if arg.ReadCommit {
		c.Consumer.IsolationLevel = sarama.ReadCommitted
	}
	return c
}

func produce(arg *Arg) (interface{}, error) {
	c := config(arg)
	codec, ok := codecs[arg.Compression]
	if !ok {
		codec = sarama.CompressionNone
	}
	c.Producer.Compression = codec
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	explicit := 0
	for _, m := range arg.Messages {
		if m.Partition != nil {
			explicit++
		}
	}
	if explicit == len(arg.Messages) && explicit > 0 {
		c.Producer.Partitioner = sarama.NewManualPartitioner // sarama's way to honour Partition
	} else if explicit > 0 {
		return nil, errors.New("unsupported: sarama takes explicit partitions for all records or none")
	}
	if arg.Idempotent != nil && *arg.Idempotent {
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1
		if c.Producer.Retry.Max < 1 {
			c.Producer.Retry.Max = 1
		}
	}
	p, err := sarama.NewSyncProducer(arg.Brokers(), c)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	msgs := messages(arg.Topic, arg.Messages)
	if err := p.SendMessages(msgs); err != nil {
		if perrs, ok := err.(sarama.ProducerErrors); ok && len(perrs) > 0 {
			return nil, perrs[0].Err
		}
		return nil, err
	}
	return len(msgs), nil
}

func messages(topic string, in []Message) []*sarama.ProducerMessage {
	msgs := make([]*sarama.ProducerMessage, 0, len(in))
	for _, m := range in {
		pm := &sarama.ProducerMessage{Topic: topic}
		if m.Key != nil {
			pm.Key = sarama.ByteEncoder(driver.Decode(m.Key))
		}
		if m.Value != nil {
			pm.Value = sarama.ByteEncoder(driver.Decode(m.Value))
		}
		for _, h := range m.Headers {
			v := h[1]
			pm.Headers = append(pm.Headers, sarama.RecordHeader{Key: []byte(h[0]), Value: driver.Decode(&v)})
		}
		if m.Partition != nil {
			pm.Partition = *m.Partition
		}
		if m.Timestamp != nil {
			pm.Timestamp = time.Unix(0, *m.Timestamp*int64(time.Millisecond))
		}
		msgs = append(msgs, pm)
	}
	return msgs
}

// transactions: one transaction with the committed records, committed; one with the aborted, aborted.
func transactions(arg *Arg) (interface{}, error) {
	c := config(arg)
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Transaction.ID = arg.TxnID
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	p, err := sarama.NewSyncProducer(arg.Brokers(), c)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	for _, step := range []struct {
		msgs   []Message
		commit bool
	}{{arg.Committed, true}, {arg.Aborted, false}} {
		if err := p.BeginTxn(); err != nil {
			return nil, err
		}
		if err := p.SendMessages(messages(arg.Topic, step.msgs)); err != nil {
			if perrs, ok := err.(sarama.ProducerErrors); ok && len(perrs) > 0 {
				return nil, perrs[0].Err
			}
			return nil, err
		}
		if step.commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			return nil, err
		}
	}
	return len(arg.Committed) + len(arg.Aborted), nil
}

func out(topic string, m *sarama.ConsumerMessage) Message {
	hs := [][2]string{}
	for _, h := range m.Headers {
		hs = append(hs, [2]string{string(h.Key), *driver.Encode(append([]byte{}, h.Value...))})
	}
	p := m.Partition
	ts := m.Timestamp.UnixNano() / int64(time.Millisecond)
	return Message{Key: driver.Encode(m.Key), Value: driver.Encode(m.Value), Headers: hs, Partition: &p, Timestamp: &ts, Offset: m.Offset}
}

func consume(arg *Arg) (interface{}, error) {
	c := config(arg)
	consumer, err := sarama.NewConsumer(arg.Brokers(), c)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(arg.Topic)
	if err != nil {
		return nil, err
	}
	records := make(chan Message, arg.Count+1000)
	errs := make(chan error, len(parts))
	var pcs []sarama.PartitionConsumer
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(arg.Topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		pcs = append(pcs, pc)
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				records <- out(arg.Topic, m)
			}
		}(pc)
		go func(pc sarama.PartitionConsumer) {
			for e := range pc.Errors() {
				errs <- e.Err
			}
		}(pc)
	}
	defer func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
	}()
	result := []Message{}
	deadline := time.After(time.Duration(arg.TimeoutMs) * time.Millisecond)
	for len(result) < arg.Count {
		select {
		case m := <-records:
			result = append(result, m)
		case e := <-errs:
			return nil, e
		case <-deadline:
			return result, nil
		}
	}
	return result, nil
}

func cluster(arg *Arg) (interface{}, error) {
	client, err := sarama.NewClient(arg.Brokers(), config(arg))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	bs := [][]interface{}{}
	for _, b := range client.Brokers() {
		i := strings.LastIndex(b.Addr(), ":")
		var port int
		fmt.Sscan(b.Addr()[i+1:], &port)
		bs = append(bs, []interface{}{b.Addr()[:i], port})
	}
	topics := map[string]int{}
	for _, t := range arg.Topics {
		if ps, err := client.Partitions(t); err == nil {
			topics[t] = len(ps)
		}
	}
	return map[string]interface{}{"brokers": bs, "topics": topics}, nil
}

func withAdmin(arg *Arg, fn func(sarama.ClusterAdmin) (interface{}, error)) (interface{}, error) {
	admin, err := sarama.NewClusterAdmin(arg.Brokers(), config(arg))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	return fn(admin)
}

func offsetsForTimes(arg *Arg) (interface{}, error) {
	client, err := sarama.NewClient(arg.Brokers(), config(arg))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	res := map[string]int64{}
	for p := int32(0); p < arg.Partitions; p++ {
		o, err := client.GetOffset(arg.Topic, p, arg.Timestamp)
		if err != nil {
			return nil, err
		}
		res[fmt.Sprint(p)] = o
	}
	return res, nil
}

// groupHandler takes records until the shared budget is spent, marking exactly those it took.
type groupHandler struct {
	mu      sync.Mutex
	want    int
	taken   []Message
	done    chan struct{}
	once    sync.Once
	claims  chan []int32
	topic   string
	observe bool
}

func (h *groupHandler) Setup(s sarama.ConsumerGroupSession) error {
	if h.observe {
		ps := append([]int32{}, s.Claims()[h.topic]...)
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		h.claims <- ps
	}
	return nil
}
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		if len(h.taken) < h.want {
			h.taken = append(h.taken, out(h.topic, m))
			s.MarkMessage(m, "")
		}
		full := len(h.taken) >= h.want
		h.mu.Unlock()
		if full && h.done != nil {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

func groupConsume(arg *Arg) (interface{}, error) {
	c := config(arg)
	c.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	g, err := sarama.NewConsumerGroup(arg.Brokers(), arg.Group, c)
	if err != nil {
		return nil, err
	}
	h := &groupHandler{want: arg.Count, done: make(chan struct{}), topic: arg.Topic}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{arg.Topic}, h); err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case <-h.done:
	case err = <-errc:
	case <-time.After(time.Duration(arg.TimeoutMs) * time.Millisecond):
	}
	cancel()
	if cerr := g.Close(); err == nil { // Close commits the marked offsets and leaves the group
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.taken, nil
}

func rebalance(arg *Arg) (interface{}, error) {
	deadline := time.Now().Add(time.Duration(arg.TimeoutMs) * time.Millisecond)
	type member struct {
		g      sarama.ConsumerGroup
		cancel context.CancelFunc
		claims chan []int32
		last   []int32
	}
	var ms []*member
	for i := 0; i < 2; i++ {
		g, err := sarama.NewConsumerGroup(arg.Brokers(), arg.Group, config(arg))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{g: g, cancel: cancel, claims: make(chan []int32, 100)}
		h := &groupHandler{want: 1 << 30, topic: arg.Topic, observe: true, claims: m.claims}
		go func() {
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{arg.Topic}, h); err != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
		ms = append(ms, m)
	}
	closed := map[int]bool{}
	defer func() {
		for i, m := range ms {
			if !closed[i] {
				m.cancel()
				m.g.Close()
			}
		}
	}()
	drain := func(m *member) {
		for {
			select {
			case c := <-m.claims:
				m.last = c
			default:
				return
			}
		}
	}
	for time.Now().Before(deadline) {
		drain(ms[0])
		drain(ms[1])
		if driver.Settled(ms[0].last, ms[1].last, arg.Partitions) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := [][]int32{ms[0].last, ms[1].last}
	ms[1].cancel()
	ms[1].g.Close()
	closed[1] = true
	for time.Now().Before(deadline) && int32(len(ms[0].last)) < arg.Partitions {
		drain(ms[0])
		time.Sleep(100 * time.Millisecond)
	}
	return map[string]interface{}{"before": before, "after": ms[0].last}, nil
}

var ops = map[string]driver.Op{
	"produce":         produce,
	"transactions":    transactions,
	"consume":         consume,
	"cluster":         cluster,
	"offsetsForTimes": offsetsForTimes,
	"groupConsume":    groupConsume,
	"rebalance":       rebalance,
	"createTopic": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(a sarama.ClusterAdmin) (interface{}, error) {
			return nil, a.CreateTopic(arg.Topic, &sarama.TopicDetail{NumPartitions: arg.Partitions, ReplicationFactor: 1,
				ConfigEntries: driver.StrPtrs(arg.Configs)}, false)
		})
	},
	"deleteTopic": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(a sarama.ClusterAdmin) (interface{}, error) { return nil, a.DeleteTopic(arg.Topic) })
	},
	"describeConfigs": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(a sarama.ClusterAdmin) (interface{}, error) {
			entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: arg.Topic})
			res := map[string]string{}
			for _, e := range entries {
				res[e.Name] = e.Value
			}
			return res, err
		})
	},
	"alterConfigs": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(a sarama.ClusterAdmin) (interface{}, error) {
			return nil, a.AlterConfig(sarama.TopicResource, arg.Topic, driver.StrPtrs(arg.Configs), false)
		})
	},
	"listGroups": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(a sarama.ClusterAdmin) (interface{}, error) {
			groups, err := a.ListConsumerGroups()
			names := []string{}
			for g := range groups {
				names = append(names, g)
			}
			return names, err
		})
	},
	"describeGroup": func(arg *Arg) (interface{}, error) {
		return withAdmin(arg, func(a sarama.ClusterAdmin) (interface{}, error) {
			ds, err := a.DescribeConsumerGroups([]string{arg.Group})
			if err != nil {
				return nil, err
			}
			if ds[0].Err != sarama.ErrNoError {
				return nil, ds[0].Err
			}
			return map[string]interface{}{"state": ds[0].State, "members": len(ds[0].Members)}, nil
		})
	},
}

// kind names a sarama error for the Python side.
func kind(err error) string {
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		if k, ok := kinds[kerr]; ok {
			return k
		}
	}
	return "OTHER"
}

func main() {
	log.SetOutput(io.Discard)
	if os.Getenv("SARAMA_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags)
	}
	driver.Main(ops, kind)
}
